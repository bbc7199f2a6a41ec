"""Time for regularized evolution to reach an accuracy, with and without
weight inheritance.

For each seed, runs regularized evolution twice, side by side: plain (every
candidate trains `--epochs` from scratch) and with `inherit_weights=True` (a
mutated child starts from its parent's checkpoint and trains
`--inherit-epochs`; the `--population` random trials train the full epochs
in both). Records after every trial the best validation accuracy so far, the
cumulative training time (`train_time_s` of the trials, `model.fit` only) and
the wall time since the search started (building, loading the parent,
bookkeeping included).

Targets (time to first reach them):

- "common": per seed, the highest best accuracy both runs reach, i.e. the
  lower of the two final bests, when both reach it after their random
  phase (higher than either run's best random trial): a target the random
  trials reach measures the machine's noise, not inheritance, so such a
  seed has no common target (n/a). The ratio plain / inherit is taken per
  seed and its median reported;
- "table top 10%": with `--table`, the 90th percentile of the table's
  stand-alone validation accuracies (`val_acc_mean`): the accuracy of the
  table's top tenth of architectures;
- `--targets`: fixed accuracies.

With `--table FILE` (a `tfnas table` table with its meta file), the space,
its arguments, the dataset, the batch size and the plain epochs are the
table's. Without, a chain space on `--dataset`.

Usage: python benchmarks/weight_inheritance.py [--table tfnas/bench/data/mnist1d.csv]
    [--dataset digits] [--seeds 3] [--max-trials 20] [--population 5]
    [--sample-size 2] [--epochs 3] [--inherit-epochs 1] [--first-seed 0]
    [--configs plain inherit]

Costs: training seconds (`train_time_s`, `model.fit`), wall seconds and
the process's CPU seconds since the search began (building, reading the
parent's weights, bookkeeping included). The load average is recorded after
each run.
"""

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The worktree's tfnas, not an installed one (the script's folder comes first on the path).
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import tfnas  # noqa: E402
from tfnas import oracles, spaces  # noqa: E402
from tfnas.bench import tables  # noqa: E402
from tfnas.inheritance import INHERIT_FROM  # noqa: E402

import report  # noqa: E402
from inheritance_diagnosis import kind as mutation_kind  # noqa: E402

CONFIGS = ("plain", "inherit")


class TimedTuner(tfnas.NASTuner):
    """Records each trial's end time (seconds since the search began)."""

    def on_search_begin(self):
        super().on_search_begin()
        self.began = time.perf_counter()
        self.cpu_began = time.process_time()
        self.ended_at, self.cpu_at = {}, {}

    def on_trial_end(self, trial):
        self.ended_at[trial.trial_id] = time.perf_counter() - self.began
        self.cpu_at[trial.trial_id] = time.process_time() - self.cpu_began
        super().on_trial_end(trial)


def setting(args):
    """The space's name and arguments, the dataset, batch size and epochs."""
    if args.table:
        meta = tables.read_meta(tables.meta_path(args.table))
        return (meta["space"], dict(meta["space_args"]), meta["dataset"], meta["batch_size"],
                args.epochs or meta["epochs"])
    space_args = {"max_layers": args.max_layers, "filters": tuple(args.filters),
                  "operations": tuple(args.operations), "learning_rate": args.learning_rate}
    return "chain", space_args, args.dataset, args.batch_size, args.epochs or 3


