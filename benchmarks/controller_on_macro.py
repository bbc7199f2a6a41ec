"""The RNN controller (REINFORCE, PPO) and multi-objective search on NAS-Bench-Macro.

1. Sample efficiency: random search, regularized evolution, the controller
   with REINFORCE and with PPO, in one run: for each strategy and seed one
   search of the largest budget against the packaged table (the strategy
   sees `test_acc[0]`, the pick is reported by its `mean_acc`).
2. Controller overhead: median milliseconds to propose (create_trial) and to
   learn from (end_trial, the policy update and the state save included)
   one trial, after 10 and 1,000 completed trials.
3. Multi-objective: regularized evolution with Pareto selection over
   (`test_acc[0]`, max) and (`params`, min) against random search, 100
   queries: hypervolume of the evaluated architectures' front in (`mean_acc`,
   `params`), as a fraction of the hypervolume of the whole table's front;
   the reference point is the nadir of the table's front (its least
   accurate and its largest member), so that only architectures that
   compete with the front count.

Usage: python benchmarks/controller_on_macro.py [--seeds 100]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras_tuner as kt  # noqa: E402

from tfnas import bench, oracles, pareto  # noqa: E402

import report  # noqa: E402
from strategies_on_macro import oracle_overhead  # noqa: E402

OBJECTIVES = [("test_acc[0]", "max"), ("params", "min")]


def front_hypervolume(table, keys, reference):
    points = [(table.rows[k]["mean_acc"], table.rows[k]["params"]) for k in keys]
    return pareto.hypervolume_2d(points, ["max", "min"], reference)


def multi_objective(table, name, seeds, budget):
    """Hypervolume fractions of the fronts found by `name` over `seeds`."""
    everything = [(r["mean_acc"], r["params"]) for r in table.rows.values()]
    front = [everything[i] for i in pareto.non_dominated(everything, ["max", "min"])]
    reference = (min(a for a, _ in front) - 1e-6, max(p for _, p in front) + 1)
    optimum = front_hypervolume(table, list(table.rows), reference)

    def measure(values):
        return {"test_acc[0]": table.lookup(values, "test_acc[0]"),
                "params": table.lookup(values, "params")}

    fractions = []
    for seed in seeds:
        kwargs = {"pareto_objectives": OBJECTIVES} if name == "evolution" else {}
        oracle = oracles.get(name, kt.Objective("test_acc[0]", "max"), budget, seed=seed,
                             **kwargs)
        with tempfile.TemporaryDirectory() as directory:
            bench.LookupTuner(oracle, table.space, measure, directory=directory).search()
        keys = [table.key(t.hyperparameters.values) for t in oracle.trials.values()
                if t.status == "COMPLETED"]
        fractions.append(front_hypervolume(table, keys, reference) / optimum)
    return fractions


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--budgets", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--strategies", default="random,evolution,controller,ppo")
    parser.add_argument("--mo-budget", type=int, default=100)
    parser.add_argument("--output",
                        default=os.path.join(report.RESULTS, "controller_on_macro.md"))
    args = parser.parse_args()
    table = bench.load_nas_bench_macro()

    rows = ["| strategy | seeds | " + " | ".join(f"{b} queries" for b in args.budgets)
            + " |", "|---|---|" + "---|" * len(args.budgets)]
    for name in args.strategies.split(","):
        start = time.perf_counter()
        records = bench.compare(table, [name], args.budgets, range(args.seeds))
        rows.append(f"| {name} | {args.seeds} | " + " | ".join(
            f"{r['mean']:.2f} ± {r['std']:.2f}" for r in records) + " |")
        print(rows[-1], f"({time.perf_counter() - start:.0f}s)", flush=True)
    rows.append("| optimum | | " + " | ".join(
        f"{table.optimum():.2f}" for _ in args.budgets) + " |")

    rows += ["", "| controller | propose, median ms at 10 / 1,000 trials "
             "| learn (update + save), median ms at 10 / 1,000 trials |", "|---|---|---|"]
    for name in ("controller", "ppo"):
        overhead = oracle_overhead(name, table, (10, 1000), split=True)
        rows.append(f"| {name} | {overhead[10][0]:.1f} / {overhead[1000][0]:.1f} "
                    f"| {overhead[10][1]:.1f} / {overhead[1000][1]:.1f} |")
        print(rows[-1], flush=True)

    rows += ["", f"| multi-objective, {args.mo_budget} queries | seeds | hypervolume "
             "fraction, mean ± std | median |", "|---|---|---|---|"]
    for name, label in (("random", "random search"),
                        ("evolution", "Pareto evolution (test_acc[0] max, params min)")):
        fractions = multi_objective(table, name, range(args.seeds), args.mo_budget)
        rows.append(f"| {label} | {len(fractions)} | {statistics.fmean(fractions):.4f} ± "
                    f"{statistics.pstdev(fractions):.4f} | {statistics.median(fractions):.4f} |")
        print(rows[-1], flush=True)

    report.write_table(
        args.output, "The controller and multi-objective search on NAS-Bench-Macro",
        f"`python {' '.join(sys.argv)}`: see the docstring of "
        "benchmarks/controller_on_macro.py. Sample efficiency: mean ± std over seeds "
        "of the picked architecture's `mean_acc` (the strategy sees `test_acc[0]`).",
        rows)


if __name__ == "__main__":
    main()
