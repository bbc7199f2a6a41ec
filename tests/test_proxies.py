"""Training-free proxies (`tfnas.proxies`), proxy screening and `tfnas rank`."""

import json
import math

import keras
import keras_tuner as kt
import numpy as np
import pytest

import tfnas
from tfnas import cli, proxies, screening, spaces
from tfnas.architecture import Architecture
from tfnas.lookup import LookupTuner
from tfnas.oracles import RandomOracle, RegularizedEvolutionOracle
from tfnas.sampling import sample_architectures

DIGITS = (8, 8, 1)
TRAINING_FREE = ("synflow", "naswot", "snip", "grad_norm", "jacob_cov")
# The smallest version of every built-in space.
TINY = {
    "mlp": {"max_layers": 2, "units": (8, 16)},
    "chain": {"max_layers": 2, "filters": (8, 16)},
    "cell": {"num_cells": 3, "num_blocks": 2, "filters": 8},
    "nb201": {"cells_per_stage": 1, "filters": 8},
    "macro": {"init_filters": 8, "head_filters": 32},
    "mobile": {"width_multiplier": 0.25, "num_blocks": 2},
    "sequence": {"max_blocks": 2, "widths": (8,)},
    "transformer": {"max_layers": 1, "model_dims": (16,), "ff_units": (32,)},
}
SEQUENCES = ("sequence", "transformer")  # spaces of (length, features) inputs


@pytest.fixture(scope="module")
def batch():
    return proxies.proxy_batch(tfnas.load_data("digits", batch_size=32, seed=0), 32, seed=0)


def tiny_chain(**kwargs):
    arguments = dict(max_layers=2, filters=(4, 8), operations=("conv3x3", "maxpool3x3"),
                     activations=("relu",), skips=False)
    arguments.update(kwargs)
    return spaces.ChainSpace(DIGITS, 10, **arguments)


def test_every_proxy_is_deterministic_under_a_seed(batch):
    space = spaces.ChainSpace(DIGITS, 10, max_layers=3, filters=(8, 16))
    _, samples = sample_architectures(space, 2, seed=3)
    first = proxies.score_architecture(space, samples[1], proxies.PROXIES, batch, seed=5)
    again = proxies.score_architecture(space, samples[1], proxies.PROXIES, batch, seed=5)
    assert first == again
    assert all(math.isfinite(first[p]) for p in proxies.PROXIES)
    other = proxies.score_architecture(space, samples[1], ["snip"], batch, seed=6)
    assert other["snip"] != first["snip"]  # the seed sets the weights
    # The batch is a seeded choice of examples too.
    data = tfnas.load_data("digits", batch_size=32, seed=0)
    x_a, y_a = proxies.proxy_batch(data, 16, seed=1)
    x_b, y_b = proxies.proxy_batch(data, 16, seed=1)
    assert np.array_equal(x_a, x_b) and np.array_equal(y_a, y_b)
    assert not np.array_equal(proxies.proxy_batch(data, 16, seed=2)[0], x_a)


@pytest.mark.slow  # a cell or mobile candidate takes seconds to trace
@pytest.mark.parametrize("name", sorted(spaces.BUILT_IN))
def test_every_proxy_runs_on_every_built_in_space(name, batch):
    if name in SEQUENCES:
        data = tfnas.load_data("mnist1d", batch_size=32, seed=0)
        space = spaces.get(name, data.input_shape, 10, **TINY[name])
        batch = proxies.proxy_batch(data, 32, seed=0)
    else:
        space = spaces.get(name, DIGITS, 10, **TINY[name])
    _, samples = sample_architectures(space, 1, seed=0)
    scores = proxies.score_architecture(space, samples[0], proxies.PROXIES, batch, seed=0)
    assert set(scores) == set(proxies.PROXIES)
    # naswot is -inf, as in the paper, when two examples share an activation
    # pattern (e.g. chain's pick here: average pooling, then one convolution).
    assert all(math.isfinite(value) for name, value in scores.items() if name != "naswot"), (
        scores)
    assert scores["naswot"] == -math.inf or math.isfinite(scores["naswot"])
    assert scores["params"] > 0 and scores["flops"] > 0 and scores["synflow"] > 0


