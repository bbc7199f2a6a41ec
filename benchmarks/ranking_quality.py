"""How well weight sharing ranks architectures, measured on a ground-truth table.

A `tfnas table` table (every architecture of a small space trained stand-alone
with several seeds) is the truth. For each seed and each one-shot strategy,
`OneShotTuner` searches the table's space on the table's data (supernet
training, derivation, retraining of the derived architecture for the table's
epochs: the wall time of the whole search is measured). Then:

(a) SPOS (uniform single-path supernet training): the inherited-weight
    validation accuracy of EVERY architecture of the table, batch norm
    recalibrated for each path (momentum 0 on one batch of 512 training
    examples: the path's exact statistics on them), against the table's
    stand-alone mean accuracy: Kendall tau and Spearman rho. All paths are
    scored by one traced function (the path is the mixed layers' index
    variables, so a new path does not retrace).
(b) DARTS and the other alpha-learning strategies: tau between an
    architecture's alpha score (the sum of its active decisions'
    log-softmax alphas) and the table.
(c) The derived architecture of every strategy: its place in the table
    ("top x %": 100 * rank / size by the table's final column).
(d) beta-darts against darts: (c) for both.
(e) Cost: one-shot wall time (search + retraining) against regularized
    evolution on the table reaching the same place: the sum of the table's
    `train_time_s` of the architectures it queried until its pick (best
    signal so far) is at least as good, over `--evolution-seeds` seeds.

Before all that, `--tune` picks the supernet's epochs and learning rate from a
small grid by a criterion that does not read the table: the supernet's mean
inherited validation accuracy over every path, the fewest epochs within a
point of the best; tau is shown for every grid point as well.

The searches (supernet scores of every architecture of the space, derived
architectures, wall times) are kept in a JSON beside the results and resumed
from it; `--analyze-only` compares them with the table again (e.g. once a
growing table is finished) without training.

Usage: python benchmarks/ranking_quality.py --table /work/tables/digits.csv
    [--seeds 0 1 2 3 4] [--epochs 30] [--learning-rate 0.01] [--tune]
    [--analyze-only]
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
import keras_tuner as kt  # noqa: E402
import tensorflow as tf  # noqa: E402
from scipy import stats  # noqa: E402

import tfnas  # noqa: E402
from tfnas import oracles  # noqa: E402
from tfnas.bench import runner, tables  # noqa: E402
from tfnas.supernet import oneshot, paths, strategies  # noqa: E402
from tfnas.supernet.builder import build_supernet  # noqa: E402
from tfnas.supernet.tuner import OneShotTuner  # noqa: E402

import report  # noqa: E402

STRATEGIES = "darts,beta-darts,darts-pt,darts2,gdas,proxyless,spos,enas"


def load(table_path):
    """`(table, meta, data)`: the ground truth, its meta record and its data."""
    table = tables.load_ground_truth(table_path)
    meta = tables.read_meta(tables.meta_path(table_path))
    data = tfnas.load_data(meta["dataset"], batch_size=meta["batch_size"],
                           seed=meta.get("data_seed", 0))
    return table, meta, data


def space_architectures(space):
    """`{table key: values}` of every architecture of `space` (the supernet
    scores them all; the table may still be growing)."""
    from tfnas.bench.ground_truth import enumerate_space

    name = tfnas.spaces.name_of(space)
    return {tables.encode_key(name, values): values for values in enumerate_space(space)}


def alpha_scores(model, architectures):
    """Sum over each architecture's decisions of log softmax(alpha) of its value."""
    logs = {name: tf.nn.log_softmax(layer.alpha).numpy()
            for name, layer in model.decisions.items()}
    scores = []
    for values in architectures:
        scores.append(sum(float(logs[name][model.builder.values[name].index(value)])
                          for name, value in values.items() if name in logs))
    return scores


def correlations(scores, table):
    """Kendall tau and Spearman rho of `{key: score}` against the table's
    final column, over the architectures the table has."""
    keys = [key for key in scores if key in table.rows]
    truth = [tables.column_value(table.rows[key], table.final) for key in keys]
    mine = [scores[key] for key in keys]
    return (float(stats.kendalltau(mine, truth).statistic),
            float(stats.spearmanr(mine, truth).statistic))


