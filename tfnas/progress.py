"""One-line, human-readable descriptions of trials."""

from tfnas import errors, trials
from tfnas.architecture import Architecture

COMPLETED = trials.COMPLETED


def failure_reason(trial):
    """Why a trial failed: the root cause in its error message ("Error: cause")."""
    return errors.root_cause(trial.message)


def _metric(trial, name):
    if trial.metrics.exists(name):
        return trial.metrics.get_last_value(name)
    return None


def _human(number):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(number) >= scale:
            return f"{number / scale:.1f}{unit}"
    return f"{number:.0f}"


def describe(trial, describer=None, max_length=120):
    """A one-line architecture summary: the space's `describe`, if it has one."""
    architecture = Architecture.from_trial(trial)
    text = None
    if describer is not None:
        try:
            text = describer(architecture.values)
        except (KeyError, ValueError, TypeError):
            text = None  # values from another space version: fall back
    text = text or architecture.summary()
    return text if len(text) <= max_length else text[: max_length - 3] + "..."


def trial_line(trial, objective_name, describer=None):
    """A line such as `[trial 03] val_accuracy=0.9611 params=12.3k ... | arch`."""
    architecture = describe(trial, describer)
    if trial.status != COMPLETED:
        return f"[trial {trial.trial_id}] {trial.status}: {failure_reason(trial)} | {architecture}"
    parts = [f"{objective_name}={trial.score:.4f}" if trial.score is not None else ""]
    if trials.is_stopped_early(trial):
        parts.append(f"(stopped early at epoch {trials.stopped_at(trial)})")
    for name, label, fmt in (
        ("params", "params", _human),
        ("flops", "flops", _human),
        ("latency_ms", "latency", lambda v: f"{v:.2f}ms"),
        ("train_time_s", "time", lambda v: f"{v:.1f}s"),
    ):
        value = _metric(trial, name)
        if value is not None:
            parts.append(f"{label}={fmt(value)}")
    return f"[trial {trial.trial_id}] {' '.join(p for p in parts if p)} | {architecture}"