def conv_layer(index, op, filters, activation="relu", stride=1):
    return {f"layer_{index}/op": op, f"layer_{index}/filters": filters,
            f"layer_{index}/activation": activation, f"layer_{index}/stride": stride}


REAL = [  # a few real networks of the chain space below
    {"num_layers": 1, **conv_layer(0, "conv3x3", 8)},
    {"num_layers": 2, **conv_layer(0, "conv3x3", 16), **conv_layer(1, "sepconv3x3", 16, stride=2),
     "layer_1/skip/0": True},
    {"num_layers": 2, **conv_layer(0, "sepconv5x5", 8, "swish"), **conv_layer(1, "conv3x3", 16),
     "layer_1/skip/0": False},
]


def test_a_network_with_all_zero_weights_ranks_last(batch):
    space = spaces.ChainSpace(DIGITS, 10, max_layers=2, filters=(8, 16))
    real = [proxies.score_architecture(space, values, TRAINING_FREE, batch) for values in REAL]
    broken = {}
    for proxy, policy in (("synflow", "float64"), ("naswot", None)):
        keras.backend.clear_session()
        model = proxies.build(space, REAL[1], seed=0, dtype_policy=policy)
        for variable in model.weights:
            variable.assign(np.zeros(variable.shape))
        wanted = ["synflow"] if proxy == "synflow" else list(TRAINING_FREE[1:])
        broken.update(proxies.score_model(model, wanted, batch))
    for proxy in TRAINING_FREE:
        scores = [r[proxy] for r in real]
        assert all(math.isfinite(score) and score > broken[proxy] for score in scores), (
            proxy, scores, broken[proxy])
        ranked = sorted(scores + [broken[proxy]], key=proxies.rank_key)
        assert ranked[-1] == broken[proxy]


def test_synflow_matches_a_hand_computed_value():
    w1 = np.array([[0.5, -1.0, 0.25], [-2.0, 0.75, -0.5]])  # 2 inputs -> 3 units
    b1 = np.array([0.1, -0.2, 0.3])
    w2 = np.array([[1.0, -0.5], [0.25, 2.0], [-1.5, 0.5]])  # 3 units -> 2 outputs
    b2 = np.array([-0.3, 0.4])
    inputs = keras.Input((2,), dtype="float64")
    hidden = keras.layers.Dense(3, activation="relu", dtype="float64")(inputs)
    outputs = keras.layers.Dense(2, activation="softmax", dtype="float64")(hidden)
    model = keras.Model(inputs, outputs)
    model.set_weights([w1, b1, w2, b2])
    # All weights positive, input ones: every ReLU is active; R = sum of the
    # logits (a softmax's outputs always sum to 1).
    h = np.ones(2) @ np.abs(w1) + np.abs(b1)
    # dR/dW2[i, j] = h[i]; dR/dW1[k, i] = 1 * sum_j |W2[i, j]|.
    expected = (np.abs(w2) * h[:, None]).sum() + (np.abs(w1) * np.abs(w2).sum(axis=1)).sum()
    assert proxies.score_model(model, ["synflow"])["synflow"] == pytest.approx(expected, 1e-12)
    assert np.array_equal(model.get_weights()[0], w1)  # the weights are restored


def test_synflow_replaces_batch_normalization_by_the_identity():
    inputs = keras.Input((2,))
    hidden = keras.layers.Dense(2, use_bias=False)(inputs)
    normalized = keras.layers.BatchNormalization()(hidden)
    model = keras.Model(inputs, keras.layers.Dense(1, use_bias=False)(normalized))
    model.set_weights([np.full((2, 2), -1.0), np.full(2, 5.0), np.full(2, 7.0),
                       np.full(2, 3.0), np.full(2, 0.25), np.full((2, 1), 2.0)])
    # Without BN: h = 2 per unit; dR/dW2 = 2 each, dR/dW1 = 2 each.
    assert proxies.score_model(model, ["synflow"])["synflow"] == pytest.approx(
        2 * 2 * 2 + 4 * 1 * 2, rel=1e-4)
    assert model.get_weights()[1][0] == 5.0  # restored


