"""Sample efficiency of the strategies on NAS-Bench-Macro, and oracle overhead.

For each strategy and seed, one search of the largest budget runs against
the packaged NAS-Bench-Macro table (the strategy sees `test_acc[0]`); the
pick after b queries is the best signal among the first b, and the table
reports its `mean_acc`. Then the oracles' own cost per trial: the median
time of `create_trial` + `end_trial` when 10, 100 and 1,000 trials have
completed (KerasTuner's state saves included).

Usage: python benchmarks/strategies_on_macro.py [--seeds 100] [--budgets 50 100 200]
    [--strategies random,evolution,evolution:crossover_probability=0.5]
    [--curves runs.jsonl [--reverse | --done-only]] [--no-overhead]

A strategy is a registered name, optionally with oracle arguments after a
colon (`name:key=value;key=value`), so variants of one strategy run side by
side.

With `--curves`, each seed's best-so-far curve is appended to a JSON-lines
file as soon as it is done, and a rerun with the same file skips the seeds
already there: a long run (KerasTuner's Bayesian optimization costs about a
second per proposal at 100 trials, two at 200) can be stopped and resumed,
or summarized as it stands with `--done-only` (the seeds in the file, among
the first `--seeds`, and no others).
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras_tuner as kt  # noqa: E402

from tfnas import bench, oracles  # noqa: E402

import report  # noqa: E402


def parse_strategy(spec):
    """`"evolution:crossover_probability=0.5"` -> ("evolution", {...: 0.5})."""
    name, _, arguments = spec.partition(":")
    kwargs = {}
    for argument in filter(None, arguments.split(";")):
        key, _, value = argument.partition("=")
        kwargs[key] = json.loads(value)
    return name, kwargs


def oracle_overhead(spec, table, checkpoints=(10, 100, 1000), samples=20, split=False):
    """Median milliseconds of create_trial + end_trial at each checkpoint.

    With `split`, a (create_trial, end_trial) pair of medians instead: the
    time to propose and the time to learn from one trial.
    """
    name, kwargs = parse_strategy(spec)
    oracle = oracles.get(name, kt.Objective("signal", "max"), max(checkpoints) + samples,
                         seed=0, **kwargs)
    result = {}
    with tempfile.TemporaryDirectory() as directory:
        bench.LookupTuner(oracle, table.space, lambda v: 0.0, directory=directory)
        timings = []  # (create, end) milliseconds
        while len(oracle.end_order) < max(checkpoints) + samples:
            start = time.perf_counter()
            trial = oracle.create_trial("bench")
            created = time.perf_counter()
            if trial.status != "RUNNING":
                break
            oracle.update_trial(trial.trial_id, {
                "signal": table.lookup(trial.hyperparameters.values, table.signal)})
            trial.status = "COMPLETED"
            ending = time.perf_counter()
            oracle.end_trial(trial)
            timings.append((1000 * (created - start), 1000 * (time.perf_counter() - ending)))
        for checkpoint in checkpoints:
            window = timings[checkpoint:checkpoint + samples]
            if not window:
                result[checkpoint] = (float("nan"),) * 2 if split else float("nan")
            elif split:
                result[checkpoint] = tuple(statistics.median(column) for column in zip(*window))
            else:
                result[checkpoint] = statistics.median(c + e for c, e in window)
    return result


def _done_curves(name, budget, curves_path):
    done = {}
    if curves_path and os.path.exists(curves_path):
        with open(curves_path) as file:
            for line in file:
                record = json.loads(line)
                if record["strategy"] == name and len(record["curve"]) >= budget:
                    done[record["seed"]] = record["curve"]
    return done


def seed_curves(table, name, budget, seeds, curves_path=None):
    """Best-so-far curves of `name` for each seed, resumed from `curves_path`.

    The file is read again before each seed, so a second process working
    through the seeds in the other order (`--reverse`) shares the work.
    """
    done = {}
    curves = []
    for seed in seeds:
        if seed not in done:
            done.update(_done_curves(name, budget, curves_path))
        if seed not in done:
            strategy, kwargs = parse_strategy(name)
            done[seed] = bench.run_seed(table, strategy, budget, seed, **kwargs)
            if curves_path:
                with open(curves_path, "a") as file:
                    file.write(json.dumps({"strategy": name, "seed": seed,
                                           "curve": done[seed]}) + "\n")
            print(f"{name} seed {seed}: {done[seed][-1]:.2f}", file=sys.stderr, flush=True)
        curves.append(done[seed])
    return curves


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--slow-seeds", type=int, default=20,
                        help="seeds for kt-bayesian and predictor, which fit a model "
                             "at every proposal")
    parser.add_argument("--budgets", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--strategies",
                        default="random,evolution,local,predictor,kt-random,kt-bayesian")
    parser.add_argument("--curves", help="JSON-lines file of per-seed curves to resume from")
    parser.add_argument("--reverse", action="store_true",
                        help="run the seeds from the last one down (a second process "
                             "sharing --curves)")
    parser.add_argument("--done-only", action="store_true",
                        help="summarize the seeds already in --curves; run no others")
    parser.add_argument("--no-overhead", action="store_true",
                        help="skip the oracle overhead measurement (e.g. when running "
                             "the seeds in stages that share --curves)")
    parser.add_argument("--output",
                        default=os.path.join(report.RESULTS, "strategies_on_macro.md"))
    args = parser.parse_args()

    table = bench.load_nas_bench_macro()
    names = args.strategies.split(",")
    rows = ["| strategy | seeds | " + " | ".join(f"{b} queries" for b in args.budgets)
            + " | oracle overhead, median ms at N completed trials |",
            "|---|---|" + "---|" * len(args.budgets) + "---|"]
    slow = {"kt-bayesian": (10, 100), "predictor": (10, 100, 500)}
    for name in names:
        seeds = args.slow_seeds if parse_strategy(name)[0] in slow else args.seeds
        start = time.perf_counter()
        order = range(seeds)[::-1] if args.reverse else range(seeds)
        if args.done_only:
            done = _done_curves(name, max(args.budgets), args.curves)
            order = [seed for seed in order if seed in done]
        curves = seed_curves(table, name, max(args.budgets), order, args.curves)
        records = bench.summarize(table, name, curves, args.budgets)
        checkpoints = slow.get(parse_strategy(name)[0], (10, 100, 1000))
        overhead = ({c: float("nan") for c in checkpoints} if args.no_overhead
                    else oracle_overhead(name, table, checkpoints))
        cells = [f"{r['mean']:.2f} ± {r['std']:.2f} ({r['median']:.2f})" for r in records]
        costs = ", ".join(f"{overhead[c]:.1f} at {c}" for c in checkpoints)
        rows.append(f"| {name} | {len(curves)} | " + " | ".join(cells) + f" | {costs} |")
        print(rows[-1], f"({time.perf_counter() - start:.0f}s)", flush=True)
    optimum = f"{table.optimum():.2f}"
    rows.append("| optimum | | " + " | ".join(optimum for _ in args.budgets) + " | |")
    report.write_table(
        args.output, "Strategies on NAS-Bench-Macro",
        f"`python {' '.join(sys.argv)}`: mean ± std (median) over seeds of the picked "
        "architecture's `mean_acc` (the strategy sees `test_acc[0]`). Overhead: median "
        "ms of create_trial + end_trial (KerasTuner state saves included) after 10, "
        "100 and 1,000 (predictor: 500) completed trials.", rows)


if __name__ == "__main__":
    main()
