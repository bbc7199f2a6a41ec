"""Why a child that inherits its parent's weights scores below its parent:
per mutation kind and per learning-rate policy.

Trains `--parents` random parents of the table's space (seed
`--seed`, not a judged seed of `weight_inheritance.py`) for `--epochs`
epochs (their best epoch kept, as the tuner's checkpoint does); then, for
each parent, one child of every kind of one-decision mutation (deeper,
shallower, wider, narrower, each operation change; and "same", the parent's
own architecture, which isolates the optimizer's effect) is built, inherits
the parent's weights (`tfnas.inheritance.inherit`) and trains
`--child-epochs` epochs under each policy:

- "constant": the compiled Adam learning rate (tfnas before stop 24);
- "warmup-cosine": `tfnas.child_schedule.ChildSchedule`;
- "constant/10": a tenth of the compiled rate;
- "scratch": no inheritance, the compiled rate (what the child would reach
  from Keras's initialisers in the same epochs).

Reports, per kind and policy, medians over parents of: the child's
validation accuracy right after inheritance (before training) and its best
over its epochs, each minus its parent's best; the fresh and morphed layers.

Usage: python benchmarks/inheritance_diagnosis.py [--table tfnas/bench/data/mnist1d.csv]
    [--parents 3] [--epochs 10] [--child-epochs 2] [--seed 100]
"""

import argparse
import collections
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import keras_tuner as kt  # noqa: E402
import numpy as np  # noqa: E402

import tfnas  # noqa: E402
from tfnas import child_schedule, inheritance, layer_removal, moves, spaces  # noqa: E402
from tfnas.bench import ground_truth, tables  # noqa: E402

import report  # noqa: E402

POLICIES = ("constant", "warmup-cosine", "constant/10", "scratch")


def build(space, values):
    hp = kt.HyperParameters()
    hp.values.update(values)
    keras.backend.clear_session()
    return space.build(hp)


def fit_best(model, data, epochs, path, callbacks=()):
    """Trains; loads the best epoch's weights; returns (best val acc, curve)."""
    checkpoint = keras.callbacks.ModelCheckpoint(
        path, monitor="val_accuracy", mode="max", save_best_only=True,
        save_weights_only=True)
    history = model.fit(data.train, validation_data=data.validation, epochs=epochs,
                        verbose=0, callbacks=[checkpoint, *callbacks])
    model.load_weights(path)
    curve = history.history["val_accuracy"]
    return max(curve), curve