def test_naswot_kernel_counts_agreeing_units():
    codes = np.array([[1, 0, 1, 1], [1, 1, 0, 1], [0, 0, 0, 0]])
    kernel = proxies.naswot_kernel(codes)
    hamming = (codes[:, None, :] != codes[None, :, :]).sum(axis=-1)
    assert np.array_equal(kernel, 4 - hamming)
    # Two examples with one pattern: a singular kernel, the worst score.
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(4, activation="relu")(inputs))
    same = np.ones((2, 3), dtype="float32")
    assert proxies.naswot(model, same) == -math.inf
    x = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    assert proxies.activation_codes(model, x).shape == (4, 4)


def test_proxies_reject_unknown_names_and_missing_batches():
    with pytest.raises(ValueError, match=r"`proxy`, expected one of .*Received: proxy='zen'"):
        proxies.ProxyScorer(tiny_chain(), "zen")
    model = tiny_chain().build(kt.HyperParameters())
    with pytest.raises(ValueError, match=r"\['naswot'\] need a batch"):
        proxies.score_model(model, ["params", "naswot"])


class RecordingScorer:
    """A proxy that scores by a fixed random number per architecture."""

    def __init__(self):
        self.asked = []

    def __call__(self, values):
        self.asked.append(dict(values))
        return float(np.random.default_rng(
            int(Architecture(values).hash[:8], 16)).random())


@pytest.mark.parametrize("oracle_class", [RandomOracle, RegularizedEvolutionOracle])
def test_screening_trains_the_best_of_k_proposals_by_proxy(oracle_class, tmp_path):
    scorer = RecordingScorer()
    kwargs = {"population_size": 3, "sample_size": 2} if oracle_class is not RandomOracle else {}
    oracle = oracle_class(objective=kt.Objective("score", "max"), max_trials=8, seed=2,
                          screen=screening.ProxyScreen(scorer, candidates=4), **kwargs)
    LookupTuner(oracle, tiny_chain(), lambda v: float(len(v)), signal_name="score",
                directory=tmp_path, project_name="screened").search()
    trials = [oracle.trials[i] for i in oracle.start_order]
    assert len(trials) == 8 and len(scorer.asked) == 4 * 8
    for index, trial in enumerate(trials):
        asked = scorer.asked[4 * index: 4 * index + 4]
        best = max(asked, key=scorer)
        assert Architecture.from_trial(trial).values == Architecture(best).values
    # Without a screen, the first proposal of each trial is trained instead.
    plain = oracle_class(objective=kt.Objective("score", "max"), max_trials=1, seed=2,
                         **kwargs)
    LookupTuner(plain, tiny_chain(), lambda v: 1.0, signal_name="score",
                directory=tmp_path, project_name="plain").search()
    first = Architecture.from_trial(plain.trials[plain.start_order[0]]).values
    assert first == Architecture(scorer.asked[0]).values


@pytest.mark.slow
def test_nas_tuner_screens_by_a_real_proxy(tmp_path, digits):
    tuner = tfnas.NASTuner(tiny_chain(), oracle="evolution", max_trials=2, seed=0,
                           proxy="synflow", proxy_candidates=3, directory=tmp_path,
                           project_name="p", progress=False, measure_latency=False)
    screen = tuner.oracle.screen
    tuner.search(digits.train, validation_data=digits.validation, epochs=1, verbose=0)
    assert screen.scorer.batch is not None and len(screen.scorer.batch[0]) == 64
    last = tuner.oracle.trials[tuner.oracle.start_order[-1]]
    chosen = screen.scorer(Architecture.from_trial(last).values)
    assert len(screen.last_scores) == 3 and chosen == max(screen.last_scores)
    with pytest.raises(ValueError, match="cannot screen its proposals: RandomSearchOracle"):
        tfnas.NASTuner(tiny_chain(), oracle="kt-random", max_trials=2, proxy="naswot",
                       directory=tmp_path, project_name="kt")


