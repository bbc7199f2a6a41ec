"""Early stopping rules against full training, in regularized evolution
(or random search: `--strategy random`).

On each dataset and seed, the same search (regularized evolution, or random
search; same number of trials, same epochs, same seed) runs without early
stopping, with the median stopping rule and with learning-curve
extrapolation, in an order rotated with the seed (interleaved, side by
side on the same machine). For each run: the total training time (the sum of the trials' `model.fit`
times, per-epoch reports included), the epochs trained, the number of
trials stopped early, and the test accuracy of the best trial's model. The
table reports medians over seeds; the saving is the median of the per-seed
savings against the run without a rule; the spread is the range over seeds
of the best test accuracy without a rule.

Two modes. `--mode train`: every search trains its trials with `NASTuner`
(real, noisy timings; minutes per search on a loaded machine). `--mode
replay` (default): every architecture is trained once, with weights from
seed 0, for `--epochs` epochs on the real data (its validation and test
accuracy and the `fit` time of each epoch recorded, and cached in
`results/early_stopping_curves_<dataset>.json`), and the searches replay
these curves epoch by epoch through the real oracle and rule
(`tfnas.early_stopping.report_epoch`, as `NASTuner` does): a stopped trial
costs the recorded time of the epochs it trained, its best trial's test
accuracy is that of its best epoch (the checkpoint `NASTuner` keeps). The
three variants then differ only by the rule, not by timing noise.

Spaces: the MLP space (`--space mlp`, default), or a ground-truth table's
space (`--table PATH`, a `tfnas table` CSV with its .meta.json: its space,
space arguments, dataset and batch size, e.g. /work/tables/digits.csv); the
best trial's architecture is then also judged by the table's mean test
accuracy over its seeds (`test_acc_mean`), beside its own model's.

Usage: python benchmarks/early_stopping.py [--datasets digits mnist1d]
       [--trials 30] [--epochs 20] [--seeds 3] [--table PATH]
       [--strategy evolution|random]
       [--rules none median curve "curve, constant final noise (stop 28)"]
"""

import argparse
import collections
import csv
import json
import os
import shlex
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tfnas  # noqa: E402
from tfnas import early_stopping  # noqa: E402
from tfnas import spaces  # noqa: E402
from tfnas import trials as trials_module  # noqa: E402
from tfnas.architecture import Architecture  # noqa: E402

import report  # noqa: E402

RULES = ("none", "median", "curve")
# Rules beside the library's, for comparison (`--rules`): name -> the rule.
VARIANTS = {
    "curve, constant final noise (stop 28)": lambda: early_stopping.CurveExtrapolationRule(
        final_noise="constant"),
}
MODES = {
    "train": "Every trial trained by `NASTuner` (mode train).",
    "replay": ("Mode replay: every architecture trained once for all its epochs (weights "
               "from seed 0; this run trained {trained} of them, the rest came from the "
               "cache) with `NASTuner`'s fit callbacks (its best-epoch checkpoint, its stop "
               "on a non-finite loss; its training state built first; its lean grappler "
               "settings; its fused Adam update), the searches "
               "replaying the recorded curves through the real oracle and rule; a trial's "
               "training time is the recorded `fit` time up to the end of the epochs it "
               "trained (the set-up before the first epoch and the end of `fit` after the "
               "last, i.e. the checkpoint's write, included) plus the time of its "
               "per-epoch reports to the oracle and the rule's decisions, measured in the "
               "replay; the best trial's test accuracy that of its best epoch."),
}


def mlp_space(data):
    return spaces.MLPSpace(data.input_shape, data.num_classes, max_layers=3,
                           units=(8, 16, 32, 64, 128), activations=("relu", "tanh", "elu"))


def evolution_sizes(trials, population, sample_size):
    """Evolution's population and tournament: the library's defaults for
    `trials` (`tfnas.oracles.budget_defaults`) unless given."""
    from tfnas import oracles

    sizes = oracles.budget_defaults("evolution", trials)
    if population is not None:
        sizes["population_size"] = population
    if sample_size is not None:
        sizes["sample_size"] = sample_size
    return sizes