def top_percent(table, values):
    """100 * rank / size of `values` in the table by its final column (1 = best;
    None for an architecture the table lacks)."""
    try:
        mine = table.lookup(values, table.final)
    except KeyError:
        return None
    finals = [tables.column_value(row, table.final) for row in table.rows.values()]
    better = sum(f > mine for f in finals) if table.direction == "max" else sum(
        f < mine for f in finals)
    return 100.0 * (better + 1) / len(finals)


def supernet_scores(model, architectures, train, validation):
    """`("inherited" or "alpha", {key: score})` of every architecture."""
    keys = list(architectures)
    if model.strategy.mode == "single_path":
        scorer = paths.PathAccuracy(model, paths.calibration_batch(train), validation)
        scored = scorer([architectures[k] for k in keys])
        return "inherited", dict(zip(keys, scored))
    return "alpha", dict(zip(keys, alpha_scores(model, [architectures[k] for k in keys])))


def measuring(strategy, architectures, train, validation, measurements):
    """The strategy `strategy` (a name or an instance), which after its own
    search (supernet training and derivation) scores every architecture with
    the trained supernet into `measurements` (and the time that took, which
    the caller subtracts from the search's)."""
    strategy = strategies.resolve(strategy)
    base = type(strategy)

    class Measuring(base):
        def search(self, tuner, model, train_data, validation_data, epochs):
            values = super().search(tuner, model, train_data, validation_data, epochs)
            start = time.perf_counter()
            measurements["kind"], measurements["scores"] = supernet_scores(
                model, architectures, train, validation)
            measurements["measure_s"] = time.perf_counter() - start
            if getattr(self, "steps", None):  # DARTS-PT's selection steps
                measurements["steps"] = self.steps
            return values

    measuring_strategy = Measuring.__new__(Measuring)
    measuring_strategy.__dict__.update(strategy.__dict__)  # the instance's options
    return measuring_strategy


def one_shot(name, architectures, space, epochs_retrain, data, seed, epochs, learning_rate,
             architecture_lr, options=None):
    """One search: `{"values", "wall_s", "retrain_s", "kind", "scores"}`.
    `options`: keyword arguments of the strategy's class."""
    keras.utils.set_random_seed(seed)
    measurements = {}
    instance = type(strategies.resolve(name))(**(options or {}))
    strategy = measuring(instance, architectures, data.train, data.validation, measurements)
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        tuner = OneShotTuner(space, strategy=strategy, supernet_epochs=epochs,
                             weight_optimizer=keras.optimizers.Adam(learning_rate),
                             architecture_learning_rate=architecture_lr,
                             spos_trials=50, enas_trials=50, enas_steps=10,
                             directory=directory, seed=seed, progress=False, log_dir=None)
        tuner.search(data.train, validation_data=data.validation, epochs=epochs_retrain,
                     verbose=0)
        wall = time.perf_counter() - start - measurements.get("measure_s", 0.0)
        trial = tuner.oracle.get_best_trials(1)[0]
        retrain_s = trial.metrics.get_last_value("train_time_s") if trial.metrics.exists(
            "train_time_s") else None
    return {**measurements, "strategy": name, "seed": seed,
            "values": tuner.oracle.architecture, "wall_s": wall, "retrain_s": retrain_s}


def spos_supernet(space, data, seed, epochs, learning_rate):
    """A uniformly trained single-path supernet of `space` (no search)."""
    keras.utils.set_random_seed(seed)
    supernet, builder = build_supernet(space, "single_path", seed=seed)
    model = oneshot.OneShotModel(supernet, builder, strategy="spos", seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=supernet.loss,
                  metrics=["accuracy"])
    model.fit(oneshot.paired(data.train, data.validation), epochs=epochs, verbose=0)
    return model


