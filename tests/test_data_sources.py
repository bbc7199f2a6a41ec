"""Your own data: image folders, CSV tables and .npz arrays, written by the tests.

Each source is checked up front (one clear error naming the file, column or
folder), split by seed, searched end to end, and exported with its
preprocessing: the SavedModel takes raw inputs, and `saved_model_cli` and a
fresh process without tfnas agree with the in-memory model.
"""

import csv
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfnas
from tests.waiting import run_fresh_python
from tfnas import cli, project
from tfnas.datasets import DataError, splits
from tfnas.spaces import ChainSpace, MLPSpace

CITIES = ("oslo", "rome", "lima")
WORDS = {"yes": "great tasty lovely fresh", "no": "awful bland cold stale"}


def write_images(folder, per_class=6, classes=("cat", "dog", "owl"), size=(10, 12)):
    """PNG files, one subfolder per class; each class has its own colour."""
    rng = np.random.default_rng(0)
    for index, name in enumerate(classes):
        os.makedirs(folder / name, exist_ok=True)
        for number in range(per_class):
            pixels = rng.integers(0, 60, size + (3,)) + 80 * index
            keras.utils.save_img(folder / name / f"{number}.png",
                                 pixels.astype("uint8"), scale=False)
    return folder


def write_table(path, rows=60):
    """A CSV with numeric (age, income), categorical (city) and text (review) columns."""
    rng = np.random.default_rng(1)
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["age", "income $", "city", "review", "label"])
        for row in range(rows):
            label = ("yes", "no")[row % 2]
            words = " ".join(rng.choice(WORDS[label].split(), 3))
            writer.writerow([20 + row % 40, f"{1000 + 37 * row:.1f}", CITIES[row % 3],
                             f"{words}, said guest {row}", label])
    return path


def write_arrays(path, n=60):
    rng = np.random.default_rng(2)
    y = np.arange(n) % 3
    x = rng.normal(size=(n, 6)) * 10 + 50 + y[:, None]
    np.savez(path, x=x, y=y)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    return {"images": write_images(root / "images"), "csv": write_table(root / "table.csv"),
            "npz": write_arrays(root / "arrays.npz")}


# --- splits --------------------------------------------------------------------

