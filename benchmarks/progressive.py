"""Progressive NAS (`pnas`) against regularized evolution and random search.

1. Ground-truth tables (`tfnas table`: every architecture of a chain space of
   depth 1-3 trained with two seeds). For each strategy and seed one search
   of the largest budget; a query is a table lookup of one seed's validation
   accuracy (`val_acc[0]`), the pick after b queries is the best of the first
   b, and it is judged by its mean test accuracy (`test_acc_mean`). Reported:
   the median pick at each budget, and the median number of trained models
   (queries) each strategy needs to reach evolution's median final pick
   (exactly, and within evolution's seed-to-seed spread: its median minus
   the standard deviation of its final picks over seeds). PNAS runs with a
   fixed beam (K architectures per level, then down the surrogate's ranking
   at the last level), so its best-so-far curve is an anytime one like the
   others'. The beam sizes are not tuned: K = 4 and K = 8 both run.
2. The surrogate: Spearman's rank correlation between the surrogate's
   ranking of each level's expansions and their table signal (PNAS's own
   measure), for the default ensemble of 5 MLPs and for a single MLP.
3. DPP (`dpp`) against Pareto evolution and random search at equal trials:
   each strategy sees (`val_acc[0]`, max) and (`latency_ms`, min); measured
   as controller_on_macro.py does: the hypervolume of the evaluated
   architectures' front in (`test_acc_mean`, `latency_ms`), as a fraction of
   the whole table's front's, with the nadir of the table's front as the
   reference point. DPP's beam is its default (max_trials / levels).
4. With `--real`: a small real-training run instead (NASTuner on the table's
   dataset and space, `--real-trials` trials per search, 3 seeds): the test
   accuracy of each search's pick (the best validation accuracy) and the
   wall time of the search.

A table still being built (no `<table>.done` file) is read as it stands:
its complete rows (an architecture missing from it fails its query, which
still costs a trained model, for every strategy alike); the header says
how many rows were used.

Usage: PYTHONPATH=. python benchmarks/progressive.py --table /work/tables/digits.csv
    [--seeds 30] [--budgets 10 20 30 45 60] [--beams 4 8] [--dpp-budget 30]
    [--output FILE] [--real [--real-trials 12 --real-seeds 3]]
"""

import argparse
import csv
import math
import os
import shutil
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras_tuner as kt  # noqa: E402
from scipy import stats  # noqa: E402

from tfnas import bench, moves, oracles, pareto  # noqa: E402

import report  # noqa: E402


def snapshot(path, directory):
    """The table at `path` as it stands: `(table, rows, done)`.

    A table being built may end in a half-written line: the complete rows
    are copied (with the meta file) into `directory` and loaded from there.
    """
    done = os.path.exists(os.path.splitext(path)[0] + ".done")
    with open(path, newline="") as file:
        rows = list(csv.reader(file))
    header, body = rows[0], [r for r in rows[1:] if len(r) == len(rows[0]) and r[-1]]
    copy = os.path.join(directory, os.path.basename(path))
    with open(copy, "w", newline="") as file:
        csv.writer(file).writerows([header] + body)
    shutil.copy(bench.tables.meta_path(path), bench.tables.meta_path(copy))
    return bench.tables.load_ground_truth(copy), len(body), done


def search(table, name, budget, seed, columns=(), **kwargs):
    """One seeded search of `budget` queries: `(oracle, best-so-far curve)`.

    The trials report the signal and the table's `columns`. The curve has
    one entry per query (a failed query repeats the pick before it; None
    before the first pick)."""
    oracle = oracles.get(name, kt.Objective(bench.runner.SIGNAL, table.direction), budget,
                         seed=seed, max_consecutive_failed_trials=budget, **kwargs)

    def score(values):
        try:
            return {bench.runner.SIGNAL: table.lookup(values, table.signal),
                    **{column: table.lookup(values, column) for column in columns}}
        except KeyError as error:
            raise kt.errors.FailedTrialError(str(error)) from error

    with tempfile.TemporaryDirectory() as directory:
        bench.LookupTuner(oracle, table.space, score, directory=directory).search()
    curve, best, pick = [], None, None
    for trial_id in oracle.end_order:
        trial = oracle.trials[trial_id]
        if trial.status == "COMPLETED" and (best is None or trial.score > best):
            best, pick = trial.score, table.lookup(trial.hyperparameters.values, table.final)
        curve.append(pick)
    return oracle, curve


def at(curve, budget):
    """The pick after `budget` queries (the last one if the search ended sooner)."""
    value = curve[min(budget, len(curve)) - 1] if curve else None
    return value if value is not None else 0.0


