"""Reports of a search: a table of trials, the best architecture, PNG plots.

Works on a `NASTuner` or on a project directory (`directory/project_name`),
so a finished search can be inspected without the code that ran it:

    records = tfnas.report.trial_records("tfnas_projects/chain-evolution-digits")
    print(tfnas.report.render(records, "val_accuracy", "max"))
"""

import csv
import io
import json
import os

from tfnas import filenames, plots, progress, project, trials
from tfnas.architecture import Architecture

FORMATS = ("markdown", "csv", "json")
COLUMNS = ("trial_id", "status", "score", "params", "flops", "latency_ms",
           "train_time_s", "epochs", "stopped_at_epoch", "reason", "summary")
COMPLETED = trials.COMPLETED


class Project:
    """What a report needs of a search: its trials, objective and space.

    Args:
        source: A `tfnas.NASTuner`, or the path of a project directory.
    """

    def __init__(self, source):
        if isinstance(source, (str, os.PathLike)):
            self.project_dir = os.fspath(source)
            record = project.read(self.project_dir)
            self.objective = record["objective"]["name"]
            self.direction = record["objective"]["direction"]
            source = os.path.join(self.project_dir, project.PROJECT_FILE)
            self.space = (project.build_space(record, source=source)
                          if (record.get("space") or {}).get("name") else None)
            self.trials = project.load_trials(self.project_dir)
        else:
            oracle = source.oracle
            self.project_dir = source.project_dir
            self.objective = oracle.objective.name
            self.direction = oracle.objective.direction
            self.space = source.hypermodel
            self.trials = trials.in_end_order(oracle)
        from tfnas import final_training

        self.final = final_training.read_record(self.project_dir)  # None before `tfnas train`


def _metric(trial, name):
    return trial.metrics.get_last_value(name) if trial.metrics.exists(name) else None


def trial_records(source):
    """One plain dict per trial, finished trials in the order they ended.

    Args:
        source: A `tfnas.NASTuner`, a project directory path, or a `Project`.

    Returns:
        A list of dicts with the keys of `COLUMNS` plus "architecture" (the
        decision values). "score" is the objective; "reason" is why a trial
        failed (None for completed trials).
    """
    search = source if isinstance(source, Project) else Project(source)
    describe = getattr(search.space, "describe", None)
    records = []
    for trial in search.trials:
        completed = trial.status == COMPLETED
        record = {
            "trial_id": trial.trial_id,
            "status": trial.status,
            "score": trial.score if completed else None,
            "reason": None if completed else progress.failure_reason(trial),
            "summary": progress.describe(trial, describe, max_length=10_000),
            "architecture": Architecture.from_trial(trial).values,
        }
        for name in ("params", "flops", "latency_ms", "train_time_s", "epochs",
                     trials.STOPPED_AT):
            record[name] = _metric(trial, name)
        records.append(record)
    return records


def ranked(records, direction):
    """Completed records best first, then the others in their given order."""
    done = trials.ranked([r for r in records if r["score"] is not None], direction,
                         score=lambda r: r["score"])
    return done + [r for r in records if r["score"] is None]


def trials_dataframe(source):
    """The trial records as a pandas DataFrame (pandas must be installed)."""
    try:
        import pandas
    except ImportError as error:
        raise ImportError(
            "trials_dataframe needs pandas, which tfnas does not install: "
            "`pip install pandas`, or use `trial_records`, which returns dicts."
        ) from error
    return pandas.DataFrame(trial_records(source))


CELL_FORMATS = {"score": "{:.4f}", "params": "{:,.0f}", "flops": "{:,.0f}",
                "latency_ms": "{:.3f}", "train_time_s": "{:.1f}", "epochs": "{:.0f}",
                trials.STOPPED_AT: "{:.0f}"}


def _cell(column, value):
    if value is None:
        return ""
    if column in CELL_FORMATS:
        return CELL_FORMATS[column].format(value)
    return str(value).replace("|", "\\|")


def _stopped_note(rows):
    stopped = sum(r.get(trials.STOPPED_AT) is not None for r in rows)
    return f" ({stopped} stopped early: partial scores)" if stopped else ""


def render(records, objective, direction, format="markdown", final=None):
    """The records as text: a markdown report, CSV, or JSON.

    The markdown report has a table of trials sorted by the objective, then
    the best architecture in full, then the final training (`final`, the
    record of `tfnas.final_training`) when there is one; JSON has it as
    "final_training".
    """
    if format not in FORMATS:
        raise ValueError(
            f"Received an invalid value for `format`, expected one of {FORMATS}. "
            f"Received: format={format!r}")
    rows = ranked(records, direction)
    if format == "json":
        document = {"objective": objective, "direction": direction, "trials": rows}
        if final is not None:
            document["final_training"] = final
        return json.dumps(document, indent=2)
    if format == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=[*COLUMNS, "architecture"],
                                lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "architecture": json.dumps(row["architecture"],
                                                               sort_keys=True)})
        return buffer.getvalue()
    header = [objective if c == "score" else c for c in COLUMNS]
    lines = [f"# Search report ({objective}, {direction})", "",
             f"{sum(r['score'] is not None for r in rows)} completed"
             f"{_stopped_note(rows)}, "
             f"{sum(r['score'] is None for r in rows)} failed or unfinished.", "",
             "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c, row[c]) for c in COLUMNS) + " |" for row in rows]
    if rows and rows[0]["score"] is not None:
        best = rows[0]
        lines += ["", f"## Best architecture: trial {best['trial_id']}, "
                      f"{objective} = {best['score']:.4f}", "", best["summary"], "",
                  "```json", json.dumps(best["architecture"], indent=2, sort_keys=True),
                  "```"]
    if final is not None:
        from tfnas import final_training

        lines += final_training.summary_lines(final)
    return "\n".join(lines) + "\n"


def write_plots(source, output_dir):
    """Writes the PNG plots of a search and returns their paths.

    - `best_so_far.png`: each trial's objective and the best so far;
    - `objective_vs_<cost>.png` for params, FLOPs and latency (when
      measured), with the Pareto front marked (the objective's name made a
      safe file name: letters, digits, `.`, `_`, `-`);
    - `best_architecture.png`: the best architecture's diagram, when the
      space can draw one.
    """
    search = source if isinstance(source, Project) else Project(source)
    records = trial_records(search)
    os.makedirs(output_dir, exist_ok=True)
    written = {}

    def save(name, figure):
        name = filenames.safe_file_name(name)  # an objective's name is data
        path = filenames.inside(output_dir, f"{name}.png")
        with open(path, "wb") as file:
            file.write(plots.to_png(figure))
        written[name] = path

    save("best_so_far", plots.best_so_far([r["score"] for r in records],
                                          search.objective, search.direction))
    for cost in ("params", "flops", "latency_ms"):
        points = [r for r in records if r["score"] is not None and r[cost] is not None]
        if points:
            save(f"{search.objective}_vs_{cost}", plots.tradeoff(
                [r[cost] for r in points], [r["score"] for r in points], cost,
                search.objective, search.direction, labels=[r["trial_id"] for r in points]))
    best = ranked(records, search.direction)[:1]
    if best and best[0]["score"] is not None and hasattr(search.space, "diagram"):
        title = f"trial {best[0]['trial_id']}: {search.objective}={best[0]['score']:.4f}"
        save("best_architecture", plots.architecture_diagram(
            search.space.diagram(best[0]["architecture"]), title))
    return written
