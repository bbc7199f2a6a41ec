"""Where a trial's time goes: NASTuner and KerasTuner's RandomSearch, by part.

Runs the searches of `tuner_overhead.py` (the same fixed chain architecture
on digits) once to warm up, then once under `cProfile`, and splits each
search's time into parts by the functions that do them (cumulative time, so
the parts are measured where they are called; `fit` excludes the callbacks
listed separately). Profiling slows Python-heavy parts more than TensorFlow
kernels: compare the parts with each other, and the totals with
`tuner_overhead.py`.

With `--table NAME` (a packaged ground-truth table: "mnist1d" or "digits"),
instead times one NASTuner trial of a 3-layer architecture of that table's
space on its dataset, part by part with wall and CPU timers (no profiler),
for each of `--trial-epochs` (default 20 and 4), with grappler's default
and lean settings (`tfnas.graph_options`; `--compare checkpoint`: the
best-epoch checkpoint written at every improving epoch or once; `--compare
fused`: Keras's Adam update or the fused one, `tfnas.optimizers`; `--space
S`: space S's default architecture on the table's data instead): the
build, the training state, the first epoch (the training and validation steps' first batches,
where their graphs are traced, and the rest), the later epochs, the
best-epoch checkpoint, the per-epoch reports to the oracle, the end of
`fit`, and the rest of the trial. Each setting runs `--repeats` times (after
a warm-up trial) and the medians are reported; the columns' trials run in
turn.

Usage: python benchmarks/trial_breakdown.py [--epochs 1] [--trials 3]
       python benchmarks/trial_breakdown.py --table mnist1d [--trial-epochs 20 4]
"""

import cProfile
import os
import pstats
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import report  # noqa: E402
import tuner_overhead  # noqa: E402

# Part -> (file ending, function name) of the functions whose cumulative time
# it is; a part listed under `inside` is subtracted from that one.
PARTS = {
    "garbage collection (gc.collect)": [("~", "<built-in method gc.collect>")],
    "Keras clear_session (without its collection)": [
        ("keras/src/backend/common/global_state.py", "clear_session")],
    "build the model": [("keras_tuner/src/engine/tuner.py", "_build_hypermodel")],
    "model.fit (training, validation)": [
        ("keras/src/backend/tensorflow/trainer.py", "fit")],
    "best-epoch checkpoint": [("tfnas/checkpoints.py", "save_weights_atomically"),
                              ("keras_tuner/src/engine/tuner_utils.py", "_save_model")],
    "TensorBoard callback (in fit)": [
        ("keras/src/callbacks/tensorboard.py", "on_train_batch_end"),
        ("keras/src/callbacks/tensorboard.py", "set_model"),
        ("keras/src/callbacks/tensorboard.py", "on_epoch_end"),
        ("keras/src/callbacks/tensorboard.py", "on_train_end")],
    "search log (TensorBoard, after each trial)": [("tfnas/tensorboard.py", "log_trial")],
    "FLOPs count": [("tfnas/estimation.py", "count_flops")],
    "latency measurement": [("tfnas/estimation.py", "measure_latency")],
    "params count": [("tfnas/estimation.py", "count_params")],
    "oracle: create trial": [
        ("keras_tuner/src/engine/oracle.py", "create_trial"),
        ("tfnas/oracles/hardening.py", "create_trial")],
    "oracle: end trial (its JSON state included)": [
        ("keras_tuner/src/engine/oracle.py", "end_trial"),
        ("tfnas/oracles/hardening.py", "end_trial")],
    "tuner state and trial JSON (save, on_trial_end)": [
        ("keras_tuner/src/engine/base_tuner.py", "on_trial_end"),
        ("tfnas/tuner.py", "on_trial_end")],
}
# part -> parts measured inside it, subtracted from it
INSIDE = {
    "Keras clear_session (without its collection)": ["garbage collection (gc.collect)"],
    "model.fit (training, validation)": [
        "best-epoch checkpoint", "TensorBoard callback (in fit)"],
    "tuner state and trial JSON (save, on_trial_end)": [
        "oracle: end trial (its JSON state included)",
        "search log (TensorBoard, after each trial)"],
}


def _matches(key, wanted):
    filename, _, function = key
    return any((ending == "~" or filename.endswith(ending)) and function == name
               for ending, name in wanted)


def _outermost(stats, wanted):
    """Cumulative seconds of the matching functions not called by one another."""
    total = 0.0
    for key, (_, _, _, cumulative, callers) in stats.stats.items():
        if not _matches(key, wanted):
            continue
        inner = sum(values[3] for caller, values in callers.items()
                    if _matches(caller, wanted))
        total += cumulative - inner
    return total