def run(seed, config, args, directory):
    space_name, space_args, dataset, batch_size, epochs = setting(args)
    data = tfnas.load_data(dataset, batch_size=batch_size, seed=seed)
    space = spaces.get(space_name, data.input_shape, data.num_classes, **space_args)
    strategy = oracles.get(
        "evolution", "val_accuracy", args.max_trials, seed=seed, space=space,
        population_size=args.population, sample_size=args.sample_size,
        inherit_weights=config == "inherit", inherit_epochs=args.inherit_epochs)
    tuner = TimedTuner(space, oracle=strategy, directory=directory,
                       project_name=f"{dataset}-{seed}-{config}", progress=False,
                       measure_latency=False, count_flops=False, log_dir=None)
    tuner.search(data.train, validation_data=data.validation, epochs=epochs, verbose=0)
    curve, best, train_time, trained_epochs = [], 0.0, 0.0, 0.0
    children, random_best = [], 0.0
    generation = {}  # trial id: its number of inheriting ancestors
    ended = sorted(tuner.ended_at.items(), key=lambda item: item[1])
    for number, (trial_id, wall) in enumerate(ended):
        trial = tuner.oracle.trials[trial_id]
        if trial.status == "COMPLETED":
            best = max(best, trial.score)
            seconds = trial.metrics.get_last_value("train_time_s")
            train_time += seconds
            trained_epochs += trial.metrics.get_last_value("epochs")
            if trial.metrics.exists("inherited_params"):
                child = {name: trial.metrics.get_last_value(name) for name in (
                    "inherited_params", "morphed_layers", "pruned_layers", "fresh_layers",
                    "inherit_load_s", "inherit_copy_s", "train_time_s")
                    if trial.metrics.exists(name)}
                parent = tuner.oracle.trials[trial.hyperparameters.values[INHERIT_FROM]]
                child["gain"] = trial.score - parent.score
                child["score"], child["parent_score"] = trial.score, parent.score
                child["kind"] = mutation_kind(parent.hyperparameters.values,
                                              trial.hyperparameters.values)
                child["generation"] = generation.get(parent.trial_id, 0) + 1
                generation[trial_id] = child["generation"]
                children.append(child)
        if number < args.population:
            random_best = best
        curve.append((best, train_time, wall, trained_epochs, tuner.cpu_at[trial_id]))
    full = [tuner.oracle.trials[t].metrics.get_last_value("train_time_s")
            for t, _ in ended if tuner.oracle.trials[t].status == "COMPLETED"
            and not tuner.oracle.trials[t].metrics.exists("inherited_params")]
    return {"curve": curve, "final": best, "children": children, "random_best": random_best,
            "full_trial_s": statistics.median(full) if full else math.nan,
            "load": os.getloadavg()[0]}


def time_to(curve, target, column):
    """The cost (column 1 training s, 2 wall s, 3 epochs trained, 4 CPU s) at which
    `curve` first reaches `target` (nan for no target)."""
    if math.isnan(target):
        return math.nan
    for point in curve:
        if point[0] >= target - 1e-9:
            return point[column]
    return math.inf


def show(seconds):
    if math.isnan(seconds):
        return "n/a"
    return "never" if math.isinf(seconds) else f"{seconds:.1f}"


def show_accuracy(value):
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def common_target(plain, inherit):
    """The highest best accuracy both runs reach, when both reach it after
    their random phase; else nan (no target: the random trials, which both
    runs train alike, reach it)."""
    target = min(plain["final"], inherit["final"])
    if target <= max(plain["random_best"], inherit["random_best"]) + 1e-9:
        return math.nan
    return target


def ratio(plain, inherit):
    """plain / inherit; 0 when only inherit never reaches the target, inf
    when only plain never does, nan (left out of medians) when neither does."""
    if math.isnan(plain) or math.isinf(plain) and math.isinf(inherit):
        return math.nan
    if math.isinf(inherit):
        return 0.0
    if math.isinf(plain) or not inherit:
        return math.inf
    return plain / inherit


def show_ratio(value):
    return "n/a" if math.isnan(value) else "inf" if math.isinf(value) else f"{value:.2f}x"


def median(values):
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else math.nan