def tune(space, architectures, data, epochs_grid, lr_grid, seeds, raw, save):
    """SPOS supernets over the grid; appends `{epochs, lr, seed, scores}` to
    `raw["tune"]` (skipping those already there), calling `save` after each."""
    for epochs in epochs_grid:
        for lr in lr_grid:
            for seed in seeds:
                if any((t["epochs"], t["lr"], t["seed"]) == (epochs, lr, seed)
                       for t in raw["tune"]):
                    continue
                keras.backend.clear_session()
                model = spos_supernet(space, data, seed, epochs, lr)
                _, scores = supernet_scores(model, architectures, data.train, data.validation)
                raw["tune"].append({"epochs": epochs, "lr": lr, "seed": seed,
                                    "scores": [scores[key] for key in architectures]})
                save()
                print(f"tune: epochs={epochs} lr={lr} seed={seed} mean inherited accuracy "
                      f"{statistics.fmean(scores.values()):.4f}", flush=True)


def chosen_setting(raw, table):
    """Rows `(epochs, lr, mean inherited accuracy, tau)` of the grid (medians
    over seeds) and the chosen `(epochs, lr)`: the fewest epochs whose mean
    inherited accuracy is within a point of the grid's best (a criterion that
    does not read the table; tau is shown beside it)."""
    grid = {}
    for run in raw["tune"]:
        scores = dict(zip(raw["keys"], run["scores"]))
        grid.setdefault((run["epochs"], run["lr"]), []).append(
            (statistics.fmean(scores.values()), correlations(scores, table)[0]))
    rows = [(epochs, lr, statistics.median(a for a, _ in runs),
             statistics.median(t for _, t in runs))
            for (epochs, lr), runs in sorted(grid.items())]
    best = max(row[2] for row in rows)
    chosen = min((row for row in rows if row[2] >= best - 0.01), key=lambda row: row[0])
    return rows, (chosen[0], chosen[1])


def evolution_curves(table, seeds, budget):
    """Per seed, `[(queries, table seconds, top % of the pick)]` after each
    query of regularized evolution on the table (its pick: the best signal
    so far), from one run of `budget` queries (an anytime evaluation)."""
    return [_evolution_run(table, oracles.get(
        "evolution", kt.Objective(runner.SIGNAL, table.direction), budget, seed=seed,
        space=table.space)) for seed in seeds]


def _evolution_run(table, oracle):
    # An architecture a growing table lacks fails its trial and costs nothing.
    oracle.max_consecutive_failed_trials = 10 ** 6
    runner.query(oracle, table)
    curve, seconds, best = [], 0.0, None
    for trial in (oracle.trials[trial_id] for trial_id in oracle.end_order):
        if trial.score is None:
            continue
        values = trial.hyperparameters.values
        seconds += table.lookup(values, "train_time_s")
        if best is None or trial.score > best[0]:  # accuracy tables: larger is better
            best = (trial.score, values)
        curve.append((len(curve) + 1, seconds, top_percent(table, best[1])))
    return curve


def reaching(curves, target_top):
    """Per curve, the first `(queries, seconds)` whose pick is in the top
    `target_top` %, or None."""
    return [next(((q, s) for q, s, top in curve if top <= target_top + 1e-9), None)
            for curve in curves]


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def _pooling_share(runs):
    """The share of pooling among the derived architectures' layer operations
    (DARTS's collapse shows as a share near 1)."""
    ops = [value for run in runs for name, value in run["values"].items()
           if name.endswith("/op")]
    return sum("pool" in op for op in ops) / max(1, len(ops))


def _place(top):
    return "not in table yet" if top is None else f"{top:.1f}"


def run_searches(args, raw, save):
    """The heavy part: supernet training and searches, kept in `raw`."""
    table, meta, data = load(args.table)
    architectures = space_architectures(table.space)
    raw.setdefault("architectures", len(architectures))
    raw.setdefault("keys", list(architectures))
    if raw["keys"] != list(architectures):
        raise ValueError(f"{args.raw}: kept searches of another space; use another --raw.")
    if args.tune:
        tune(table.space, architectures, data, args.tune_epochs, args.tune_learning_rates,
             args.tune_seeds, raw, save)
        _, (args.epochs, args.learning_rate) = chosen_setting(raw, table)
        print(f"chosen: {args.epochs} epochs, lr {args.learning_rate}", flush=True)
    raw["command"] = f"python {' '.join(sys.argv)}"
    raw["setting"] = {"epochs": args.epochs, "learning_rate": args.learning_rate,
                      "strategy_options": args.strategy_options,
                      "architecture_learning_rate": args.architecture_learning_rate,
                      "retrain_epochs": meta["epochs"]}
    for seed in args.seeds:
        for strategy in filter(None, args.strategies.split(",")):
            if any((r["strategy"], r["seed"]) == (strategy, seed) for r in raw["runs"]):
                continue
            keras.backend.clear_session()
            result = one_shot(strategy, architectures, table.space, meta["epochs"], data, seed,
                              args.epochs, args.learning_rate, args.architecture_learning_rate,
                              args.strategy_options.get(strategy))
            result["scores"] = [result["scores"][key] for key in architectures]
            raw["runs"].append(result)
            save()
            print(f"seed {seed} {strategy}: wall {result['wall_s']:.1f} s, derived "
                  f"{table.space.describe(result['values'])}", flush=True)