def _gc_inside_clear_session(stats):
    for key, (_, _, _, _, callers) in stats.stats.items():
        if _matches(key, PARTS["garbage collection (gc.collect)"]):
            return sum(values[3] for caller, values in callers.items()
                       if caller[2] == "clear_session")
    return 0.0


def breakdown(run, trials):
    run()  # warm-up
    profile = cProfile.Profile()
    profile.enable()
    total = run()
    profile.disable()
    stats = pstats.Stats(profile)
    seconds = {part: _outermost(stats, wanted) for part, wanted in PARTS.items()}
    seconds["Keras clear_session (without its collection)"] -= _gc_inside_clear_session(stats)
    for part, inner in INSIDE.items():
        if part != "Keras clear_session (without its collection)":
            seconds[part] -= sum(seconds[p] for p in inner)
    seconds["other (tuner loop, hyperparameters, search begin/end)"] = (
        total - sum(seconds.values()))
    return total, {part: 1000 * s / trials for part, s in seconds.items()}


# Timed parts of one trial: label -> (module, attribute path) of the
# function whose calls are timed (tfnas's own functions only).
TIMED = {
    "build the model": ("tfnas.tuner", "NASTuner._try_build"),
    "training state (before fit)": ("tfnas.prebuild", "build_training_state"),
    "best-epoch checkpoint writes": ("tfnas.checkpoints", "save_weights_atomically"),
    "per-epoch reports to the oracle (trial.json written)": (
        "tfnas.early_stopping", "report_epoch"),
    "whole trial (run_trial)": ("tfnas.tuner", "NASTuner.run_trial"),
    "model.fit": ("keras_tuner", "HyperModel.fit"),
}


def _timed(totals):
    """Wraps the functions of TIMED so that their calls add to `totals`;
    returns a function that unwraps them."""
    import importlib

    undo = []
    for label, (module_name, path) in TIMED.items():
        owner = importlib.import_module(module_name)
        *parents, name = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        original = getattr(owner, name)

        def timed(*args, __original=original, __label=label, **kwargs):
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return __original(*args, **kwargs)
            finally:
                total = totals.setdefault(__label, [0, 0.0, 0.0])
                total[0] += 1
                total[1] += time.perf_counter() - wall
                total[2] += time.process_time() - cpu

        setattr(owner, name, timed)
        undo.append((owner, name, original))
    return lambda: [setattr(owner, name, original) for owner, name, original in undo]


def _timeline_callback(marks):
    import keras

    def mark(name):
        marks.append((name, time.perf_counter(), time.process_time()))

    class Timeline(keras.callbacks.Callback):
        async_safe = True  # keeps Keras's asynchronous batch dispatch, as in a search

        def on_epoch_begin(self, epoch, logs=None):
            mark(("epoch", epoch))

        def on_train_batch_end(self, batch, logs=None):
            if batch == 0:
                mark(("first train batch", None))

        def on_test_begin(self, logs=None):
            mark(("validation", None))

        def on_test_batch_end(self, batch, logs=None):
            if batch == 0:
                mark(("first validation batch", None))

        def on_test_end(self, logs=None):
            mark(("validation end", None))

        def on_train_end(self, logs=None):
            mark(("train end", None))

    return Timeline()


#: --compare -> its two columns: (label, settings of `_one_trial` that differ
#: from the library's: checkpoint once, grappler lean, Adam fused).
COMPARISONS = {
    "checkpoint": (("checkpoint every improvement", {"writes_every_improvement": True}),
                   ("checkpoint once", {})),
    "grappler": (("grappler default", {"lean": False}), ("grappler lean", {})),
    "fused": (("Keras's Adam update", {"fused": False}), ("fused Adam update", {})),
}