def table_target(path):
    """The 90th percentile of the table's mean validation accuracies, and its rows."""
    table = tables.load_ground_truth(path)
    return float(np.percentile([tables.column_value(row, "val_acc_mean")
                                for row in table.rows.values()], 90)), len(table.rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", help="a `tfnas table` CSV: its space, data and epochs")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-trials", type=int, default=20)
    parser.add_argument("--population", type=int, default=5)
    parser.add_argument("--sample-size", type=int, default=2)
    parser.add_argument("--max-layers", type=int, default=3)
    parser.add_argument("--filters", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--operations", nargs="+",
                        default=["conv3x3", "sepconv3x3", "maxpool3x3"])
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--epochs", type=int, default=None,
                        help="plain epochs (default: the table's, or 3)")
    parser.add_argument("--inherit-epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--targets", type=float, nargs="*", default=[])
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    parser.add_argument("--output",
                        default=os.path.join(report.RESULTS, "weight_inheritance.md"))
    args = parser.parse_args()
    space_name, space_args, dataset, batch_size, epochs = setting(args)

    results = {config: [] for config in CONFIGS}
    with tempfile.TemporaryDirectory(prefix="tfnas-inheritance-") as directory:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for config in args.configs:  # side by side, alternating
                result = run(seed, config, args, directory)
                results[config].append(result)
                print(f"seed {seed} {config}: final best {result['final']:.4f} (random "
                      f"phase {result['random_best']:.4f}), training "
                      f"{result['curve'][-1][1]:.1f} s, wall {result['curve'][-1][2]:.1f} s, "
                      f"CPU {result['curve'][-1][4]:.1f} s, load {result['load']:.1f}, "
                      f"{len(result['children'])} children", flush=True)
                if result["children"]:
                    print("  children: gain over parent median "
                          f"{median([c['gain'] for c in result['children']]):+.4f}, "
                          "morphed ", [c["morphed_layers"] for c in result["children"]],
                          flush=True)
    with open(os.path.splitext(args.output)[0] + ".json", "w") as file:
        json.dump({"command": sys.argv[1:], "results": results}, file, indent=1,
                  default=float)
    if len(args.configs) < len(CONFIGS):
        return  # one config: its results (the JSON file), no comparison

    rows = ["| target | val. accuracy (median) | plain: training s to target | inherit: "
            "training s | plain: CPU s | inherit: CPU s | plain: wall s | inherit: wall s | "
            "plain: epochs | inherit: epochs | reached plain / inherit | training-time ratio | "
            "CPU-time ratio | wall-time ratio | epochs ratio |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    targets = [("common (per seed)", [common_target(p, i) for p, i in zip(
        results["plain"], results["inherit"])])]
    if args.table:
        target, size = table_target(args.table)
        targets.append((f"table top 10% ({size} rows)", [target] * args.seeds))
    targets += [(f"fixed {t}", [t] * args.seeds) for t in args.targets]
    columns = (1, 4, 2, 3)  # training, CPU, wall seconds, epochs
    for name, per_seed in targets:
        times = {config: [[time_to(r["curve"], target, column) for r, target in zip(
            results[config], per_seed)] for column in columns] for config in CONFIGS}
        ratios = [median([ratio(p, i) for p, i in zip(times["plain"][c], times["inherit"][c])])
                  for c in range(len(columns))]
        reached = [sum(1 for r, target in zip(results[config], per_seed)
                       if r["final"] >= target - 1e-9) for config in CONFIGS]
        rows.append(
            f"| {name} | {show_accuracy(median(per_seed))} | " + " | ".join(
                f"{show(median(times['plain'][c]))} | {show(median(times['inherit'][c]))}"
                for c in range(len(columns)))
            + f" | {reached[0]}/{args.seeds} / {reached[1]}/{args.seeds} | "
            + " | ".join(show_ratio(r) for r in ratios) + " |")
    per_seed_rows = ["| seed | plain final | inherit final | best random trial "
                     "(plain / inherit) | common target | training-time ratio | CPU-time ratio "
                     "| epochs ratio | load average after the runs |",
                     "|---|---|---|---|---|---|---|---|---|"]
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    for seed, p, i in zip(seeds, results["plain"], results["inherit"]):
        target = common_target(p, i)
        per_seed_rows.append(
            f"| {seed} | {p['final']:.4f} | {i['final']:.4f} | {p['random_best']:.4f} / "
            f"{i['random_best']:.4f} | {show_accuracy(target)} | " + " | ".join(
                show_ratio(ratio(time_to(p["curve"], target, column),
                                 time_to(i["curve"], target, column))) for column in (1, 4, 3))
            + f" | {p['load']:.1f} / {i['load']:.1f} |")
    children = [c for r in results["inherit"] for c in r["children"]]

    def child_median(name):
        return median([c[name] for c in children])

    whole = ["| config | final best val. accuracy | training time (s) | CPU time (s) | "
             "wall time (s) | training s of a full trial | children |",
             "|---|---|---|---|---|---|---|"]
    for config in CONFIGS:
        runs = results[config]
        whole.append(
            f"| {config} | {statistics.median(r['final'] for r in runs):.4f} | "
            f"{statistics.median(r['curve'][-1][1] for r in runs):.1f} | "
            f"{statistics.median(r['curve'][-1][4] for r in runs):.1f} | "
            f"{statistics.median(r['curve'][-1][2] for r in runs):.1f} | "
            f"{median([r['full_trial_s'] for r in runs]):.2f} | "
            f"{statistics.median(len(r['children']) for r in runs)} |")
    rows += ["", "Per seed:", ""] + per_seed_rows + [
        "", "Whole searches (medians over seeds):", ""] + whole + [
        "", f"Children ({len(children)}, medians): inherited parameters "
        f"{child_median('inherited_params'):.2f}, morphed layers "
        f"{child_median('morphed_layers'):.0f}, pruned layers "
        f"{median([c.get('pruned_layers', 0.0) for c in children]):.0f}, fresh layers "
        f"{child_median('fresh_layers'):.0f}, training s {child_median('train_time_s'):.2f}, "
        f"reading the parent's weights s {child_median('inherit_load_s'):.3f}, setting the "
        f"child's s {median([c.get('inherit_copy_s', math.nan) for c in children]):.3f}; "
        "children "
        f"with a morphed layer: {sum(1 for c in children if c['morphed_layers'] > 0)}, "
        f"with no fresh layer: {sum(1 for c in children if c['fresh_layers'] == 0)}; "
        "child's score minus its parent's: median "
        f"{child_median('gain'):+.4f}, children better than their parent: "
        f"{sum(1 for c in children if c['gain'] > 0)}."]
    kinds = sorted({c["kind"] for c in children})
    rows += ["", "Children by mutation (all seeds): the child's score minus its parent's, "
             "medians:", "", "| mutation | children | score - parent's | better than parent "
             "| morphed / pruned / fresh layers |", "|---|---|---|---|---|"]
    for name in kinds:
        found = [c for c in children if c["kind"] == name]
        rows.append(
            f"| {name} | {len(found)} | {median([c['gain'] for c in found]):+.4f} | "
            f"{sum(1 for c in found if c['gain'] > 0)} | "
            + " / ".join(f"{median([c.get(k, 0.0) for c in found]):.0f}" for k in (
                "morphed_layers", "pruned_layers", "fresh_layers")) + " |")
    deepest = max((c["generation"] for c in children), default=0)
    rows += ["", f"Lineages: children of children up to generation {deepest}; score minus "
             "parent's by generation: " + ", ".join(
                 f"{g}: {median([c['gain'] for c in children if c['generation'] == g]):+.4f} "
                 f"({sum(1 for c in children if c['generation'] == g)})"
                 for g in range(1, deepest + 1)) + "."]
    command = " ".join(["`python benchmarks/weight_inheritance.py", *sys.argv[1:]]) + "`"
    report.write_table(
        args.output, "Regularized evolution with and without weight inheritance",
        f"{command}: the {space_name} space {space_args} on {dataset} (batch {batch_size}), "
        f"regularized evolution ({args.max_trials} trials, population {args.population}, "
        f"tournaments of {args.sample_size}); plain trains every candidate {epochs} "
        f"epochs, inherit trains a mutated child {args.inherit_epochs} epoch(s) from its "
        f"parent's checkpoint (the {args.population} random ones the full epochs). Times to "
        "reach each target best validation accuracy are medians over seeds "
        f"{args.first_seed}..{args.first_seed + args.seeds - 1}; ratios are per seed (0 when "
        "only inherit never reaches the target, n/a when the seed has no target), then "
        "the median; the two runs of a seed "
        "ran one after the other on a shared, noisy machine. Ratio = plain / inherit "
        "(> 1: inheritance is faster).", rows)


if __name__ == "__main__":
    main()
