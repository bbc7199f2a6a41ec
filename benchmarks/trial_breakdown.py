"""Where a trial's time goes: NASTuner and KerasTuner's RandomSearch, by part.

Runs the searches of `tuner_overhead.py` (the same fixed chain architecture
on digits) once to warm up, then once under `cProfile`, and splits each
search's time into parts by the functions that do them (cumulative time, so
the parts are measured where they are called; `fit` excludes the callbacks
listed separately). Profiling slows Python-heavy parts more than TensorFlow
kernels: compare the parts with each other, and the totals with
`tuner_overhead.py`.

Usage: python benchmarks/trial_breakdown.py [--epochs 1] [--trials 3]
"""

import cProfile
import os
import pstats

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


def main():
    parser, data, space = tuner_overhead.search_setting(__doc__.splitlines()[0],
                                                        "trial_breakdown.md")
    args = parser.parse_args()
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