def _one_trial(space, architecture, data, epochs, writes_every_improvement=False, lean=True,
               fused=True):
    """Times one NASTuner trial; returns {part: (wall s, cpu s)}."""
    import keras_tuner as kt

    import tfnas
    from tfnas import checkpoints, proxies

    class Fixed(kt.HyperModel):
        def build(self, hp):
            return proxies.build(space, architecture, seed=0)

    saver = checkpoints.atomic_save_best_epoch_class()
    kept = saver._save_model
    if writes_every_improvement:  # KerasTuner's (and tfnas's before stop 24)
        saver._save_model = checkpoints._save_model_atomically
    totals, marks = {}, []
    undo = _timed(totals)
    try:
        with tempfile.TemporaryDirectory(prefix="tfnas-breakdown-") as directory:
            tuner = tfnas.NASTuner(Fixed(), max_trials=1, seed=0, directory=directory,
                                   measure_latency=False, count_flops=False, log_dir=None,
                                   progress=False)
            tuner.lean_graph_optimization = lean
            tuner.fused_optimizer_updates = fused
            tuner.search(data.train, validation_data=data.validation, epochs=epochs,
                         verbose=0, callbacks=[_timeline_callback(marks)])
    finally:
        undo()
        saver._save_model = kept
    parts = {label: (wall, cpu) for label, (_, wall, cpu) in totals.items()}
    parts["checkpoint writes (count)"] = (totals.get("best-epoch checkpoint writes",
                                                     [0])[0], 0.0)
    # marks of epoch 0: ("epoch", 0), first train batch, validation, first
    # validation batch, validation end; the next epoch's start closes it.
    epoch_marks = [i for i, (name, _, _) in enumerate(marks) if name[0] == "epoch"]
    first = marks[epoch_marks[0]:epoch_marks[1]] if len(epoch_marks) > 1 else marks
    names = [name for name, _, _ in first]
    stamp = {name: (wall, cpu) for name, wall, cpu in first}
    next_start = marks[epoch_marks[1]] if len(epoch_marks) > 1 else marks[-1]

    def span(a, b):
        return (b[0] - a[0], b[1] - a[1])

    if ("first train batch", None) in names and ("first validation batch", None) in names:
        parts["epoch 1: first training batch (training step traced)"] = span(
            stamp[("epoch", 0)], stamp[("first train batch", None)])
        parts["epoch 1: other training batches"] = span(
            stamp[("first train batch", None)], stamp[("validation", None)])
        parts["epoch 1: first validation batch (test step traced)"] = span(
            stamp[("validation", None)], stamp[("first validation batch", None)])
        parts["epoch 1: other validation batches, callbacks"] = span(
            stamp[("first validation batch", None)], next_start[1:])
    later = [span(marks[a][1:], marks[b][1:])
             for a, b in zip(epoch_marks[1:], epoch_marks[2:])]
    if later:
        parts["one later epoch (median)"] = (statistics.median(w for w, _ in later),
                                             statistics.median(c for _, c in later))
    end = [m for m in marks if m[0] == ("train end", None)]
    parts["epochs 2+ (all)"] = span(next_start[1:], end[0][1:]) if end else (0.0, 0.0)
    return parts


def table_breakdown(table, trial_epochs, repeats, compare="checkpoint", space_name=None):
    """Rows of the per-part table for `table`'s space (or the space
    `space_name` at its default architecture, on the table's data), each of
    `trial_epochs`."""
    from tfnas import spaces
    from tfnas.bench import tables

    import tfnas

    meta = tables.read_meta(tables.meta_path(tables.PACKAGED_TABLES[table]))
    data = tfnas.load_data(meta["dataset"], batch_size=meta["batch_size"],
                           seed=meta["data_seed"])
    if space_name is None:
        space = spaces.get(meta["space"], data.input_shape, data.num_classes,
                           **meta["space_args"])
        filters = meta["space_args"]["filters"]
        architecture = {"num_layers": 3,
                        "layer_0/op": "conv5x5", "layer_0/filters": filters[-1],
                        "layer_1/op": "conv3x3", "layer_1/filters": filters[0],
                        "layer_2/op": "maxpool3x3", "layer_2/filters": filters[0]}
    else:
        space = spaces.get(space_name, data.input_shape, data.num_classes)
        architecture = {}  # every decision at its default
    _one_trial(space, architecture, data, 2)  # warm-up: imports, first graphs
    columns = {}
    variants = COMPARISONS[compare]
    for epochs in trial_epochs:
        runs = {label: [] for label, _ in variants}
        for _ in range(repeats):  # the variants interleaved
            for label, settings in variants:
                run = _one_trial(space, architecture, data, epochs, **settings)
                runs[label].append(run)
                print(table, epochs, label, run, flush=True)
        for label, variant_runs in runs.items():
            parts = {part for run in variant_runs for part in run}
            columns[(epochs, label)] = {
                part: (statistics.median(run.get(part, (0, 0))[0] for run in variant_runs),
                       statistics.median(run.get(part, (0, 0))[1] for run in variant_runs))
                for part in parts}
    order = ["build the model", "training state (before fit)",
             "epoch 1: first training batch (training step traced)",
             "epoch 1: other training batches",
             "epoch 1: first validation batch (test step traced)",
             "epoch 1: other validation batches, callbacks",
             "epochs 2+ (all)", "one later epoch (median)",
             "best-epoch checkpoint writes", "checkpoint writes (count)",
             "per-epoch reports to the oracle (trial.json written)", "model.fit",
             "whole trial (run_trial)"]
    keys = list(columns)
    header = " | ".join(f"{epochs} epochs, {label}" for epochs, label in keys)
    rows = [f"| part (ms wall / ms CPU, median of {repeats}) | {header} |",
            "|---|" + "---:|" * len(keys)]
    for part in order:
        cells = []
        for key in keys:
            wall, cpu = columns[key].get(part, (0.0, 0.0))
            cells.append(f"{wall:.0f}" if part.endswith("(count)")
                         else f"{1000 * wall:.0f} / {1000 * cpu:.0f}")
        rows.append(f"| {part} | " + " | ".join(cells) + " |")
    return meta, architecture, rows