@pytest.mark.parametrize("source", ["images", "csv", "npz"])
def test_splits_are_seeded_disjoint_stratified_and_recorded(files, source):
    options = {"label_column": "label"} if source == "csv" else {}
    dataset = f"{source}:{files[source]}"
    first = tfnas.load_data(dataset, seed=3, **options)
    again = tfnas.load_data(dataset, seed=3, **options)
    other = tfnas.load_data(dataset, seed=4, **options)
    sizes = first.record["split_sizes"]
    total = 18 if source == "images" else 60
    assert sum(sizes.values()) == total
    assert sizes["test"] >= 0.15 * total and sizes["validation"] >= 0.15 * total
    assert first.record["seed"] == 3 and first.record["source"] == dataset

    def labels(data, split):
        return np.concatenate([y.numpy() for _, y in getattr(data, split)])

    def rows(data, split):
        return {x.tobytes() for batch, _ in getattr(data, split) for x in batch.numpy()}

    assert [len(labels(first, s)) for s in splits.SPLITS] == [sizes[s] for s in splits.SPLITS]
    # Keras knows each epoch's steps (a filtered images split once did not).
    assert [int(getattr(first, s).cardinality()) for s in splits.SPLITS] == [
        -(-sizes[s] // 32) for s in splits.SPLITS]
    assert np.array_equal(np.sort(labels(first, "test")), np.sort(labels(again, "test")))
    assert rows(first, "test") == rows(again, "test")
    assert rows(first, "test") != rows(other, "test")
    assert not rows(first, "test") & rows(first, "train")
    assert not rows(first, "validation") & rows(first, "train")
    for split in splits.SPLITS:  # every class in every split
        assert set(labels(first, split)) == set(range(first.num_classes))


def test_stratified_indices_need_three_examples_per_class():
    with pytest.raises(DataError, match=r"'b' has 2.*at least 3 per class"):
        splits.stratified_indices([0, 0, 0, 1, 1], ["a", "b"], 0, "where")
    parts = splits.stratified_indices([0, 0, 0, 1, 1, 1], ["a", "b"], 0, "where")
    assert all(len(parts[s]) == 2 for s in splits.SPLITS)


# --- preprocessing adapted on the training split only ----------------------------

def test_normalization_and_vocabularies_are_adapted_on_the_training_split(files):
    x = np.load(files["npz"])["x"]
    data = tfnas.load_data(f"npz:{files['npz']}", seed=0)
    indices = splits.stratified_indices(np.arange(60) % 3, ["0", "1", "2"], 0, "")
    mean = np.asarray(data.preprocessing.get_layer("normalization").mean).ravel()
    np.testing.assert_allclose(mean, x[indices["train"]].mean(axis=0), rtol=1e-5)
    assert not np.allclose(mean, x.mean(axis=0), rtol=1e-5)

    table = tfnas.load_data(f"csv:{files['csv']}", label_column="label",
                            text_columns=["review"], seed=0)
    features = {f["name"]: f for f in table.record["features"]}
    assert {name: f["kind"] for name, f in features.items()} == {
        "age": "numeric", "income $": "numeric", "city": "categorical", "review": "text"}
    assert features["income $"]["input"] == "income__"
    vectorizer = table.preprocessing.get_layer("review_vectorization")
    vocabulary = set(vectorizer.get_vocabulary())
    # Each review names its row ("said guest 17"): only training rows' numbers are words.
    labels = np.array([i % 2 for i in range(60)])  # "yes" rows even; classes sorted no, yes
    train_rows = splits.stratified_indices(1 - labels, ["no", "yes"], 0, "")["train"]
    assert {str(r) for r in train_rows} <= vocabulary
    assert not {str(r) for r in range(60) if r not in set(train_rows)} & vocabulary


def test_text_as_token_ids_for_a_sequence_space(tmp_path):
    path = tmp_path / "reviews.csv"
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["text", "label"])
        for row in range(30):
            writer.writerow([WORDS[("yes", "no")[row % 2]], ("yes", "no")[row % 2]])
    data = tfnas.load_data(f"csv:{path}", label_column="label", text_columns=["text"],
                           text_encoding="int")
    tokens, _ = next(iter(data.train))
    assert data.input_shape == (64,) and tokens.dtype == tf.int32
    assert data.vocabulary_size == 2 + 8  # padding, [UNK] and the eight words
    assert int(tf.reduce_max(tokens)) < data.vocabulary_size
    with pytest.raises(DataError, match="single text column as the only feature"):
        tfnas.load_data(f"csv:{write_table(tmp_path / 't.csv')}", label_column="label",
                        text_columns=["review"], text_encoding="int")


# --- bad data: one clear error before any training ------------------------------

def _bad_image_folder(root):
    folder = write_images(root / "broken")
    (folder / "dog" / "3.png").write_bytes(b"not a png at all")
    return f"images:{folder}", {}, "unreadable image", str(folder / "dog" / "3.png")


def _empty_class_folder(root):
    folder = write_images(root / "empty")
    os.makedirs(folder / "fox")
    return f"images:{folder}", {}, "is empty", str(folder / "fox")


def _no_class_folders(root):
    os.makedirs(root / "flat")
    return f"images:{root / 'flat'}", {}, "no class subfolders", str(root / "flat")


def _scarce_class(root):
    folder = write_images(root / "scarce", per_class=2, classes=("ant",))
    write_images(folder, classes=("bee", "cow"))
    return f"images:{folder}", {}, "too few examples", "'ant' has 2"


def _missing_label_column(root):
    path = write_table(root / "t.csv")
    return f"csv:{path}", {"label_column": "target"}, "no column", "`target`"


def _non_numeric_value(root):
    path = write_table(root / "t.csv")
    lines = open(path).read().splitlines()
    lines[5] = "n/a" + lines[5][2:]
    open(path, "w").write("\n".join(lines) + "\n")
    return (f"csv:{path}", {"label_column": "label"}, "is numeric.*line 6 holds 'n/a'",
            "column `age`")


def _npz_without_labels(root):
    np.savez(root / "x.npz", x=np.zeros((9, 2)))
    return f"npz:{root / 'x.npz'}", {}, r"expected arrays named `x`.*Missing: \['y'\]", str(
        root / "x.npz")


BAD_DATA = [_bad_image_folder, _empty_class_folder, _no_class_folders, _scarce_class,
            _missing_label_column, _non_numeric_value, _npz_without_labels]


@pytest.mark.parametrize("make", BAD_DATA, ids=[m.__name__.strip("_") for m in BAD_DATA])
def test_bad_data_gets_one_clear_error_before_any_training(make, tmp_path, capsys):
    dataset, options, match, named = make(tmp_path)
    with pytest.raises(DataError, match=match) as raised:
        tfnas.load_data(dataset, **options)
    assert named in str(raised.value)
    argv = ["search", "--dataset", dataset, "--directory", str(tmp_path / "runs"),
            "--space", "mlp", "--max-trials", "1", "--epochs", "1"]
    if "label_column" in options:
        argv += ["--label-column", options["label_column"]]
    assert cli.main(argv) == cli.EXIT_BAD_ARGUMENTS
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfnas: error: "), lines
    assert named in lines[0], lines
    runs = tmp_path / "runs"
    assert not [name for _, dirs, _ in os.walk(runs) for name in dirs
                if name.startswith("trial_")]


# --- --directory of a search for report and export -------------------------------

def test_a_search_directory_resolves_to_its_single_project(tmp_path):
    runs = tmp_path / "runs"
    os.makedirs(runs / "only")
    (runs / "only" / project.PROJECT_FILE).write_text("{}")
    (runs / "notes").mkdir()
    assert project.resolve_project_dir(None, str(runs)) == str(runs / "only")
    assert project.resolve_project_dir(str(runs), None) == str(runs / "only")
    assert project.resolve_project_dir(str(runs / "only"), None) == str(runs / "only")
    os.makedirs(runs / "second")
    (runs / "second" / project.PROJECT_FILE).write_text("{}")
    with pytest.raises(ValueError, match="holds 2 projects: only, second"):
        project.resolve_project_dir(None, str(runs))
    with pytest.raises(FileNotFoundError, match="holds no tfnas project"):
        project.resolve_project_dir(None, str(runs / "notes"))
    with pytest.raises(ValueError, match="not both or neither"):
        project.resolve_project_dir(str(runs), str(runs))


def test_cli_report_with_several_projects_lists_them(tmp_path, capsys):
    for name in ("a", "b"):
        os.makedirs(tmp_path / name)
        (tmp_path / name / project.PROJECT_FILE).write_text("{}")
    assert cli.main(["report", "--directory", str(tmp_path)]) == cli.EXIT_BAD_ARGUMENTS
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds 2 projects: a, b" in err[0]


# --- end to end: search, export, serve on raw inputs ----------------------------

def _tool(name):
    return os.path.join(os.path.dirname(sys.executable), name)


def _raw_examples(source, files, data):
    """A few raw test inputs: pixels in [0, 255], table rows as text and numbers, arrays."""
    if source == "images":
        paths = [files["images"] / name / "0.png" for name in ("cat", "dog", "owl")]
        size = tuple(data.record["image_size"])
        return np.stack([keras.utils.img_to_array(keras.utils.load_img(p, target_size=size))
                         for p in paths]).astype("float32")
    if source == "npz":
        return np.load(files["npz"])["x"][:4].astype("float32")
    with open(files["csv"], newline="") as file:
        rows = list(csv.DictReader(file))[:4]
    return {"age": np.array([float(r["age"]) for r in rows], "float32"),
            "income__": np.array([float(r["income $"]) for r in rows], "float32"),
            "city": np.array([r["city"] for r in rows] + [], dtype=object),
            "review": np.array([r["review"] for r in rows], dtype=object)}


SPACES = {"images": lambda d: ChainSpace(d.input_shape, d.num_classes, max_layers=2,
                                         filters=(4, 8)),
          "csv": lambda d: MLPSpace(d.input_shape, d.num_classes, max_layers=2, units=(8, 16)),
          "npz": lambda d: MLPSpace(d.input_shape, d.num_classes, max_layers=2, units=(8, 16))}


@pytest.mark.slow
@pytest.mark.parametrize("source", ["images", "csv", "npz"])
# The exported .keras file holds its optimizer's variables: loading skips none.
@pytest.mark.filterwarnings("error:Skipping variable loading for optimizer:UserWarning")
# Every split's size is known: no epoch ends on an exhausted iterator.
@pytest.mark.filterwarnings("error:Your input ran out of data:UserWarning")
def test_search_export_and_serve_raw_inputs(files, source, tmp_path, capsys):
    options = {"images": {"image_size": (8, 8)},
               "csv": {"label_column": "label", "text_columns": ["review"]}, "npz": {}}[source]
    data = tfnas.load_data(f"{source}:{files[source]}", batch_size=16, seed=0, **options)
    runs = tmp_path / "runs"
    tuner = tfnas.NASTuner(SPACES[source](data), max_trials=1, seed=0, directory=runs,
                           project_name=source)
    tuner.search(data.train, validation_data=data.validation, epochs=1, verbose=0)
    data.save(tuner.project_dir)
    raw = _raw_examples(source, files, data)
    feed = ({name: tf.constant(value) for name, value in raw.items()}
            if isinstance(raw, dict) else tf.constant(raw))
    in_memory = data.on_raw_inputs(tuner.get_best_models(1)[0])
    expected = keras.ops.convert_to_numpy(in_memory(feed))
    assert expected.shape == (len(next(iter(raw.values())) if isinstance(raw, dict) else raw),
                              data.num_classes)

    # tfnas export from the search's --directory (the folder holding the project).
    out = tmp_path / "exported"
    formats = "saved_model,keras" + (",tflite" if source != "csv" else "")
    assert cli.main(["export", "--directory", str(runs), str(out), "--formats", formats]) == 0
    keras_file = keras.saving.load_model(out / "model.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras_file(feed)), expected,
                               atol=1e-5)
    if source != "csv":  # numeric inputs: the LiteRT interpreter runs it as is
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(out / "model.tflite"))
        (input_detail,), (output_detail,) = (interpreter.get_input_details(),
                                             interpreter.get_output_details())
        interpreter.resize_tensor_input(input_detail["index"], raw.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(input_detail["index"], raw)
        interpreter.invoke()
        np.testing.assert_allclose(interpreter.get_tensor(output_detail["index"]), expected,
                                   atol=1e-5)
    with open(out / "architecture.json") as file:
        inputs = json.load(file)["inputs"]
    saved_model = str(out / "saved_model")

    if isinstance(raw, dict):
        assert [i["name"] for i in inputs] == list(raw)
        exprs = ";".join(f"{name}={[v if isinstance(v, str) else float(v) for v in value]!r}"
                         for name, value in raw.items())
        arguments = ["--input_exprs", exprs]
    else:
        (name,) = [i["name"] for i in inputs]
        np.save(tmp_path / "raw.npy", raw)
        arguments = ["--inputs", f"{name}={tmp_path / 'raw.npy'}"]
    result = subprocess.run(
        [_tool("saved_model_cli"), "run", "--dir", saved_model, "--tag_set", "serve",
         "--signature_def", "serving_default", "--outdir", str(tmp_path / "cli"), *arguments],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "cli" / "output_0.npy"), expected, atol=1e-5)

    # A fresh interpreter without tfnas serves the SavedModel on the raw inputs.
    listed = ({name: value.tolist() for name, value in raw.items()}
              if isinstance(raw, dict) else raw.tolist())
    (tmp_path / "raw.json").write_text(json.dumps(listed))
    run_fresh_python(
        "import json, sys, numpy as np, tensorflow as tf\n"
        f"raw = json.load(open({str(tmp_path / 'raw.json')!r}))\n"
        f"served = tf.saved_model.load({saved_model!r}).signatures['serving_default']\n"
        "outputs = (served(**{k: tf.constant(v) for k, v in raw.items()})\n"
        "           if isinstance(raw, dict) else served(tf.constant(raw, tf.float32)))\n"
        f"np.save({str(tmp_path / 'fresh.npy')!r}, outputs['output_0'].numpy())\n"
        "assert not [m for m in sys.modules if m.startswith('tfnas')]\n", timeout=300)
    np.testing.assert_allclose(np.load(tmp_path / "fresh.npy"), expected, atol=1e-5)

    # The report of the search's --directory shows the recorded split.
    assert cli.main(["report", "--directory", str(runs), "--plots", "none"]) == 0
    printed = capsys.readouterr().out
    sizes = data.record["split_sizes"]
    assert (f"Data: {source}:{files[source]} (seed 0): {sizes['train']} train / "
            f"{sizes['validation']} validation / {sizes['test']} test") in printed