def test_rank_cli_ranks_a_tiny_space_end_to_end(tmp_path, capsys, batch):
    output = tmp_path / "nested" / "top.json"
    output.parent.mkdir()
    code = cli.main(["rank", "--space", "chain", "--space-arg", "max_layers=1",
                     "--space-arg", "filters=[4,8]", "--space-arg", "skips=false",
                     "--space-arg", 'operations=["conv3x3","maxpool3x3"]',
                     "--proxy", "naswot", "--top", "3", "--batch-size", "32",
                     "--output", str(output)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Top 3 of 6 architectures of 'chain' by naswot" in printed
    record = json.loads(output.read_text())
    assert record["ranked"] == 6 and [row["rank"] for row in record["top"]] == [1, 2, 3]
    scores = [row["naswot"] for row in record["top"]]
    assert scores == sorted(scores, reverse=True)
    space = tiny_chain(max_layers=1, filters=(4, 8), activations=("relu", "swish"))
    every = proxies.sample_space(space)
    assert len(every) == 6
    best = max(proxies.score_architecture(space, v, ["naswot"], batch)["naswot"] for v in every)
    assert scores[0] == pytest.approx(best)


def test_rank_cli_rejects_a_bad_proxy_and_a_too_large_space(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["rank", "--proxy", "zen"])
    assert exit_info.value.code == 2
    code = cli.main(["rank", "--space", "chain", "--proxy", "params"])
    assert code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert error.startswith("tfnas: error: The space has 107871300 architectures, too many")
    assert "pass `samples` (--samples N)" in error


def test_the_predictor_can_take_the_proxy_as_a_feature(tmp_path):
    from tfnas.oracles import PredictorOracle

    scorer = RecordingScorer()
    oracle = PredictorOracle(objective=kt.Objective("score", "max"), max_trials=4, seed=0,
                             initial_trials=2, ensemble_size=2, num_candidates=5,
                             proxy_feature=True,
                             screen=screening.ProxyScreen(scorer, candidates=1))
    LookupTuner(oracle, tiny_chain(), lambda v: float(len(v)), signal_name="score",
                directory=tmp_path, project_name="predictor").search()
    assert len(oracle.trials) == 4 and scorer.asked  # candidates were scored
    architectures = [t.hyperparameters.values for t in oracle.trials.values()]
    features = oracle.encode(architectures)
    plain = PredictorOracle(objective=kt.Objective("score", "max"), max_trials=4, seed=0)
    plain.hyperparameters = oracle.hyperparameters
    assert features.shape[1] == plain.encode(architectures).shape[1] + 1
    expected = proxies.standardized([scorer(v) for v in architectures])
    assert np.allclose(features[:, -1], expected, atol=1e-6)
    with pytest.raises(ValueError, match="`proxy_feature=True` without a proxy"):
        PredictorOracle(objective=kt.Objective("score", "max"),
                        proxy_feature=True).encode(architectures)


TINY_CHAIN_ARGS = ["--space", "chain", "--space-arg", "max_layers=1",
                   "--space-arg", "filters=[4,8]", "--space-arg", "skips=false",
                   "--space-arg", 'operations=["conv3x3","maxpool3x3"]',
                   "--space-arg", 'activations=["relu"]']


@pytest.mark.slow
def test_search_cli_trains_the_best_proposal_by_proxy(tmp_path, capsys):
    # 20 proposals of a 4-architecture space: the first trial is the space's
    # best by naswot, scored on the batch the CLI hands the screen.
    code = cli.main(["search", *TINY_CHAIN_ARGS, "--strategy", "evolution",
                     "--max-trials", "1", "--epochs", "1", "--proxy", "naswot",
                     "--proxy-candidates", "20", "--directory", str(tmp_path / "runs"),
                     "--project-name", "screened"])
    assert code == 0
    capsys.readouterr()
    data = tfnas.load_data("digits", batch_size=32, seed=0)
    space = spaces.ChainSpace(DIGITS, 10, max_layers=1, filters=(4, 8), skips=False,
                              operations=("conv3x3", "maxpool3x3"), activations=("relu",))
    every = proxies.sample_space(space)
    assert len(every) == 4
    scorer = proxies.ProxyScorer(space, "naswot", proxies.proxy_batch(data.train, 64, 0), seed=0)
    best = max(every, key=lambda values: scorer(values))
    tuner = tfnas.NASTuner(space, oracle="evolution", max_trials=1, seed=0,
                           directory=tmp_path / "runs", project_name="screened",
                           progress=False)
    first = tuner.oracle.trials[tuner.oracle.start_order[0]]
    assert Architecture.from_trial(first).values == Architecture(best).values
    # Without --proxy, seed 0's first proposal is another architecture.
    assert cli.main(["search", *TINY_CHAIN_ARGS, "--max-trials", "1", "--epochs", "1",
                     "--directory", str(tmp_path / "runs"), "--project-name", "plain"]) == 0
    plain = tfnas.NASTuner(space, oracle="evolution", max_trials=1, seed=0,
                           directory=tmp_path / "runs", project_name="plain", progress=False)
    unscreened = plain.oracle.trials[plain.oracle.start_order[0]]
    assert Architecture.from_trial(unscreened).values != Architecture(best).values


@pytest.mark.parametrize("arguments, expected", [
    (["--strategy", "kt-random", "--proxy", "naswot"],
     "--proxy works with the strategies ["),
    (["--strategy", "darts", "--proxy", "naswot"],
     "--strategy darts takes no --halving, --mnasnet-target, --early-stopping or --proxy"),
    (["--proxy-candidates", "3"], "--proxy-candidates needs --proxy"),
])
def test_search_cli_rejects_proxy_arguments_it_cannot_use(arguments, expected, tmp_path,
                                                          capsys):
    code = cli.main(["search", *TINY_CHAIN_ARGS, *arguments, "--max-trials", "1",
                     "--epochs", "1", "--directory", str(tmp_path / "runs")])
    assert code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("tfnas: error: ")
    assert expected in error[0]
    assert "Received: --" in error[0] or "darts" in expected
    assert not any((tmp_path / "runs").glob("*/trial_*"))  # nothing trained


@pytest.mark.parametrize("arguments, expected", [
    (["--proxy", "zen"], "--proxy: invalid choice: 'zen'"),
    (["--proxy", "naswot", "--proxy-candidates", "0"],
     "--proxy-candidates: expected a positive integer, received '0'"),
])
def test_search_cli_parser_rejects_bad_proxy_values(arguments, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["search", *arguments])
    assert exit_info.value.code == 2
    assert expected in capsys.readouterr().err


@pytest.mark.slow
def test_the_chief_screens_and_a_worker_trains_the_chosen_proposal(tmp_path, monkeypatch,
                                                                   digits):
    import threading

    from tfnas import distributed

    space = tiny_chain(max_layers=1)
    every = proxies.sample_space(space)
    largest = max(every, key=lambda values: proxies.build(space, values, 0).count_params())
    arguments = dict(oracle="evolution", max_trials=1, seed=0, proxy="params",
                     proxy_candidates=20, progress=False, measure_latency=False)
    chief = tfnas.NASTuner(space, directory=tmp_path / "chief", project_name="p",
                           **arguments)
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(distributed.free_port()))
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "worker0")
    server = threading.Thread(target=distributed.serve, args=(chief.oracle,),
                              kwargs={"poll_seconds": 0.02}, daemon=True)
    server.start()
    # The worker gets the chief's arguments (the launcher gives both one
    # command line); its oracle is a client of the chief's, which screens.
    worker = tfnas.NASTuner(space, directory=tmp_path / "worker", project_name="p",
                            **arguments)
    assert worker.role == "worker" and getattr(worker.oracle, "screen", None) is None
    worker.search(digits.train, validation_data=digits.validation, epochs=1, verbose=0)
    server.join(timeout=60)
    assert not server.is_alive()
    (trial,) = chief.oracle.trials.values()
    assert trial.status == "COMPLETED"
    assert Architecture.from_trial(trial).values == Architecture(largest).values
    assert len(chief.oracle.screen.last_scores) == 20