def kind(parent, child):
    """The mutation that made `child` from `parent` (one decision changed)."""
    if child["num_layers"] != parent["num_layers"]:
        return "deeper" if child["num_layers"] > parent["num_layers"] else "shallower"
    changed = [k for k in set(parent) | set(child) if parent.get(k) != child.get(k)]
    name = next((k for k in changed if k.endswith("/op")), None) or next(
        (k for k in changed if k.endswith("/filters")), None)
    if name is None:
        return "other"
    if name.endswith("/filters"):
        return "wider" if child[name] > parent[name] else "narrower"
    return f"{parent[name]}->{child[name]}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default="tfnas/bench/data/mnist1d.csv")
    parser.add_argument("--parents", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--child-epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=POLICIES)
    parser.add_argument("--kinds", nargs="*", default=None,
                        help="only these mutation kinds (default: all)")
    parser.add_argument("--output",
                        default=os.path.join(report.RESULTS, "inheritance_diagnosis.md"))
    args = parser.parse_args()
    meta = tables.read_meta(tables.meta_path(args.table))
    data = tfnas.load_data(meta["dataset"], batch_size=meta["batch_size"], seed=args.seed)
    space = spaces.get(meta["space"], data.input_shape, data.num_classes,
                       **dict(meta["space_args"]))
    decisions = ground_truth.discover_hyperparameters(space).space
    rng = np.random.default_rng(args.seed)
    rows = collections.defaultdict(list)  # (kind, policy): [(start gain, gain, fresh, morphed)]
    started_cpu, started = time.process_time(), time.perf_counter()
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "best.weights.h5")
        for number in range(args.parents):
            keras.utils.set_random_seed(args.seed + number)
            parent_values = moves.random_architecture(decisions, rng)
            model = build(space, parent_values)
            parent_score, _ = fit_best(model, data, args.epochs, path)
            donor = inheritance.Donor("p", inheritance.weights_by_key(model), args.child_epochs,
                                      convolutions=inheritance.conv_configs(model),
                                      upstream=layer_removal.upstream_keys(model))
            children = {"same": dict(parent_values)}
            for child in moves.neighbours(decisions, parent_values, rng):
                children.setdefault(kind(parent_values, child), child)
            print(f"parent {number}: {space.describe(parent_values)} {parent_score:.4f}; "
                  f"children {sorted(children)}", flush=True)
            for name, values in sorted(children.items()):
                if args.kinds and name not in args.kinds:
                    continue
                for policy in args.policies:
                    keras.utils.set_random_seed(args.seed + number)
                    child = build(space, values)
                    report_ = {name: float("nan") for name in (
                        "fresh_layers", "morphed_layers", "pruned_layers")}
                    if policy != "scratch":
                        report_ = inheritance.inherit(child, donor, seed=number)
                    if policy == "constant/10":
                        child.optimizer.learning_rate.assign(space.learning_rate / 10)
                    start = child.evaluate(data.validation, verbose=0, return_dict=True)[
                        "accuracy"]
                    callbacks = ([child_schedule.ChildSchedule()]
                                 if policy == "warmup-cosine" else [])
                    score, curve = fit_best(child, data, args.child_epochs, path, callbacks)
                    rows[(name, policy)].append((start - parent_score, score - parent_score,
                                                 report_["fresh_layers"],
                                                 report_["morphed_layers"],
                                                 report_.get("pruned_layers", 0.0)))
                    print(f"  {name:22s} {policy:14s} start {start - parent_score:+.4f} "
                          f"best {score - parent_score:+.4f} curve "
                          f"{[round(c, 3) for c in curve]}", flush=True)
    cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started

    def med(values):
        values = [v for v in values if v == v]
        return statistics.median(values) if values else float("nan")

    table = ["| mutation | policy | children | accuracy after inheritance - parent's | "
             "best after training - parent's | fresh layers | morphed layers | pruned layers |",
             "|---|---|---|---|---|---|---|---|"]
    for (name, policy), found in sorted(rows.items()):
        table.append(f"| {name} | {policy} | {len(found)} | {med([f[0] for f in found]):+.4f} "
                     f"| {med([f[1] for f in found]):+.4f} | {med([f[2] for f in found]):.0f} "
                     f"| {med([f[3] for f in found]):.0f} | {med([f[4] for f in found]):.0f} |")
    summary = ["", "All mutated children (not `same`), medians:", "",
               "| policy | best after training - parent's | children better than parent |",
               "|---|---|---|"]
    for policy in args.policies:
        gains = [f[1] for (name, p), found in rows.items() if p == policy and name != "same"
                 for f in found]
        summary.append(f"| {policy} | {med(gains):+.4f} | {sum(g > 0 for g in gains)}/"
                       f"{len(gains)} |")
    command = " ".join(["`python benchmarks/inheritance_diagnosis.py", *sys.argv[1:]]) + "`"
    report.write_table(
        args.output, "Why inheriting children lose: per mutation and learning-rate policy",
        f"{command}: {args.parents} random parents of the {meta['space']} space "
        f"{meta['space_args']} on {meta['dataset']} (data seed {args.seed}), each trained "
        f"{args.epochs} epochs (best epoch kept); one child per mutation kind, trained "
        f"{args.child_epochs} epochs under each policy (see the script's docstring). "
        f"Accuracies are validation accuracies minus the parent's best; medians over "
        f"parents. CPU {cpu:.0f} s, wall {wall:.0f} s, load average after "
        f"{os.getloadavg()[0]:.1f}.", table + summary)


if __name__ == "__main__":
    main()
