"""What each fault does to a search: real processes on 127.0.0.1.

Every scenario runs small `tfnas search` processes (MLP space, digits, 1-2
epochs, a handful of trials), injects one fault and judges the project it
leaves on disk:

- worker killed for good: `--chief` and external workers w1, w2; w1 is
  killed mid-trial and never restarted;
- launcher worker out of restarts: `--workers 2 --max-restarts 0`, worker0
  killed mid-trial;
- chief killed: `--workers 2`, the chief killed (the launcher restarts it);
- two searches on one project: two identical local searches at once
  (trials run twice: trials both trained, one overwriting the other);
- mismatched worker: a worker with other `--epochs` than its chief;
- corrupt trial.json / oracle.json / tuner0.json: a finished local search
  whose file is overwritten with garbage, then resumed with more trials;
- disk full: a search whose project lives on a 2 MB tmpfs (root only;
  skipped with a note otherwise or when mounting is not allowed).

Columns: the outcome (exit codes, the first error line), trials lost
(trials finished before the fault whose result is gone or changed after
it, the corrupted file itself aside, and trials a search that reports
success never finished), trials run twice (trials whose result was
reported more than once, architectures completed twice, trials trained by
two searches), and the time to recover (from the fault to the lease's
re-issue, the next finished trial, the refusal or the end).

Usage: python benchmarks/faults.py [--output benchmarks/results/faults.md]
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import report
from tfnas import distributed, project_lock

SEARCH = [sys.executable, "-m", "tfnas", "search", "--space", "mlp", "--space-arg",
          "units=[16,32,64]", "--dataset", "digits", "--strategy", "random",
          "--project-name", "p"]
TIMEOUT = 300


class Run:
    """A `tfnas search` process; its output lines with the time they came."""

    def __init__(self, directory, *arguments):
        environment = {k: v for k, v in os.environ.items()
                       if not k.startswith(("KERASTUNER_", "TFNAS_"))}
        environment.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [*SEARCH, "--directory", directory, *arguments], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, env=environment)
        self.lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def wait(self, timeout=TIMEOUT):
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            code = "hung (killed after %d s)" % timeout
        self._reader.join(10)
        return code

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def first_time(self, text, after=0.0):
        return next((t for t, line in self.lines if text in line and t >= after), None)

    def error(self):
        return next((line for _, line in self.lines if line.startswith("tfnas: error:")), "")


def _state(project_dir):
    try:
        with open(os.path.join(project_dir, "oracle.json")) as file:
            return json.load(file)
    except (OSError, ValueError):
        return None


def _wait_for(condition, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    return None


def _completed(project_dir):
    """{trial id: (values, score)} of the completed trials on disk; an
    unreadable trial.json counts as not completed."""
    results = {}
    for name in sorted(os.listdir(project_dir)) if os.path.isdir(project_dir) else []:
        try:
            with open(os.path.join(project_dir, name, "trial.json")) as file:
                trial = json.load(file)
        except (OSError, ValueError):
            continue
        if trial.get("status") == "COMPLETED":
            values = json.dumps(trial["hyperparameters"]["values"], sort_keys=True)
            results[trial["trial_id"]] = (values, trial.get("score"))
    return results


def _judge(project_dir, max_trials, before=None, finished=True, spared=()):
    """(trials lost, trials run twice) of a project after a fault.

    Lost: trials finished before the fault whose result is gone or changed
    (but for `spared`, the file the scenario corrupted itself), and, when
    the search says it `finished`, the trials it never completed. Twice:
    trials whose result was reported more than once, and architectures
    completed twice.
    """
    after = _completed(project_dir)
    before = before or {}
    lost = sum(1 for i, result in before.items() if i not in spared and after.get(i) != result)
    if finished:
        lost += max(0, max_trials - len(after) - lost)
    state = _state(project_dir) or {}
    twice = sum(1 for count in state.get("run_times", {}).values() if count > 1)
    twice += len(after) - len({values for values, _ in after.values()})
    return lost, twice


def _seconds(start, end):
    return "-" if start is None or end is None else f"{end - start:.1f} s"


def worker_killed_for_good(directory):
    address = f"127.0.0.1:{distributed.free_port()}"
    common = ["--max-trials", "4", "--epochs", "3", "--address", address, "--lease", "10"]
    chief = Run(directory, *common, "--chief")
    workers = {name: Run(directory, *common, "--worker", name, "--no-progress")
               for name in ("w1", "w2")}
    project_dir = os.path.join(directory, "p")
    try:
        trial = _wait_for(lambda: ((_state(project_dir) or {}).get("ongoing_trials") or {})
                          .get("w1"))
        killed = time.monotonic()
        workers["w1"].kill()
        code = chief.wait()
        workers["w2"].wait(30)
    finally:
        for run in [chief, *workers.values()]:
            run.kill()
    lost, twice = _judge(project_dir, 4)
    state = _state(project_dir) or {}
    recovered = chief.first_time("worker w1 has been silent", killed)
    return (f"chief exit {code}; trial {trial} re-issued to "
            f"{(state.get('runners', {}).get(trial) or ['?'])[-1]}", lost, twice,
            _seconds(killed, recovered) + " (lease 10 s)")


def launcher_worker_out_of_restarts(directory):
    run = Run(directory, "--max-trials", "4", "--epochs", "3", "--workers", "2",
              "--max-restarts", "0", "--lease", "10")
    project_dir = os.path.join(directory, "p")
    try:
        _wait_for(lambda: ((_state(project_dir) or {}).get("ongoing_trials") or {})
                  .get("worker0"))
        pid = next((int(line.split("(pid ")[1].rstrip(")")) for _, line in run.lines
                    if "started worker0 (pid" in line), None)
        killed = time.monotonic()
        if pid:
            os.kill(pid, signal.SIGKILL)
        code = run.wait()
    finally:
        run.kill()
    lost, twice = _judge(project_dir, 4)
    recovered = run.first_time("worker worker0 has been silent", killed)
    return (f"launcher exit {code}", lost, twice, _seconds(killed, recovered) + " (lease 10 s)")


def chief_killed(directory):
    run = Run(directory, "--max-trials", "6", "--epochs", "2", "--workers", "2")
    project_dir = os.path.join(directory, "p")
    try:
        _wait_for(lambda: len((_state(project_dir) or {}).get("end_order", [])) >= 2)
        before = _completed(project_dir)
        pid = [int(line.split("(pid ")[1].rstrip(")")) for _, line in run.lines
               if "started chief (pid" in line][-1]
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        code = run.wait()
    finally:
        run.kill()
    lost, twice = _judge(project_dir, 6, before)
    recovered = run.first_time("[trial ", run.first_time("restarting it", killed) or killed)
    return f"launcher exit {code}", lost, twice, _seconds(killed, recovered)


def two_searches_on_one_project(directory):
    arguments = ["--max-trials", "3", "--epochs", "1"]
    first = Run(directory, *arguments)
    second = Run(directory, *arguments)
    start = time.monotonic()
    codes = [first.wait(), second.wait()]
    refused = [run for run in (first, second) if run.error()]
    lost, twice = _judge(os.path.join(directory, "p"), 3)

    def trained(run):
        return {line.split("]")[0] for _, line in run.lines if line.startswith("[trial ")}

    twice += len(trained(first) & trained(second))  # both trained it, one overwrote
    outcome = f"exits {codes[0]} and {codes[1]}"
    if refused:
        outcome += f"; refused: {refused[0].error()[:120]}"
    refusal = refused[0].lines[-1][0] if refused else None
    return outcome, lost, twice, _seconds(start, refusal) + (" to refuse" if refused else "")


def mismatched_worker(directory):
    address = f"127.0.0.1:{distributed.free_port()}"
    chief = Run(directory, "--max-trials", "2", "--epochs", "1", "--address", address,
                "--chief")
    try:
        start = time.monotonic()
        worker = Run(directory, "--max-trials", "2", "--epochs", "2", "--address", address,
                     "--worker", "odd", "--no-progress")
        code = worker.wait(120)
        refused_at = worker.lines[-1][0] if worker.lines else None
        good = Run(directory, "--max-trials", "2", "--epochs", "1", "--address", address,
                   "--worker", "good", "--no-progress")
        good.wait()
        chief_code = chief.wait()
    finally:
        chief.kill()
    lost, twice = _judge(os.path.join(directory, "p"), 2)
    message = worker.error()[:140] or "accepted"
    return (f"worker exit {code} ({message}); chief exit {chief_code}", lost, twice,
            _seconds(start, refused_at) + " to refuse (incl. start-up)")


def corrupt_file(name):
    def scenario(directory):
        project_dir = os.path.join(directory, "p")
        code = Run(directory, "--max-trials", "3", "--epochs", "1").wait()
        if code != 0:
            return f"the first search failed (exit {code})", "-", "-", "-"
        before = _completed(project_dir)
        path = os.path.join(project_dir, "trial_1", "trial.json") if name == "trial.json" \
            else os.path.join(project_dir, name)
        with open(path, "w") as file:
            file.write("{ not json")
        start = time.monotonic()
        resumed = Run(directory, "--max-trials", "4", "--epochs", "1")
        code = resumed.wait()
        lost, twice = _judge(project_dir, 4, before, finished=code == 0,
                             spared={"1"} if name == "trial.json" else ())
        message = resumed.error() or next(
            (line for _, line in reversed(resumed.lines) if "Error" in line), "")
        end = resumed.lines[-1][0] if resumed.lines else None
        return (f"resume exit {code}" + (f": {message[:140]}" if message else ""), lost, twice,
                _seconds(start, end) + " to end")
    return scenario


def disk_full(directory):
    if os.geteuid() != 0:
        return "skipped: needs root to mount a small tmpfs", "-", "-", "-"
    mount = os.path.join(directory, "small")
    os.makedirs(mount)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mount],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        return (f"skipped: mount refused ({mounted.stderr.strip()[:80]})", "-", "-", "-")
    try:
        start = time.monotonic()
        run = Run(mount, "--max-trials", "20", "--epochs", "1")
        code = run.wait()
        project_dir = os.path.join(mount, "p")
        leftovers = [os.path.relpath(os.path.join(root, name), project_dir)
                     for root, _, names in os.walk(project_dir) for name in names
                     if name.endswith(".tmp") or (
                         name.endswith(".json") and name != project_lock.LOCK_FILE  # empty: free
                         and os.path.getsize(os.path.join(root, name)) == 0)]
        completed = _completed(project_dir)
        outcome = (f"exit {code}: {(run.error() or 'no tfnas error line')[:120]}; "
                   f"{len(completed)} trials completed; temporary or empty files left: "
                   f"{len(leftovers)} {leftovers}")
        return outcome, "-", "-", _seconds(start, run.lines[-1][0] if run.lines else None)
    finally:
        subprocess.run(["umount", mount], capture_output=True)


SCENARIOS = [
    ("worker killed for good", worker_killed_for_good),
    ("launcher worker out of restarts", launcher_worker_out_of_restarts),
    ("chief killed", chief_killed),
    ("two searches on one project", two_searches_on_one_project),
    ("mismatched worker", mismatched_worker),
    ("corrupt trial.json", corrupt_file("trial.json")),
    ("corrupt oracle.json", corrupt_file("oracle.json")),
    ("corrupt tuner0.json", corrupt_file("tuner0.json")),
    ("disk full", disk_full),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=os.path.join(report.RESULTS, "faults.md"))
    parser.add_argument("--only", nargs="*", default=None, help="scenario names to run")
    args = parser.parse_args()
    rows = ["| scenario | outcome | trials lost | trials run twice | time to recover |",
            "|---|---|---|---|---|"]
    for name, scenario in SCENARIOS:
        if args.only and name not in args.only:
            continue
        directory = tempfile.mkdtemp(prefix="tfnas-faults-")
        started = time.monotonic()
        try:
            outcome, lost, twice, recover = scenario(directory)
        except Exception as error:  # one broken scenario must not hide the others
            outcome, lost, twice, recover = f"scenario error: {error!r}"[:200], "-", "-", "-"
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        outcome = outcome.replace("|", "/")
        rows.append(f"| {name} | {outcome} | {lost} | {twice} | {recover} |")
        print(f"{name}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    report.write_table(
        args.output, "Faults", "Each scenario of `benchmarks/faults.py` with real processes "
        "on 127.0.0.1 (MLP space, digits, 1-3 epochs per trial).", rows)


if __name__ == "__main__":
    main()