def make_oracle(strategy, trials, seed, population, sample_size):
    """The search's oracle: regularized evolution at `evolution_sizes`, or
    random search."""
    import keras_tuner as kt

    from tfnas import oracles

    sizes = evolution_sizes(trials, population, sample_size) if strategy == "evolution" else {}
    return oracles.get(strategy, objective=kt.Objective("val_accuracy", "max"),
                       max_trials=trials, seed=seed, **sizes)


def read_ground_truth(path):
    """`(meta, {architecture JSON: mean test accuracy})` of a `tfnas table` CSV."""
    from tfnas.bench import tables

    meta = tables.read_meta(tables.meta_path(path))
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    final = meta.get("final", "test_acc_mean")
    return meta, {Architecture(json.loads(row["arch"])).to_json(): float(row[final])
                  for row in rows}


def make_rule(name):
    """The rule of a name in `RULES` or `VARIANTS`, None for "none"."""
    return VARIANTS[name]() if name in VARIANTS else early_stopping.get(
        None if name == "none" else name)


def run_search(data, space, rule, seed, trials, epochs, oracle, directory):
    """One search; returns its training time, stops and best trial."""
    keras.utils.set_random_seed(seed)
    tuner = tfnas.NASTuner(space, oracle=oracle,
                           early_stopping=make_rule(rule),
                           directory=directory, project_name=f"{rule}-{seed}",
                           measure_latency=False, count_flops=False, log_dir=None,
                           progress=False)
    start = time.perf_counter()
    tuner.search(data.train, validation_data=data.validation, epochs=epochs, verbose=0)
    wall = time.perf_counter() - start
    ended = [t for t in tuner.oracle.trials.values() if t.status == trials_module.COMPLETED]
    train_time = sum(t.metrics.get_last_value("train_time_s") for t in ended)
    epochs_trained = sum(t.metrics.get_last_value("epochs") for t in ended)
    stopped = [t for t in ended if trials_module.is_stopped_early(t)]
    stopped_at = [int(t.metrics.get_last_value("stopped_at_epoch")) for t in stopped]
    best = tuner.oracle.get_best_trials(1)[0]
    model = tuner.load_model(best)
    test = model.evaluate(data.test, verbose=0, return_dict=True)["accuracy"]
    curves = {t.trial_id: [round(float(v), 4) for v in early_stopping.learning_curve(
        t, "val_accuracy")[1]] for t in ended}
    return {"train_time": train_time, "cpu": float("nan"), "wall": wall, "reports": float("nan"),
            "epochs": epochs_trained,
            "stopped": len(stopped), "stopped_at": sorted(stopped_at), "test": test,
            "best_stopped": trials_module.is_stopped_early(best),
            "best": Architecture.from_trial(best).to_json(), "curves": curves}