def queries_to_reach(curve, target):
    """Queries until the pick reaches `target`; infinity if it never does."""
    for index, value in enumerate(curve):
        if value is not None and value >= target - 1e-12:
            return index + 1
    return math.inf


def median_count(counts, budget):
    value = statistics.median(counts)
    return f"> {budget}" if math.isinf(value) else f"{value:g}"


def surrogate_correlations(oracle, table):
    """Spearman's rho between each level's predicted ranking and the signal."""
    correlations = []
    for step, (_, ranking) in sorted(oracle._rankings.items()):
        known = [(position, table.lookup(values, table.signal))
                 for position, values in enumerate(ranking)
                 if table.key(moves.decisions(values)) in table.rows]
        if step == 0 or len(known) < 3:
            continue
        positions, signals = zip(*known)
        rho = stats.spearmanr([-p for p in positions], signals).statistic
        if not math.isnan(rho):
            correlations.append(rho)
    return correlations


def compare(table, args):
    """The rows of the comparison table and the surrogate study."""
    budget = max(args.budgets)
    specs = [("random", "random", {}), ("evolution", "evolution", {})] + [
        (f"pnas K={beam}", "pnas", {"beam_size": beam}) for beam in args.beams]
    curves, seconds, rhos = {}, {}, {}
    for label, name, kwargs in specs:
        start = time.perf_counter()
        runs = [search(table, name, budget, seed, **kwargs) for seed in range(args.seeds)]
        seconds[label] = time.perf_counter() - start
        curves[label] = [curve for _, curve in runs]
        if name == "pnas":
            rhos[label] = [rho for oracle, _ in runs
                           for rho in surrogate_correlations(oracle, table)]
        print(label, f"{seconds[label]:.0f}s", flush=True)
    finals = [at(c, budget) for c in curves["evolution"]]
    target = statistics.median(finals)
    within = target - statistics.pstdev(finals)
    rows = ["| strategy | seeds | " + " | ".join(f"{b} queries" for b in args.budgets)
            + " | queries to evolution's median final | ... within its spread |",
            "|---|---|" + "---|" * (len(args.budgets) + 2)]
    for label, _, _ in specs:
        cells = [f"{100 * statistics.median(at(c, b) for c in curves[label]):.2f}"
                 for b in args.budgets]
        reach = [median_count([queries_to_reach(c, goal) for c in curves[label]], budget)
                 for goal in (target, within)]
        rows.append(f"| {label} | {args.seeds} | " + " | ".join(cells + reach) + " |")
    rows.append("| table optimum | | " + " | ".join(
        f"{100 * table.optimum():.2f}" for _ in args.budgets) + " | | |")
    verdict = []
    for label in [s[0] for s in specs if s[1] == "pnas"]:
        half = budget // 2
        median_half = statistics.median(at(c, half) for c in curves[label])
        met = median_half >= within
        verdict.append(
            f"- {label}: median pick after {half} queries {100 * median_half:.2f} vs "
            f"evolution's {100 * target:.2f} ± {100 * (target - within):.2f} after "
            f"{budget}: target {'met' if met else 'missed'}.")
    rows += ["", "| pnas: Spearman rho of the surrogate's ranking of each level's "
             "expansions vs their signal | levels x seeds | median |", "|---|---|---|"]
    rows += [f"| {label}, ensemble of 5 MLPs | {len(values)} | "
             f"{statistics.median(values):.3f} |" for label, values in rhos.items() if values]
    return rows, verdict


def surrogate_rows(table, args):
    """Spearman's rho of a single MLP in place of the ensemble (same searches)."""
    rhos = []
    for seed in range(args.seeds):
        oracle, _ = search(table, "pnas", max(args.budgets), seed,
                           beam_size=args.beams[0], ensemble_size=1)
        rhos.extend(surrogate_correlations(oracle, table))
    row = f"| pnas K={args.beams[0]}, a single MLP | {len(rhos)} | {statistics.median(rhos):.3f} |"
    print(row, flush=True)
    return [row]


COST = "latency_ms"


def front_hypervolume(table, keys, reference):
    points = [(float(table.rows[k][table.final]), float(table.rows[k][COST])) for k in keys]
    return pareto.hypervolume_2d(points, ["max", "min"], reference)