def analysis(args, raw):
    """The markdown rows of the results in `raw` against the table as it is now."""
    table, meta, _ = load(args.table)
    complete = len(table.rows) >= meta.get("size", len(table.rows))
    rows = [f"Table: {len(table.rows)} of {raw['architectures']} architectures"
            + ("" if complete else " (still being built: correlations, places and "
               "evolution over those present; rerun with --analyze-only when it is done)")
            + f"; stand-alone best {table.optimum():.4f}.", ""]
    noise = [stats.kendalltau(
        [tables.column_value(row, f"{column}[0]") for row in table.rows.values()],
        [tables.column_value(row, f"{column}[1]") for row in table.rows.values()]).statistic
        for column in ("val_acc", "test_acc")]
    rows += ["The table against itself (stand-alone run of seed 0 against seed 1): Kendall "
             f"tau {noise[0]:.3f} on validation accuracy, {noise[1]:.3f} on test "
             "accuracy: the agreement one training run reaches.", ""]
    if raw["tune"]:
        grid, (epochs, lr) = chosen_setting(raw, table)
        seeds = sorted({t["seed"] for t in raw["tune"]})
        rows += [f"Supernet hyperparameters: SPOS supernets on a grid (seeds {seeds}, "
                 "medians), chosen by the mean inherited validation accuracy over every "
                 "path, which does not read the table (the fewest epochs within a point "
                 "of the best); tau shown beside it:", "",
                 "| supernet epochs | Adam lr | mean inherited val accuracy "
                 "| tau against the table |", "|---|---|---|---|"]
        rows += [f"| {e} | {r:g} | {a:.4f} | {t:.3f} |" for e, r, a, t in grid]
        rows += ["", f"Chosen: {epochs} epochs, lr {lr:g}.", ""]

    by_strategy = {}
    for run in raw["runs"]:
        run = {**run, "top": top_percent(table, run["values"]),
               "tau": correlations(dict(zip(raw["keys"], run["scores"])), table)}
        by_strategy.setdefault(run["strategy"], []).append(run)
    rows += ["| strategy | supernet's ranking: tau (rho), median | tau per seed "
             "| derived architecture: top %, median | top % per seed "
             "| wall s (search + retraining), median | pooling share of derived layers |",
             "|---|---|---|---|---|---|---|"]
    for strategy, runs in by_strategy.items():
        rows.append(
            f"| {strategy} | {runs[0]['kind']} {_median([r['tau'][0] for r in runs]):.3f} "
            f"({_median([r['tau'][1] for r in runs]):.3f}) "
            f"| {' '.join(format(r['tau'][0], '.2f') for r in runs)} "
            f"| {_median([r['top'] for r in runs]):.1f} "
            f"| {' '.join(_place(r['top']) for r in runs)} "
            f"| {_median([r['wall_s'] for r in runs]):.1f} | {_pooling_share(runs):.2f} |")

    rows += ["", "| strategy | derived top % (median) | one-shot wall s (median) "
             "| evolution to the same place: queries, table s (medians; queries of "
             "architectures the table lacks not counted) "
             "| evolution table s / one-shot wall s | the same, on this run's clock |",
             "|---|---|---|---|---|---|"]
    budget = min(args.evolution_budget, raw["architectures"])
    curves = evolution_curves(table, range(args.evolution_seeds), budget)
    pairs = [(r["retrain_s"], table.lookup(r["values"], "train_time_s"))
             for runs in by_strategy.values() for r in runs
             if r.get("retrain_s") and r["top"] is not None]
    clock = statistics.median(mine / theirs for mine, theirs in pairs) if pairs else 1.0
    for strategy, runs in by_strategy.items():
        target = _median([r["top"] for r in runs])
        wall = _median([r["wall_s"] for r in runs])
        if target != target:  # no derived architecture in the table yet
            continue
        done = [r for r in reaching(curves, target) if r is not None]
        queries, seconds = _median([r[0] for r in done]), _median([r[1] for r in done])
        rows.append(f"| {strategy} | {target:.1f} | {wall:.1f} | {queries:g}, {seconds:.1f} "
                    f"(reached by {len(done)} of {len(curves)} seeds within {budget}) "
                    f"| {seconds / wall:.2f} | {clock * seconds / wall:.2f} |")
        print(rows[-1], flush=True)
    if pairs:
        rows += ["", f"Clocks: retraining a derived architecture here took {clock:.2f} x "
                 "its table `train_time_s` (median over the runs; the table was built under "
                 "another load): the last column puts evolution's table seconds on this "
                 "run's clock."]
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default="/work/tables/digits.csv")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--strategies", default=STRATEGIES)
    parser.add_argument("--epochs", type=int, default=30, help="supernet epochs")
    parser.add_argument("--learning-rate", type=float, default=0.01,
                        help="Adam learning rate of the supernet's weights")
    parser.add_argument("--architecture-learning-rate", type=float, default=3e-3)
    parser.add_argument("--strategy-options", type=json.loads, default={},
                        help='JSON {strategy: {option: value}}, e.g. '
                             '\'{"spos": {"learning_rate_decay": null}}\'')
    parser.add_argument("--tune", action="store_true",
                        help="pick --epochs and --learning-rate on a grid first")
    parser.add_argument("--tune-epochs", type=int, nargs="+", default=[10, 30])
    parser.add_argument("--tune-learning-rates", type=float, nargs="+", default=[0.01, 0.03])
    parser.add_argument("--tune-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--evolution-seeds", type=int, default=10)
    parser.add_argument("--evolution-budget", type=int, default=100)
    parser.add_argument("--analyze-only", action="store_true",
                        help="only compare the kept searches (--raw) with the table")
    parser.add_argument("--raw", default=None,
                        help="JSON of the searches' results (kept, resumed)")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    name = os.path.splitext(os.path.basename(args.table))[0]
    output = args.output or os.path.join(report.RESULTS, f"ranking_quality_{name}.md")
    raw_path = args.raw or os.path.splitext(output)[0] + ".json"
    raw = {"tune": [], "runs": []}
    if os.path.exists(raw_path):
        with open(raw_path) as file:
            raw = json.load(file)

    def save():
        with open(raw_path + ".tmp", "w") as file:
            json.dump(raw, file)
        os.replace(raw_path + ".tmp", raw_path)

    if not args.analyze_only:
        run_searches(args, raw, save)
    setting = raw["setting"]
    rows = analysis(args, raw)
    report.write_table(
        output, f"Ranking quality of weight sharing on {name}",
        f"Searches: `{raw.get('command')}`; analysis: `python {' '.join(sys.argv)}`. "
        f"Table {args.table}, truth = its `test_acc_mean`. "
        f"Supernet: {setting['epochs']} epochs, Adam lr {setting['learning_rate']:g}, "
        f"alphas' Adam lr {setting['architecture_learning_rate']:g}; derived architectures "
        f"retrained {setting['retrain_epochs']} epochs (the table's protocol). "
        "'inherited': the SPOS (or ENAS) supernet's validation accuracy of every "
        "architecture, batch norm recalibrated per path; 'alpha': the sum of the "
        "architecture's log-softmax alphas. 'top %': 100 * rank / size of the derived "
        "architecture by the truth. Evolution: regularized evolution on the table, "
        f"{args.evolution_seeds} seeds, its pick the best `val_acc[0]` so far, cost the sum "
        "of the queried architectures' table `train_time_s`.", rows)


if __name__ == "__main__":
    main()
