"""Training-free proxies against stand-alone accuracy, and proxy-screened evolution.

1. Ground truth: every architecture of a small chain space (`--ground-truth
   build`: depth 1-2, conv3x3 / sepconv3x3 / maxpool3x3, 8 or 16 filters,
   stride 1 or 2, no skips: 110 architectures) trained from scratch on
   digits for `--epochs` epochs, its validation and test accuracy written to
   benchmarks/results/proxies_ground_truth.csv (reused when it exists); or a
   table of another run (`--table PATH --space S --space-arg K=V`, a CSV with
   an `arch` column of Architecture JSON and the accuracy columns).
2. Every proxy of `tfnas.proxies` computed for every architecture of the
   table (one batch of 64 training examples, weights from seed 0), and its
   Spearman and Kendall rank correlation with the test accuracy, beside the
   parameter count's own.
3. Regularized evolution with and without proxy screening (the best of
   `--candidates` proposals by proxy is trained), at the same number of
   trained architectures (`--budget`), answered by table lookup: the test
   accuracy of the architecture with the best validation accuracy, median
   over `--seeds` seeds.

Usage: python benchmarks/proxies.py [--epochs 5] [--budget 15] [--seeds 20]
    [--candidates 5] [--table PATH --space S --space-arg K=V --final test_accuracy]
    python benchmarks/proxies.py --table mnist1d --budget 8 --candidates 3 \
        --output benchmarks/results/proxies_mnist1d.md   (a `tfnas table` table)
"""

import argparse
import csv
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tfnas  # noqa: E402
from tfnas import proxies, spaces  # noqa: E402
from tfnas.architecture import Architecture  # noqa: E402

import report  # noqa: E402

GROUND_TRUTH = os.path.join(report.RESULTS, "proxies_ground_truth.csv")


def small_chain(input_shape=(8, 8, 1), num_classes=10):
    return spaces.ChainSpace(input_shape, num_classes, min_layers=1, max_layers=2,
                             operations=("conv3x3", "sepconv3x3", "maxpool3x3"),
                             filters=(8, 16), activations=("relu",), strides=(1, 2),
                             skips=False)


def build_ground_truth(path, epochs, seed=0):
    """Trains every architecture of `small_chain` on digits; writes a CSV."""
    data = tfnas.load_data("digits", batch_size=32, seed=seed)
    space = small_chain(data.input_shape, data.num_classes)
    architectures = proxies.sample_space(space)
    rows = []
    for index, values in enumerate(architectures):
        start = time.perf_counter()
        keras.backend.clear_session()
        model = proxies.build(space, values, seed)
        history = model.fit(data.train, validation_data=data.validation, epochs=epochs,
                            verbose=0, shuffle=False)
        test = model.evaluate(data.test, verbose=0, return_dict=True)["accuracy"]
        rows.append({"arch": Architecture(values).to_json(),
                     "val_accuracy": history.history["val_accuracy"][-1],
                     "test_accuracy": test, "params": model.count_params(),
                     "train_time_s": time.perf_counter() - start})
        print(f"{index + 1}/{len(architectures)} val {rows[-1]['val_accuracy']:.3f} "
              f"test {test:.3f} {space.describe(values)}", flush=True)
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_table(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def proxy_scores(space, architectures, batch, path):
    """Every proxy of every architecture, cached in `path` (CSV) by key."""
    cached = {}
    if os.path.exists(path):
        cached = {row["arch"]: {p: float(row[p]) for p in proxies.PROXIES}
                  for row in read_table(path)}
    keys = [Architecture(values).to_json() for values in architectures]
    missing = [v for k, v in zip(keys, architectures) if k not in cached]
    start = time.perf_counter()
    for index, values in enumerate(missing):
        cached[Architecture(values).to_json()] = proxies.score_architecture(
            space, values, proxies.PROXIES, batch, seed=0)
        print(f"\rscored {index + 1}/{len(missing)}", end="", file=sys.stderr, flush=True)
    seconds = (time.perf_counter() - start) / max(1, len(missing))
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=["arch", *proxies.PROXIES])
        writer.writeheader()
        for key, scores in cached.items():  # all, a growing table's other rows too
            writer.writerow({"arch": key, **scores})
    return [cached[k] for k in keys], seconds if missing else None


def correlations(scores, accuracy):
    from scipy import stats

    rows = {}
    for proxy in proxies.PROXIES:
        values = np.asarray([s[proxy] for s in scores], dtype=float)
        # -inf (naswot's singular kernels, jacob_cov's constant Jacobians) ranks last.
        finite = np.where(np.isfinite(values), values, np.nanmin(values[np.isfinite(values)]) - 1)
        rho = stats.spearmanr(finite, accuracy).statistic
        tau = stats.kendalltau(finite, accuracy).statistic
        rows[proxy] = (rho, tau, int(np.sum(~np.isfinite(values))))
    return rows


def run_search(strategy, table, space, budget, seed, screen_scores, candidates, directory):
    import keras_tuner as kt

    from tfnas import oracles
    from tfnas.lookup import LookupTuner
    from tfnas.screening import ProxyScreen

    screen = None
    if screen_scores is not None:
        screen = ProxyScreen(lambda values: screen_scores[Architecture(values).to_json()],
                             candidates)
    kwargs = {"population_size": 5, "sample_size": 2} if strategy == "evolution" else {}
    oracle = oracles.get(strategy, objective=kt.Objective("signal", "max"),
                         max_trials=budget, seed=seed, screen=screen, **kwargs)
    tuner = LookupTuner(oracle, space, lambda v: table[Architecture(v).to_json()][0],
                        directory=directory, project_name=f"{strategy}-{seed}-{id(screen)}")
    tuner.search()
    best = oracle.get_best_trials(1)[0]
    return table[Architecture.from_trial(best).to_json()][1]