class CurveStore:
    """Learning curves of architectures trained once, cached in a JSON file."""

    def __init__(self, path, data, space, epochs, batch_size, data_seed=0):
        self.path, self.data, self.space, self.epochs = path, data, space, epochs
        self.batch_size, self.data_seed = batch_size, data_seed
        self.train_arrays = None  # the training split, read once (see `_training_set`)
        self.curves = {}
        self.trained = 0
        if os.path.exists(path):  # curves recorded through NASTuner's fit callbacks
            with open(path) as file:
                self.curves = {k: v for k, v in json.load(file).items()
                               if len(v["val"]) >= epochs and "teardown" in v
                               and v.get("graph_optimization") == "lean"
                               and v.get("data_order") == "per-architecture"
                               and v.get("adam_update") == "fused"}

    def get(self, values):
        key = Architecture(values).to_json()
        if key not in self.curves:
            self.curves[key] = self._train(values)
            self.trained += 1
            with open(self.path, "w") as file:
                json.dump(self.curves, file)
        return self.curves[key]

    def _training_set(self, key):
        """The training split batched and reshuffled each epoch as `tfnas.load_data`
        does, but built anew for architecture `key` with a shuffle seed that is a
        function of (data seed, `key`) only: one shared dataset's shuffle advances
        with every epoch trained on it, which made a curve depend on how many
        epochs were recorded before it in this process."""
        import hashlib

        import tensorflow as tf

        if self.train_arrays is None:  # the examples once, in a canonical order
            batches = list(self.data.train.as_numpy_iterator())
            inputs, labels = (np.concatenate(part) for part in zip(*batches))
            # Sorted by (label, input values): independent of the shared set's shuffle.
            order = np.lexsort(inputs.reshape(len(inputs), -1).T[::-1].tolist() + [labels])
            self.train_arrays = inputs[order], labels[order]
        digest = hashlib.sha256(f"{self.data_seed}:{key}".encode()).digest()
        shuffle_seed = int.from_bytes(digest[:4], "big") % 2**31
        dataset = tf.data.Dataset.from_tensor_slices(self.train_arrays)
        dataset = dataset.shuffle(4096, seed=shuffle_seed, reshuffle_each_iteration=True)
        return dataset.batch(self.batch_size).prefetch(tf.data.AUTOTUNE)

    def _train(self, values):
        """Trains `values` as a `NASTuner` trial's `fit` does (its training state
        built first, its best-epoch checkpoint and non-finite-loss callbacks, its
        lean grappler settings: `tfnas.graph_options`, its fused Adam update:
        `tfnas.optimizers.fused_updates`; the
        per-epoch reports to the oracle are timed by the replay itself), and
        records its curves and times: `setup` from the start (where `NASTuner`
        starts `train_time_s`) to the first epoch, `seconds`/`cpu` each epoch
        from its start to the next one's (the callbacks' epoch ends included,
        this recorder's test evaluation excluded), `teardown` from the end of
        the last epoch to the return of `fit` (the checkpoint's write)."""
        from tfnas import checkpoints, compat, graph_options, optimizers, prebuild, proxies
        from tfnas.tuner import StopOnNonFiniteLoss

        keras.backend.clear_session()
        model = proxies.build(self.space, values, seed=0)  # sets the global seed
        train = self._training_set(Architecture(values).to_json())
        record = {"setup": 0.0, "setup_cpu": 0.0, "val": [], "test": [], "seconds": [],
                  "cpu": [], "teardown": 0.0, "teardown_cpu": 0.0,
                  "graph_optimization": "lean", "data_order": "per-architecture",
                  "adam_update": "fused"}
        test = self.data.test
        marks = []  # (wall, cpu) at each epoch's start, then at the end of training
        evaluating = [0.0, 0.0]  # this recorder's test evaluations, per epoch

        def now():
            return time.perf_counter(), time.process_time()

        class Record(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                marks.append(now())

            def on_epoch_end(self, epoch, logs=None):
                record["val"].append(round(float(logs["val_accuracy"]), 6))
                before = now()
                accuracy = self.model.evaluate(test, verbose=0, return_dict=True)["accuracy"]
                after = now()
                evaluating[0] += after[0] - before[0]
                evaluating[1] += after[1] - before[1]
                record["test"].append(round(float(accuracy), 6))
                record.setdefault("evaluating", []).append(tuple(evaluating))
                evaluating[0] = evaluating[1] = 0.0

            def on_train_end(self, logs=None):
                marks.append(now())

        with tempfile.TemporaryDirectory(prefix="tfnas-curve-") as folder:
            checkpoint = compat.save_best_epoch_class()(
                keras_tuner_objective(), os.path.join(folder, "checkpoint.weights.h5"))
            callbacks = [Record(), checkpoint, StopOnNonFiniteLoss()]
            checkpoints.make_atomic(callbacks)  # as NASTuner does
            start = now()
            prebuild.build_training_state(model, prebuild.data_spec(train))
            with graph_options.candidate_graph_optimization(), \
                    optimizers.fused_updates(model):  # as NASTuner does
                model.fit(train, validation_data=self.data.validation,
                          epochs=self.epochs, verbose=0, shuffle=False, callbacks=callbacks)
            end = now()
        spent = record.pop("evaluating")
        record["setup"] = round(marks[0][0] - start[0], 4)
        record["setup_cpu"] = round(marks[0][1] - start[1], 4)
        for epoch in range(self.epochs):
            (wall, cpu), (next_wall, next_cpu) = marks[epoch], marks[epoch + 1]
            record["seconds"].append(round(next_wall - wall - spent[epoch][0], 4))
            record["cpu"].append(round(next_cpu - cpu - spent[epoch][1], 4))
        record["teardown"] = round(end[0] - marks[-1][0], 4)
        record["teardown_cpu"] = round(end[1] - marks[-1][1], 4)
        return record


def keras_tuner_objective():
    import keras_tuner as kt

    return kt.Objective("val_accuracy", "max")


def replay_search(store, space, rule, seed, trials, epochs, oracle, directory):
    """One search whose trials replay recorded curves."""
    from tfnas.lookup import LookupTuner

    if rule != "none":
        early_stopping.attach(oracle, make_rule(rule))
    outcome = {}

    class ReplayTuner(LookupTuner):
        def run_trial(self, trial):
            curve = store.get(trial.hyperparameters.values)
            trained = epochs
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            for epoch in range(epochs):  # reports and the rule, timed for real
                if early_stopping.report_epoch(self.oracle, trial.trial_id, epoch,
                                               {"val_accuracy": curve["val"][epoch]}, epochs):
                    trained = epoch + 1
                    break
            reports = (time.perf_counter() - start_wall, time.process_time() - start_cpu)
            best_epoch = max(range(trained), key=lambda e: (curve["val"][e], -e))
            outcome[trial.trial_id] = (
                curve["test"][best_epoch], trained,
                curve["setup"] + sum(curve["seconds"][:trained]) + curve["teardown"]
                + reports[0],
                curve["setup_cpu"] + sum(curve["cpu"][:trained]) + curve["teardown_cpu"]
                + reports[1], reports[0])
            return {"val_accuracy": curve["val"][best_epoch], "epochs": float(trained)}

    tuner = ReplayTuner(oracle, space, None, directory=directory,
                        project_name=f"{rule}-{seed}")
    tuner.search()
    ended = [t for t in oracle.trials.values() if t.status == trials_module.COMPLETED]
    stopped = [t for t in ended if trials_module.is_stopped_early(t)]
    best = oracle.get_best_trials(1)[0]
    curves = {t.trial_id: [round(float(v), 4) for v in early_stopping.learning_curve(
        t, "val_accuracy")[1]] for t in ended}
    return {"train_time": sum(outcome[t.trial_id][2] for t in ended),
            "cpu": sum(outcome[t.trial_id][3] for t in ended), "wall": 0.0,
            "reports": sum(outcome[t.trial_id][4] for t in ended),
            "epochs": sum(outcome[t.trial_id][1] for t in ended),
            "stopped": len(stopped),
            "stopped_at": sorted(outcome[t.trial_id][1] for t in stopped),
            "test": outcome[best.trial_id][0],
            "best_stopped": trials_module.is_stopped_early(best),
            "best": Architecture.from_trial(best).to_json(), "curves": curves}


def median_rule_diagnosis(dataset, runs, rule, epochs, random_trials):
    """Why the median rule stops few trials, from the searches without a rule:
    each trial's full curve against the median of the running averages of
    the trials that completed before it (the rule's test, at every epoch
    where it may act), for the first `random_trials` trials (drawn at random:
    evolution's population, or all of a random search) and for evolution's
    children apart."""
    fractions = {"random": [], "child": []}
    references, bests = [], []
    for run in runs:
        order = sorted(run["curves"])  # trial ids in creation (and end) order
        curves = [np.asarray(run["curves"][t], dtype=float) for t in order]
        for index, curve in enumerate(curves):
            if index < rule.min_completed:
                continue
            earlier = curves[:index]
            stopped = False
            for step in range(rule.min_epochs, epochs):  # never at the last epoch
                reference = float(np.median([np.mean(c[:step]) for c in earlier]))
                if step == rule.min_epochs:
                    references.append(reference)
                    bests.append(float(np.max(curve[:step])))
                stopped = stopped or float(np.max(curve[:step])) < reference
            fractions["random" if index < random_trials else "child"].append(stopped)
    share = {kind: (sum(v) / len(v) if v else float("nan"), len(v))
             for kind, v in fractions.items()}
    at = rule.min_epochs
    return (f"Why the median rule stops few trials on {dataset} (the searches without a "
            f"rule, all seeds; each trial's full curve against the median, over the "
            f"trials completed before it, of their running averages, at epochs "
            f"{at}-{epochs - 1}): {share['random'][0]:.0%} of the random trials "
            f"(of {share['random'][1]})"
            + (f" and {share['child'][0]:.0%} of evolution's children (of {share['child'][1]})"
               if share['child'][1] else "")
            + f" are ever below it. At epoch {at} the median of that "
            f"reference is {np.median(references):.3f} (the running average includes the "
            f"low first epochs), while the median trial's best so far is "
            f"{np.median(bests):.3f}, and {np.mean(np.array(bests) < np.array(references)):.0%}"
            f" of the trials are below their reference there"
            + (": children of good parents start above the average of curves that are "
               "still rising." if share['child'][1] else "."))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["digits", "mnist1d"])
    parser.add_argument("--table", default=None,
                        help="a `tfnas table` CSV: search its space on its dataset and "
                             "judge the best architecture by its mean test accuracy")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--mode", choices=["replay", "train"], default="replay")
    parser.add_argument("--strategy", choices=["evolution", "random"], default="evolution",
                        help="the search: regularized evolution (default) or random search, "
                             "where every trial is a fresh draw")
    parser.add_argument("--population", type=int, default=None,
                        help="evolution's population (default: the library's for --trials)")
    parser.add_argument("--sample-size", type=int, default=None,
                        help="evolution's tournament size (default: the library's)")
    parser.add_argument("--rules", nargs="+", default=list(RULES),
                        choices=list(RULES) + list(VARIANTS),
                        help="the rules compared (default: none, median and curve; "
                             "\"none\" is always run, as the baseline)")
    parser.add_argument("--output", default=None,
                        help="the report (default: results/early_stopping.md, "
                             "early_stopping_random.md with --strategy random)")
    args = parser.parse_args()
    if args.strategy == "random" and (args.population or args.sample_size):
        parser.error("--population and --sample-size are evolution's: random search "
                     "takes neither")
    if args.output is None:
        args.output = os.path.join(report.RESULTS, "early_stopping.md" if args.strategy
                                   == "evolution" else "early_stopping_random.md")
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    rules = ("none",) + tuple(rule for rule in dict.fromkeys(args.rules) if rule != "none")

    truth, meta = None, None
    if args.table is not None:
        meta, truth = read_ground_truth(args.table)
        args.datasets = [meta["dataset"]]
        args.batch_size = meta["batch_size"]
    results = {}  # (dataset, rule) -> [run per seed]
    trained = 0  # architectures trained for their curves (replay mode)
    shares = {}  # dataset -> median share of the first epoch in a trial's fit time
    with tempfile.TemporaryDirectory(prefix="tfnas-early-stopping-") as root:
        for dataset in args.datasets:
            data = tfnas.load_data(dataset, batch_size=args.batch_size,
                                   seed=meta["data_seed"] if meta else 0)
            space = (mlp_space(data) if meta is None else spaces.get(
                meta["space"], data.input_shape, data.num_classes, **meta["space_args"]))
            name = (os.path.splitext(os.path.basename(args.table))[0] + "_table"
                    if meta else dataset)
            cache = os.path.join(report.RESULTS, f"early_stopping_curves_{name}.json")
            store = CurveStore(cache, data, space, args.epochs, args.batch_size,
                               data_seed=meta["data_seed"] if meta else 0)
            for seed in range(args.seeds):
                order = rules[seed % len(rules):] + rules[:seed % len(rules)]
                for rule in order:
                    oracle = make_oracle(args.strategy, args.trials, seed, args.population,
                                         args.sample_size)
                    if args.mode == "train":
                        run = run_search(data, space, rule, seed, args.trials, args.epochs,
                                         oracle, os.path.join(root, dataset))
                    else:
                        run = replay_search(store, space, rule, seed, args.trials,
                                            args.epochs, oracle, os.path.join(root, dataset))
                    results.setdefault((dataset, rule), []).append(run)
                    brief = {k: v for k, v in run.items() if k not in ("curves", "best")}
                    print(f"{dataset} seed {seed} {rule}: {brief}", flush=True)
            trained += store.trained
            shares[dataset] = statistics.median(
                (c["setup"] + c["seconds"][0] + c["teardown"])
                / (c["setup"] + sum(c["seconds"][:args.epochs]) + c["teardown"])
                for c in store.curves.values()) if store.curves else None
    if truth is not None:  # read again: a table being built has grown meanwhile
        meta, truth = read_ground_truth(args.table)
        for runs in results.values():
            for run in runs:
                run["table"] = truth.get(run["best"], float("nan"))
    with open(os.path.splitext(args.output)[0] + ".curves.json", "w") as file:
        json.dump({f"{d} {r}": [run["curves"] for run in runs]
                   for (d, r), runs in results.items()}, file)

    judged = "table" if truth is not None else "test"
    rows = ["| dataset | rule | training time (s) | saving vs none | saving with the reports "
            "and decisions left out (recorded `fit` times only) | training CPU (s) | "
            "CPU saving | epochs trained | epoch saving | trials stopped | stopped at epoch: "
            "trials | best test accuracy"
            + (" (model) | best by the table's mean test accuracy" if truth else "")
            + " | spread of none (max-min) | of the training time: reports and the rule's "
            "decisions (s, share) |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"
            + ("---:|" if truth else "") + "---:|---:|"]
    for dataset in args.datasets:
        baseline = results[(dataset, "none")]
        finals = [r[judged] for r in baseline]
        spread = max(finals) - min(finals)
        for rule in rules:
            runs = results[(dataset, rule)]
            savings = [1 - r["train_time"] / b["train_time"] for r, b in zip(runs, baseline)]
            cpu_savings = [1 - r["cpu"] / b["cpu"] for r, b in zip(runs, baseline)]
            # In replay mode, the recorded times alone: this machine's speed does
            # not enter, but for architectures this run had to train and record.
            fit_savings = [1 - (r["train_time"] - r["reports"]) / (b["train_time"] - b["reports"])
                           for r, b in zip(runs, baseline)]
            fit_saving = f"{statistics.median(fit_savings):.0%}"
            epoch_savings = [1 - r["epochs"] / b["epochs"] for r, b in zip(runs, baseline)]
            stopped_at = collections.Counter(e for r in runs for e in r["stopped_at"])
            rows.append(
                f"| {dataset} | {rule} | {statistics.median(r['train_time'] for r in runs):.1f} | "
                f"{'' if rule == 'none' else f'{statistics.median(savings):.0%}'} | "
                f"{'' if rule == 'none' or args.mode == 'train' else fit_saving} | "
                f"{statistics.median(r['cpu'] for r in runs):.1f} | "
                f"{'' if rule == 'none' else f'{statistics.median(cpu_savings):.0%}'} | "
                f"{statistics.median(r['epochs'] for r in runs):.0f} | "
                f"{'' if rule == 'none' else f'{statistics.median(epoch_savings):.0%}'} | "
                f"{statistics.median(r['stopped'] for r in runs):.0f} / {args.trials} | "
                f"{', '.join(f'{e}: {n}' for e, n in sorted(stopped_at.items())) or '-'} | "
                f"{statistics.median(r['test'] for r in runs):.4f} | "
                + (f"{statistics.median(r['table'] for r in runs):.4f} | " if truth else "")
                + f"{f'{spread:.4f}' if rule == 'none' else ''} | "
                f"{statistics.median(r['reports'] for r in runs):.1f} "
                f"({statistics.median(r['reports'] / r['train_time'] for r in runs):.0%}) |")
    rows += ["", "Per seed (training time s / epochs / trials stopped / best test accuracy"
             + (" by the table" if truth else "") + "):", "",
             "| dataset | seed | " + " | ".join(rules) + " |", "|---|---|" + "---|" * len(rules)]
    for dataset in args.datasets:
        for seed in range(args.seeds):
            cells = [f"{r['train_time']:.1f} / {r['epochs']:.0f} / {r['stopped']} / "
                     f"{r[judged]:.4f}" for r in (results[(dataset, rule)][seed]
                                                  for rule in rules)]
            rows.append(f"| {dataset} | {seed} | " + " | ".join(cells) + " |")
    median_rule = early_stopping.get("median")  # its diagnosis reads the runs without a rule
    compared = {name: make_rule(name) for name in rules if name != "none"}
    sizes = evolution_sizes(args.trials, args.population, args.sample_size)
    evolution = args.strategy == "evolution"
    for dataset in args.datasets:  # in random search, every trial is a random one
        rows += ["", median_rule_diagnosis(
            dataset, results[(dataset, "none")], median_rule, args.epochs,
            sizes["population_size"] if evolution else args.trials)]
    load = os.getloadavg()
    ceiling = {name: (args.trials - rule.min_completed) / args.trials
               * (1 - rule.min_epochs / args.epochs) for name, rule in compared.items()}
    space_text = (f"the space of `{args.table}` ({meta['space']} with its table's space "
                  f"arguments), judged by the table's `{meta.get('final', 'test_acc_mean')}`"
                  if truth else "the MLP space (1-3 layers of 8-128 units, relu/tanh/elu)")
    command = "`python benchmarks/early_stopping.py " + shlex.join(sys.argv[1:]) + "`"
    search_text = (
        f"regularized evolution (population {sizes['population_size']}, tournament "
        f"{sizes['sample_size']}"
        f"{'' if args.population or args.sample_size else ': the library defaults'})"
        if evolution else "random search")
    report.write_table(
        args.output, f"Early stopping rules in {search_text.split(' (')[0]}",
        f"{command}: {space_text}, {search_text}, "
        f"{args.trials} trials of {args.epochs} epochs (batch "
        f"{args.batch_size}) per search, seeds 0-{args.seeds - 1}, the {len(rules)} runs of "
        "a seed interleaved in a rotated order. " + MODES[args.mode].format(trained=trained)
        + " Rules: " + "; ".join(f"{name}: {rule!r}" for name, rule in compared.items())
        + ". "
        "Training time (wall) and training CPU (this process's CPU time, all threads): "
        "the sums over the trials' `model.fit`; medians "
        "over seeds; saving: median of the per-seed savings against no rule; best test "
        "accuracy: the best trial's model (by validation accuracy) on the test split. "
        "Ceiling of the saving in epochs (every trial after the first `min_completed` "
        "stopped at `min_epochs`): "
        + ", ".join(f"{name} {share:.0%}" for name, share in ceiling.items()) + ". "
        + "".join(f"The first epoch (graph tracing included) and the end of `fit` take "
                  f"{share:.0%} of a trial's `fit` time on {dataset} (median over the "
                  "recorded architectures). "
                  for dataset, share in shares.items() if share is not None and
                  args.mode == "replay")
        + f"This benchmark took {time.process_time() - cpu_start:.0f} CPU s and "
        f"{time.perf_counter() - wall_start:.0f} s wall; load average at its end "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min). "
        "Learning curves (validation accuracy per epoch) in "
        f"`{os.path.basename(os.path.splitext(args.output)[0])}.curves.json`.", rows)


if __name__ == "__main__":
    main()
