"""The predictor against local search, evolution and random search on one table.

For each strategy and seed, one search of the largest budget runs against a
table (the strategy sees one training run's score, the pick is judged by the
table's final column, as in `strategies_on_macro.py`). Each row also reports
the median CPU milliseconds the oracle spent per proposal (`populate_space`,
after the first 10 trials, so the predictor's proposals are the ones timed).

Usage: python benchmarks/predictor_study.py [--table macro|PATH.csv] [--seeds 30]
    [--budgets 50 100] [--strategies random,evolution,local,predictor,predictor:acquisition="ucb"]
    [--curves runs.jsonl] [--output FILE.md]

`--table macro` is the packaged NAS-Bench-Macro; a CSV path is a table made by
`tfnas table` (its meta file beside it), e.g. /work/tables/digits.csv. A
strategy is a registered name, optionally with oracle arguments after a colon
(`name:key=value;key=value`, values in JSON). With `--curves`, per-seed
curves and timings are appended to a JSON-lines file and a rerun skips the
(strategy, seed) pairs already there.
"""

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras_tuner as kt  # noqa: E402

from tfnas import bench, oracles, strategies  # noqa: E402
from tfnas.oracles import predictor  # noqa: E402
from tfnas.bench import runner  # noqa: E402
from tfnas.lookup import SIGNAL  # noqa: E402

import report  # noqa: E402
from strategies_on_macro import parse_strategy  # noqa: E402

TIMED_AFTER = 10


class RoundRobinPredictor(predictor.PredictorOracle):
    """The predictor's candidate pool before this study (for comparison):
    random one-decision mutations taken in turn from the `num_parents` best
    trials, up to five attempts per candidate."""

    def _candidates(self, parents, rng):
        candidates, seen = [], set()
        for attempt in range(self.num_candidates * 5):
            if len(candidates) == self.num_candidates:
                break
            child = self.mutate(parents[attempt % len(parents)].hyperparameters.values, rng)
            if child is None:
                continue
            key = tuple(sorted(child.items()))
            if key not in seen and self.is_new(child):
                seen.add(key)
                candidates.append(child)
        return candidates


strategies.register("predictor-round-robin", RoundRobinPredictor,
                    budget=predictor.predictor_budget)


def load(table):
    if table == "macro":
        return bench.load_nas_bench_macro()
    return bench.load_ground_truth(table)


def run_seed(table, spec, budget, seed):
    """(best-so-far curve, median ms per proposal after `TIMED_AFTER` trials)."""
    name, kwargs = parse_strategy(spec)
    oracle = oracles.get(name, kt.Objective(SIGNAL, table.direction), budget,
                         seed=seed, space=table.space, **kwargs)
    populate, timings = oracle.populate_space, []

    def timed(trial_id):
        # CPU time: wall time on a shared machine measures the neighbours.
        start = time.process_time()
        response = populate(trial_id)
        if len(oracle.end_order) >= TIMED_AFTER:
            timings.append(1000 * (time.process_time() - start))
        return response

    oracle.populate_space = timed  # instance attribute: this oracle only

    curve = runner.run(oracle, table).best_so_far
    return curve, (statistics.median(timings) if timings else 0.0)


def curves_of(table, spec, budget, seeds, curves_path):
    done = {}
    if curves_path and os.path.exists(curves_path):
        with open(curves_path) as file:
            for line in file:
                record = json.loads(line)
                if record["strategy"] == spec and len(record["curve"]) >= min(
                        budget, len(table.rows)):
                    done[record["seed"]] = (record["curve"], record["ms"])
    results = []
    for seed in seeds:
        if seed not in done:
            done[seed] = run_seed(table, spec, budget, seed)
            if curves_path:
                with open(curves_path, "a") as file:
                    file.write(json.dumps({"strategy": spec, "seed": seed,
                                           "curve": done[seed][0], "ms": done[seed][1]})
                               + "\n")
            print(f"{spec} seed {seed}: {done[seed][0][-1]:.4f} ({done[seed][1]:.1f} ms)",
                  file=sys.stderr, flush=True)
        results.append(done[seed])
    return results


def quartiles(values):
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return q[0], q[2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default="macro")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budgets", type=int, nargs="+", default=[50, 100])
    parser.add_argument("--strategies", default="random,evolution,local,predictor")
    parser.add_argument("--curves")
    parser.add_argument("--scale", type=float, default=None,
                        help="multiply reported values (100 for accuracies in [0, 1])")
    parser.add_argument("--output",
                        default=os.path.join(report.RESULTS, "predictor_study_run.md"))
    args = parser.parse_args()

    table = load(args.table)
    scale = args.scale or (1.0 if args.table == "macro" else 100.0)
    budgets = sorted(args.budgets)
    rows = ["| strategy | seeds | " + " | ".join(f"{b} queries" for b in budgets)
            + " | ms per proposal (median) |",
            "|---|---|" + "---|" * len(budgets) + "---|"]
    finals_of = {}
    for spec in args.strategies.split(","):
        start = time.perf_counter()
        results = curves_of(table, spec, budgets[-1], range(args.seeds), args.curves)
        cells = []
        for budget in budgets:
            finals = [scale * c[min(budget, len(c)) - 1] for c, _ in results]
            finals_of[spec, budget] = finals
            low, high = quartiles(finals)
            cells.append(f"{statistics.fmean(finals):.2f} ± {statistics.pstdev(finals):.2f} "
                         f"(median {statistics.median(finals):.2f}, IQR {low:.2f}-{high:.2f})")
        ms = statistics.median(m for _, m in results)
        rows.append(f"| {spec} | {len(results)} | " + " | ".join(cells) + f" | {ms:.1f} |")
        print(rows[-1], f"({time.perf_counter() - start:.0f}s)", flush=True)
    optimum = f"{scale * table.optimum():.2f}"
    rows.append("| optimum | | " + " | ".join(optimum for _ in budgets) + " | |")
    local = [s for s in args.strategies.split(",") if s == "local"]
    if local:
        rows += ["", "Paired by seed against `local` (same seed, same budget): "
                 "wins / ties / losses.", "",
                 "| strategy | " + " | ".join(f"{b} queries" for b in budgets) + " |",
                 "|---|" + "---|" * len(budgets)]
        for spec in args.strategies.split(","):
            if spec == "local":
                continue
            cells = []
            for budget in budgets:
                pairs = list(zip(finals_of[spec, budget], finals_of["local", budget]))
                wins = sum(a > b + 1e-9 for a, b in pairs)
                losses = sum(a < b - 1e-9 for a, b in pairs)
                cells.append(f"{wins} / {len(pairs) - wins - losses} / {losses}")
            rows.append(f"| {spec} | " + " | ".join(cells) + " |")
    report.write_table(
        args.output, f"The predictor against local search on {args.table}",
        f"`python {' '.join(sys.argv)}`: mean ± std (median, interquartile range) over "
        f"seeds of the picked architecture's `{table.final}` (x{scale:g}); the strategy "
        f"sees `{table.signal}`. ms per proposal: median over seeds of the median "
        f"`populate_space` CPU time after {TIMED_AFTER} trials.", rows)


if __name__ == "__main__":
    main()