def table_and_meta(table):
    """The table's CSV path and its `tfnas table` meta record (or None)."""
    from tfnas.bench import tables

    path = tables.PACKAGED_TABLES.get(table, table)
    meta = tables.meta_path(path)
    return path, (tables.read_meta(meta) if os.path.exists(meta) else None)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default=GROUND_TRUTH,
                        help="CSV with an `arch` column (Architecture JSON)")
    parser.add_argument("--space", default=None,
                        help="the table's space (default: the small chain space)")
    parser.add_argument("--space-arg", action="append", default=[], metavar="KEY=JSON")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--final", default=None,
                        help="default: test_accuracy, or the table's meta file's")
    parser.add_argument("--signal", default=None,
                        help="default: val_accuracy, or the table's meta file's")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--budget", type=int, default=15)
    parser.add_argument("--candidates", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--strategies", default="evolution,random")
    parser.add_argument("--output", default=os.path.join(report.RESULTS, "proxies.md"))
    args = parser.parse_args(argv)
    if args.table == GROUND_TRUTH and not os.path.exists(GROUND_TRUTH):
        build_ground_truth(GROUND_TRUTH, args.epochs)
    path, meta = table_and_meta(args.table)
    if meta is not None:  # a `tfnas table` table: its space, dataset and columns
        args.dataset = meta["dataset"]
        args.signal = args.signal or meta["signal"]
        args.final = args.final or meta["final"]
    args.signal = args.signal or "val_accuracy"
    args.final = args.final or "test_accuracy"
    data = tfnas.load_data(args.dataset, batch_size=64, seed=0)
    if meta is not None:
        space = spaces.get(meta["space"], meta["input_shape"], meta["num_classes"],
                           **meta["space_args"])
    elif args.space is None:
        space = small_chain(data.input_shape, data.num_classes)
    else:
        space_args = {k: json.loads(v) for k, v in (a.split("=", 1) for a in args.space_arg)}
        space = spaces.get(args.space, data.input_shape, data.num_classes, **space_args)
    rows = read_table(path)
    architectures = [json.loads(row["arch"]) for row in rows]
    accuracy = np.asarray([float(row[args.final]) for row in rows])
    batch = proxies.proxy_batch(data, 64, seed=0)
    name = os.path.splitext(os.path.basename(path))[0]
    cache = os.path.join(report.RESULTS, f"proxies_scores_{name}.csv")
    scores, seconds = proxy_scores(space, architectures, batch, cache)
    print(file=sys.stderr)

    found = correlations(scores, accuracy)
    params_rho = found["params"][0]
    lines = ["| proxy | Spearman rho | Kendall tau | -inf scores | beats params (rho) |",
             "|---|---:|---:|---:|---|"]
    for proxy, (rho, tau, infinite) in found.items():
        verdict = "(baseline)" if proxy == "params" else ("yes" if rho > params_rho else "no")
        lines.append(f"| {proxy} | {rho:.3f} | {tau:.3f} | {infinite} | {verdict} |")
    beaten = [p for p in proxies.PROXIES if p != "params" and found[p][0] > params_rho]

    table = {row["arch"]: (float(row[args.signal]), float(row[args.final])) for row in rows}
    optimum = max(final for _, final in table.values())
    import tempfile

    search_lines = ["| strategy | screening | median test acc. | mean | regret (median) |",
                    "|---|---|---:|---:|---:|"]
    started = time.perf_counter()
    size = space.size()
    if len(rows) < size:  # a table being built: its searches would leave it
        print(f"The table has {len(rows)} of the space's {size} architectures: no searches.",
              file=sys.stderr)
        search_lines = [f"No searches: the table has {len(rows)} of the space's {size} "
                        "architectures (a table being built)."]
    with tempfile.TemporaryDirectory() as directory:
        for strategy in args.strategies.split(",") if len(rows) >= size else ():
            for proxy in (None,) + proxies.PROXIES:
                screen_scores = None if proxy is None else {
                    Architecture(v).to_json(): s[proxy] for v, s in zip(architectures, scores)}
                finals = [run_search(strategy, table, space, args.budget, seed, screen_scores,
                                     args.candidates, directory) for seed in range(args.seeds)]
                label = "none" if proxy is None else f"{proxy}, best of {args.candidates}"
                search_lines.append(
                    f"| {strategy} | {label} | {statistics.median(finals):.4f} | "
                    f"{statistics.mean(finals):.4f} | {optimum - statistics.median(finals):.4f} |")
                print(search_lines[-1], flush=True)
    search_seconds = time.perf_counter() - started

    summary = (
        f"Proxies that beat the parameter count's Spearman rho ({params_rho:.3f}): "
        + (", ".join(beaten) if beaten else "none") + ".")
    description = (
        f"Ground truth: {len(rows)} architectures of `{os.path.relpath(path)}` "
        f"({args.final}; the strategies see {args.signal}), best {optimum:.4f}. "
        f"Proxies on one batch of 64 {args.dataset} training examples, weights "
        f"from seed 0"
        + (f", {seconds:.2f} s per architecture for all seven" if seconds else "")
        + (f". Searches: {args.budget} trained architectures each, answered by lookup, "
           f"{args.seeds} seeds; screened runs train the best of {args.candidates} "
           f"proposals by proxy ({search_seconds:.0f} s for all searches).\n\n"
           if len(rows) >= size else ". No searches (a partial table).\n\n")
        + "Command: `python benchmarks/proxies.py "
        + " ".join(argv if argv is not None else sys.argv[1:]) + "`\n\n" + summary + "\n")
    report.write_table(args.output, "Training-free proxies against stand-alone accuracy",
                       description, lines + [""] + search_lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