@pytest.mark.slow
def test_cli_search_on_a_csv_records_data_and_exports_raw_input_model(
        files, tmp_path, capsys):
    runs = tmp_path / "runs"
    # In this process: the command's code without a TensorFlow start-up.
    code = cli.main(["search", "--dataset", f"csv:{files['csv']}",
                     "--label-column", "label", "--text-column", "review", "--space", "mlp",
                     "--strategy", "random",
                     "--space-arg", "max_layers=1", "--max-trials", "1", "--epochs", "1",
                     "--directory", str(runs), "--project-name", "table", "--seed", "5"])
    assert code == 0, capsys.readouterr().err[-3000:]
    with open(runs / "table" / "data.json") as file:
        record = json.load(file)
    assert record["seed"] == 5 and record["label_column"] == "label"
    assert sum(record["split_sizes"].values()) == 60
    served = tf.saved_model.load(str(runs / "table" / "best" / "saved_model"))
    outputs = served.signatures["serving_default"](
        age=tf.constant([30.0]), income__=tf.constant([1500.0]), city=tf.constant(["rome"]),
        review=tf.constant(["great tasty lovely, said guest 3"]))
    assert outputs["output_0"].shape == (1, 2)


def test_a_space_that_embeds_tokens_gets_the_vocabulary_size():
    class Embedding:
        def __init__(self, input_shape, num_classes, vocabulary_size=100):
            pass

    class Data:
        vocabulary_size = 57

    assert tfnas.datasets.space_arguments(Embedding, Data(), {}) == {"vocabulary_size": 57}
    assert tfnas.datasets.space_arguments(Embedding, Data(), {"vocabulary_size": 9}) == {}
    assert tfnas.datasets.space_arguments(MLPSpace, Data(), {}) == {}
    assert tfnas.datasets.space_arguments(Embedding, object(), {}) == {}