def dpp_rows(table, args):
    """Hypervolume fractions of DPP, Pareto evolution and random search."""
    everything = [(float(r[table.final]), float(r[COST])) for r in table.rows.values()]
    front = [everything[i] for i in pareto.non_dominated(everything, ["max", "min"])]
    reference = (min(a for a, _ in front) - 1e-6, max(c for _, c in front) + 1e-6)
    optimum = front_hypervolume(table, list(table.rows), reference)
    objectives = [(bench.runner.SIGNAL, "max"), (COST, "min")]
    rows = [f"| {args.dpp_budget} trials: (accuracy, latency) | seeds | hypervolume "
            "fraction, median | mean ± std |", "|---|---|---|---|"]
    for label, name, kwargs in (
            ("random search", "random", {}),
            ("Pareto evolution", "evolution", {"pareto_objectives": objectives}),
            ("dpp", "dpp", {"pareto_objectives": objectives})):
        fractions = []
        for seed in range(args.seeds):
            oracle, _ = search(table, name, args.dpp_budget, seed, columns=(COST,), **kwargs)
            keys = [table.key(t.hyperparameters.values) for t in oracle.trials.values()
                    if t.status == "COMPLETED"]
            fractions.append(front_hypervolume(table, keys, reference) / optimum)
        rows.append(f"| {label} | {len(fractions)} | {statistics.median(fractions):.4f} | "
                    f"{statistics.fmean(fractions):.4f} ± {statistics.pstdev(fractions):.4f} |")
        print(rows[-1], flush=True)
    return rows


def real_rows(table, args):
    """Real training on the table's dataset and space: test accuracy and time."""
    import tfnas

    meta = bench.tables.read_meta(bench.tables.meta_path(args.table))
    data = tfnas.load_data(meta["dataset"], batch_size=meta["batch_size"])
    rows = [f"| strategy ({args.real_trials} trained models) | seeds | test accuracy of "
            "the pick, median | per seed | wall time, median s |", "|---|---|---|---|---|"]
    for label, name, kwargs in (("random", "random", {}), ("evolution", "evolution", {}),
                                (f"pnas K={args.beams[0]}", "pnas",
                                 {"beam_size": args.beams[0]})):
        accuracies, seconds = [], []
        for seed in range(args.real_seeds):
            oracle = oracles.get(name, "val_accuracy", args.real_trials, seed=seed, **kwargs)
            with tempfile.TemporaryDirectory() as directory:
                tuner = tfnas.NASTuner(table.space, oracle=oracle, directory=directory,
                                       progress=False, measure_latency=False,
                                       count_flops=False, log_dir=None)
                start = time.perf_counter()
                tuner.search(data.train, validation_data=data.validation,
                             epochs=meta["epochs"], verbose=0)
                seconds.append(time.perf_counter() - start)
                best = tuner.get_best_models(1)[0]
                accuracies.append(best.evaluate(data.test, verbose=0, return_dict=True)[
                    "accuracy"])
        rows.append(f"| {label} | {args.real_seeds} | {100 * statistics.median(accuracies):.2f}"
                    f" | {', '.join(f'{100 * a:.1f}' for a in accuracies)} | "
                    f"{statistics.median(seconds):.0f} |")
        print(rows[-1], flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default="/work/tables/digits.csv")
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--budgets", type=int, nargs="+", default=[10, 20, 30, 45, 60])
    parser.add_argument("--beams", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--dpp-budget", type=int, default=30)
    parser.add_argument("--no-surrogate-study", action="store_true")
    parser.add_argument("--real", action="store_true")
    parser.add_argument("--real-trials", type=int, default=12)
    parser.add_argument("--real-seeds", type=int, default=3)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    name = os.path.splitext(os.path.basename(args.table))[0]
    suffix = "_real" if args.real else ""
    output = args.output or os.path.join(report.RESULTS, f"progressive_{name}{suffix}.md")
    with tempfile.TemporaryDirectory() as directory:
        table, count, done = snapshot(args.table, directory)
        size = table.space.size()
        if args.real:
            rows, verdict = real_rows(table, args), []
        else:
            rows, verdict = compare(table, args)
            if not args.no_surrogate_study:
                rows += surrogate_rows(table, args)
            rows += ["", *dpp_rows(table, args)]
    state = ("complete" if done or count == size
             else f"being built: {count} of {size} architectures")
    if args.real:
        state = "the space and training settings of its table"
    what = ("Real training (the table's dataset, space, epochs and batch size)" if args.real
            else "Median over seeds of the pick's mean test accuracy (%) at each number of "
            f"trained models (queries); the space has {size} architectures")
    report.write_table(
        output, f"PNAS vs regularized evolution vs random search on the {name} table",
        f"`PYTHONPATH=. python benchmarks/{' '.join(sys.argv)}` ({state}): see the "
        f"docstring of benchmarks/progressive.py. {what}.\n\n" + "\n".join(verdict), rows)


if __name__ == "__main__":
    main()
