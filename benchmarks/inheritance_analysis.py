"""Which mutations lose most when a child inherits: per-child analysis of
`weight_inheritance.py` results, beside how often each mutation occurs in
the table's space.

Reads the JSON results of one or more `weight_inheritance.py` runs (their
inherit searches' children: mutation kind, score, parent's score) and the
ground-truth table the runs searched. For each mutation kind it reports the
children, their median score minus their parent's, the total accuracy they
lost (the sum of the negative differences: where the time is best spent),
and the kind's share of the one-decision mutations of the table's
architectures (how often a uniform mutation of a random architecture makes
it). No training: it runs in seconds.

Usage: python benchmarks/inheritance_analysis.py \
    [--results benchmarks/results/weight_inheritance.json ...] \
    [--table tfnas/bench/data/mnist1d.csv] [--output ...]
"""

import argparse
import collections
import json
import os
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import tfnas  # noqa: E402,F401
from tfnas import moves, spaces  # noqa: E402
from tfnas.bench import ground_truth, tables  # noqa: E402

import report  # noqa: E402
from inheritance_diagnosis import kind as mutation_kind  # noqa: E402


def space_frequencies(table):
    """`{kind: share}` of the one-decision mutations over the table's rows
    (each architecture weighted alike, its mutations alike)."""
    meta = tables.read_meta(tables.meta_path(table))
    shape = (40, 1) if meta["dataset"] == "mnist1d" else (8, 8, 1)
    space = spaces.get(meta["space"], shape, 10, **dict(meta["space_args"]))
    decisions = ground_truth.discover_hyperparameters(space).space
    rng = np.random.default_rng(0)
    shares = collections.Counter()
    architectures = moves.enumerate_architectures(decisions)
    for values in architectures:
        found = moves.neighbours(decisions, values, rng)
        for child in found:
            shares[mutation_kind(values, child)] += 1.0 / len(found)
    return {name: count / len(architectures) for name, count in shares.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", nargs="+", default=[
        os.path.join(report.RESULTS, "weight_inheritance.json"),
        os.path.join(report.RESULTS, "weight_inheritance_seeds3-4.json")])
    parser.add_argument("--table", default="tfnas/bench/data/mnist1d.csv")
    parser.add_argument("--output",
                        default=os.path.join(report.RESULTS, "inheritance_analysis.md"))
    args = parser.parse_args()
    children = []
    for path in args.results:
        with open(path) as file:
            children += [c for run in json.load(file)["results"]["inherit"]
                         for c in run["children"]]
    frequencies = space_frequencies(args.table)
    by_kind = collections.defaultdict(list)
    for child in children:
        by_kind[child["kind"]].append(child["gain"])
    total_loss = sum(-g for gains in by_kind.values() for g in gains if g < 0)
    rows = ["| mutation | share of the space's mutations | children | share of children "
            "| score - parent's (median) | better than parent | accuracy lost (sum of "
            "losses) | share of all losses |", "|---|---|---|---|---|---|---|---|"]
    order = sorted(set(by_kind) | set(frequencies),
                   key=lambda k: -sum(-g for g in by_kind.get(k, []) if g < 0))
    for name in order:
        gains = by_kind.get(name, [])
        lost = sum(-g for g in gains if g < 0)
        rows.append(
            f"| {name} | {frequencies.get(name, 0.0):.3f} | {len(gains)} | "
            f"{len(gains) / len(children):.3f} | "
            f"{statistics.median(gains) if gains else float('nan'):+.4f} | "
            f"{sum(g > 0 for g in gains)} | {lost:.3f} | "
            f"{lost / total_loss if total_loss else 0.0:.2f} |")
    command = " ".join(["`python benchmarks/inheritance_analysis.py", *sys.argv[1:]]) + "`"
    report.write_table(
        args.output, "Inheriting children by mutation kind",
        f"{command}: {len(children)} children of the inherit searches in "
        f"{', '.join(os.path.basename(p) for p in args.results)}; the space's shares are "
        f"over the one-decision mutations of the {args.table} architectures. Rows by "
        "accuracy lost, most first.", rows)


if __name__ == "__main__":
    main()