def main_table(args):
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    meta, architecture, rows = table_breakdown(args.table, args.trial_epochs, args.repeats,
                                               args.compare, args.space)
    load = os.getloadavg()
    output = args.output
    if output.endswith("trial_breakdown.md"):
        suffix = "" if args.compare == "checkpoint" else f"_{args.compare}"
        suffix += f"_{args.space}" if args.space else ""
        output = output.replace("trial_breakdown.md",
                                f"trial_breakdown_{args.table}{suffix}.md")
    epochs = " ".join(str(e) for e in args.trial_epochs)
    report.write_table(
        output, "One trial's time, part by part, on the "
        + (f"{args.table} table's space" if args.space is None else
           f"{args.space} space ({args.table} data)"),
        f"`python benchmarks/trial_breakdown.py --table {args.table} --trial-epochs "
        f"{epochs} --repeats {args.repeats} --compare {args.compare}"
        + (f" --space {args.space}" if args.space else "")
        + "`: one NASTuner trial "
        "(no FLOPs, latency or TensorBoard; evolution's oracle, no stopping rule) of "
        + (f"`{architecture}` in the {meta['space']} space of "
           f"`tfnas/bench/data/{args.table}.csv`" if args.space is None else
           f"the {args.space} space's default architecture")
        + f" on {meta['dataset']} "
        f"(batch {meta['batch_size']}), timed with wall and CPU timers (this process, all "
        "threads); the columns' trials interleaved. "
        "Parts of epoch 1 end at the next part's start; `model.fit` includes every "
        "epoch, the checkpoint and the reports; the whole trial also the build, the "
        "training state and the trial's records. "
        f"This benchmark took {time.process_time() - start_cpu:.0f} CPU s and "
        f"{time.perf_counter() - start_wall:.0f} s wall; load average at its end "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min).", rows)


def main():
    parser, data, space = tuner_overhead.search_setting(__doc__.splitlines()[0],
                                                        "trial_breakdown.md")
    parser.add_argument("--table", choices=["mnist1d", "digits"], default=None)
    parser.add_argument("--trial-epochs", type=int, nargs="+", default=[20, 4])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compare", choices=sorted(COMPARISONS), default="grappler",
                        help="the columns: the best-epoch checkpoint written at every "
                        "improvement or once, grappler's default or lean settings, or "
                        "Keras's Adam update or the fused one")
    parser.add_argument("--space", default=None,
                        help="with --table: this space (its default architecture) on the "
                        "table's data instead of the table's space")
    args = parser.parse_args()
    if args.table is not None:
        return main_table(args)
    n = args.trials
    totals, columns = {}, {}
    for name, run in {
        "KerasTuner RandomSearch": lambda: tuner_overhead.keras_tuner_search(
            space, data, args.epochs, n),
        "NASTuner": lambda: tuner_overhead.tuner_search(space, data, args.epochs, n, True),
    }.items():
        totals[name], columns[name] = breakdown(run, n)
        print(name, f"{totals[name]:.2f}s", flush=True)
    names = list(columns)
    rows = ["| part (ms per trial, profiled) | " + " | ".join(names) + " |",
            "|---|" + "---|" * len(names)]
    for part in columns[names[-1]]:
        rows.append(f"| {part} | " + " | ".join(f"{columns[n][part]:.0f}" for n in names)
                    + " |")
    per_trial = [f"{1000 * totals[n] / args.trials:.0f}" for n in names]
    rows.append("| **total** | " + " | ".join(per_trial) + " |")
    report.write_table(
        args.output, "Where a trial's time goes",
        f"`python benchmarks/trial_breakdown.py --epochs {args.epochs} --trials {n}`; "
        f"the searches of tuner_overhead.py under cProfile; load average "
        f"{os.getloadavg()[0]:.2f} at the end.", rows)


if __name__ == "__main__":
    main()
