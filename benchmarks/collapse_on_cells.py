"""DARTS's collapse on the cell space (digits), and the guards against it.

The cell space has no ground-truth table; the collapse shows in the derived
normal cell itself: plain DARTS fills it with parameter-free operations
(pooling, identity). For each strategy and seed, `OneShotTuner` searches a
small cell space on digits (supernet `--epochs`, then the derived
architecture retrained `--retrain-epochs` from scratch) and the script
reports the share of parameter-free operations (max/avg pooling, identity)
among the derived normal cell's operations (and the reduction cell's), the
retrained model's test accuracy, and the search's wall and CPU time.

Usage: python benchmarks/collapse_on_cells.py [--strategies darts,darts-pt,beta-darts]
    [--seeds 0 1 2] [--epochs 10] [--tune-epochs 1]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import tfnas  # noqa: E402
from tfnas.supernet import strategies  # noqa: E402
from tfnas.supernet.strategies.darts import DARTSPT  # noqa: E402
from tfnas.supernet.tuner import OneShotTuner  # noqa: E402

import report  # noqa: E402

PARAMETER_FREE = ("max_pool_3x3", "avg_pool_3x3", "identity")


def space(args):
    return tfnas.spaces.CellSpace((8, 8, 1), 10, num_cells=args.cells, num_blocks=args.blocks,
                                  filters=args.filters)


def strategy_for(name, args):
    if name == "darts-pt":
        return DARTSPT(tune_epochs=args.tune_epochs)
    return strategies.resolve(name)


def free_share(values, cell):
    ops = [value for name, value in values.items()
           if name.startswith(f"{cell}/") and "/op_" in name]
    return sum(op in PARAMETER_FREE for op in ops) / max(1, len(ops)), ops


def search(name, args, data, seed):
    keras.utils.set_random_seed(seed)
    with tempfile.TemporaryDirectory() as directory:
        wall, cpu = time.perf_counter(), time.process_time()
        tuner = OneShotTuner(space(args), strategy=strategy_for(name, args),
                             supernet_epochs=args.epochs,
                             architecture_learning_rate=args.architecture_learning_rate,
                             directory=directory, seed=seed, progress=False, log_dir=None)
        tuner.search(data.train, validation_data=data.validation,
                     epochs=args.retrain_epochs, verbose=0)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        model = tuner.get_best_models(1)[0]
        accuracy = model.evaluate(data.test, verbose=0, return_dict=True)["accuracy"]
    values = tuner.oracle.architecture
    return {"strategy": name, "seed": seed, "values": values, "test_acc": accuracy,
            "wall_s": wall, "cpu_s": cpu, "load": os.getloadavg()[0]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", default="darts,darts-pt,beta-darts")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=10, help="supernet epochs")
    parser.add_argument("--retrain-epochs", type=int, default=3)
    parser.add_argument("--tune-epochs", type=int, default=1,
                        help="darts-pt's fine-tuning epochs between two decisions")
    parser.add_argument("--architecture-learning-rate", type=float, default=3e-3)
    parser.add_argument("--cells", type=int, default=3)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--filters", type=int, default=8)
    parser.add_argument("--output", default=os.path.join(report.RESULTS, "collapse_on_cells.md"))
    args = parser.parse_args()
    raw_path = os.path.splitext(args.output)[0] + ".json"
    runs = []
    if os.path.exists(raw_path):
        with open(raw_path) as file:
            runs = json.load(file)
    data = tfnas.load_data("digits", batch_size=64, seed=0)
    for seed in args.seeds:
        for name in args.strategies.split(","):
            if any((r["strategy"], r["seed"]) == (name, seed) for r in runs):
                continue
            keras.backend.clear_session()
            runs.append(search(name, args, data, seed))
            with open(raw_path, "w") as file:
                json.dump(runs, file)
            run = runs[-1]
            print(f"seed {seed} {name}: normal {free_share(run['values'], 'normal')[1]} "
                  f"test {run['test_acc']:.4f} wall {run['wall_s']:.0f} s", flush=True)
    rows = ["| strategy | parameter-free share, normal cell (median) | per seed "
            "| reduction cell (median) | retrained test accuracy (median) "
            "| wall s (median) | CPU s (median) | load average (median) |",
            "|---|---|---|---|---|---|---|---|"]
    for name in args.strategies.split(","):
        mine = [r for r in runs if r["strategy"] == name]
        if not mine:
            continue
        normal = [free_share(r["values"], "normal")[0] for r in mine]
        reduce = [free_share(r["values"], "reduce")[0] for r in mine]
        rows.append(
            f"| {name} | {statistics.median(normal):.2f} "
            f"| {' '.join(format(v, '.2f') for v in normal)} "
            f"| {statistics.median(reduce):.2f} "
            f"| {statistics.median(r['test_acc'] for r in mine):.4f} "
            f"| {statistics.median(r['wall_s'] for r in mine):.0f} "
            f"| {statistics.median(r['cpu_s'] for r in mine):.0f} "
            f"| {statistics.median(r['load'] for r in mine):.1f} |")
    rows += ["", "Derived normal cells (operations per block):", ""]
    rows += [f"- {r['strategy']} seed {r['seed']}: {free_share(r['values'], 'normal')[1]}"
             for r in runs]
    report.write_table(
        args.output, "DARTS's collapse on the cell space (digits)",
        f"`python {' '.join(sys.argv)}`. Cell space: {args.cells} cells, {args.blocks} blocks, "
        f"{args.filters} filters, operations {', '.join(tfnas.spaces.ops.CELL_OPS)}; "
        f"supernet {args.epochs} epochs (alphas' Adam lr {args.architecture_learning_rate:g}), "
        f"derived architecture retrained {args.retrain_epochs} epochs; darts-pt fine-tunes "
        f"{args.tune_epochs} epoch(s) between decisions. Parameter-free: "
        f"{', '.join(PARAMETER_FREE)}.", rows)


if __name__ == "__main__":
    main()
