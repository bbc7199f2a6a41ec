"""Distributed search with real processes on 127.0.0.1.

A chief and workers are started as separate Python processes (through
`tfnas search --workers N`, or a script reading KerasTuner's environment
variables), killed with SIGKILL where a test says so, and judged by the
trial records they leave on disk.
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import keras_tuner as kt
import numpy as np
import pytest

from tfnas import bench, distributed, oracles, project
from tfnas.architecture import Architecture
from tests.waiting import oracle_state, wait_for

pytestmark = pytest.mark.slow
SCRIPTS = os.path.join(os.path.dirname(__file__), "distributed_scripts.py")
TIMEOUT = 240


def _environment(**extra):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("KERASTUNER_")}
    environment.pop("TF_CONFIG", None)
    environment.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1", **extra)
    return environment


class Launch:
    """`tfnas search --workers N ...` in the background, its output collected."""

    def __init__(self, directory, *arguments):
        command = [sys.executable, "-m", "tfnas", "search", "--space", "mlp",
                   "--space-arg", "units=[16,32,64]", "--dataset", "digits",
                   "--directory", str(directory), "--project-name", "p", *arguments]
        self.project_dir = os.path.join(str(directory), "p")
        self.lines = []
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True,
                                        env=_environment())
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self):
        return "\n".join(self.lines)

    def pid_of(self, name):
        """The pid of the latest start of `name` ("chief", "worker0", ...)."""
        pids = [int(m.group(1)) for line in self.lines
                if (m := re.search(rf"started {name} \(pid (\d+)\)", line))]
        return pids[-1] if pids else None

    def wait(self):
        try:
            code = self.process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError("the search did not end in time:\n" + self.output())
        self._reader.join(10)
        return code


def _wait_for(condition, what, launch=None, timeout=TIMEOUT):
    return wait_for(condition, what, timeout, details=launch.output if launch else None)


def _check_finished(project_dir, max_trials, output):
    """Exactly `max_trials` distinct completed architectures, each ended once,
    and the chief's printed best equal to the best on disk."""
    trials = project.load_trials(project_dir)
    completed = [t for t in trials if t.status == "COMPLETED"]
    assert len(trials) == len(completed) == max_trials, output
    hashes = {json.dumps(t.hyperparameters.values, sort_keys=True) for t in completed}
    assert len(hashes) == max_trials, "an architecture was evaluated twice"
    state = oracle_state(project_dir)
    assert sorted(state["end_order"]) == sorted(t.trial_id for t in trials)
    assert state["ongoing_trials"] == {} and state["retry_queue"] == []
    # Persisted state is JSON or Keras weights: nothing to unpickle or execute
    # (TensorBoard logs and the exported best model aside, which a resumed
    # search never reads).
    for root, _, names in os.walk(project_dir):
        top = os.path.relpath(root, project_dir).split(os.sep)[0]
        if top not in ("logs", "best"):
            assert all(name.endswith((".json", ".weights.h5")) for name in names), (
                root, names)
    best_score = max(t.score for t in completed)
    match = re.search(r"Best architecture \(trial (\d+), val_accuracy=([\d.]+)\)", output)
    assert match, output
    scores = {t.trial_id: t.score for t in completed}
    assert scores[match.group(1)] == best_score  # ties are common: any of the best
    assert float(match.group(2)) == pytest.approx(best_score, abs=1e-4)
    return state, completed


def test_two_workers_run_an_evolution_search_of_distinct_architectures(tmp_path):
    launch = Launch(tmp_path, "--strategy", "evolution", "--max-trials", "8",
                    "--epochs", "1", "--workers", "2")
    assert launch.wait() == 0, launch.output()
    state, _ = _check_finished(launch.project_dir, 8, launch.output())
    runners = {name for names in state["runners"].values() for name in names}
    assert runners == {"worker0", "worker1"}, "the trials were not spread"
    # The chief reported every trial once; the workers printed no lines.
    assert len(re.findall(r"^\[trial \d+\]", launch.output(), re.M)) == 8
    assert "restarting" not in launch.output(), "a process died"


def test_a_worker_killed_mid_trial_is_restarted_and_its_trial_finished(tmp_path):
    launch = Launch(tmp_path, "--strategy", "random", "--max-trials", "4",
                    "--epochs", "12", "--workers", "2")

    def worker0_trial():
        state = oracle_state(launch.project_dir)
        return state and state["ongoing_trials"].get("worker0")

    trial_id = _wait_for(worker0_trial, "worker0 to start a trial", launch)
    # Inside its first epochs: the smallest candidates train 12 epochs in
    # about a second on a loaded 2-core machine (1 s after the start, a CI
    # run once found worker0 on its next trial).
    time.sleep(0.3)
    assert worker0_trial() == trial_id
    os.kill(launch.pid_of("worker0"), signal.SIGKILL)
    assert launch.wait() == 0, launch.output()
    assert "worker0 killed by SIGKILL; restarting it (1 of 3)" in launch.output()
    assert launch.output().count("restarting") == 1, "another process died"
    state, completed = _check_finished(launch.project_dir, 4, launch.output())
    assert trial_id in {t.trial_id for t in completed}
    # The restarted worker got its own trial back under its name.
    assert state["runners"][trial_id] == ["worker0"]
    assert state["run_times"][trial_id] == 1


def test_a_killed_chief_is_restarted_and_no_trial_is_lost_or_repeated(tmp_path):
    # --overwrite applies to the first start only: the restarted chief resumes.
    launch = Launch(tmp_path, "--strategy", "controller", "--max-trials", "6",
                    "--epochs", "2", "--workers", "2", "--overwrite")
    _wait_for(lambda: len((oracle_state(launch.project_dir) or {"end_order": []})
                          ["end_order"]) >= 3, "three finished trials", launch)
    os.kill(launch.pid_of("chief"), signal.SIGKILL)
    finished_before = {t.trial_id: (t.hyperparameters.values, t.score)
                       for t in project.load_trials(launch.project_dir)
                       if t.status == "COMPLETED"}
    assert launch.wait() == 0, launch.output()
    assert "chief killed by SIGKILL; restarting it (1 of 3)" in launch.output()
    state, completed = _check_finished(launch.project_dir, 6, launch.output())
    after = {t.trial_id: (t.hyperparameters.values, t.score) for t in completed}
    assert {i: after[i] for i in finished_before} == finished_before
    printed = re.findall(r"^\[trial (\d+)\]", launch.output(), re.M)
    assert len(printed) == len(set(printed)), "a trial was run again"
    assert all(count == 1 for count in state["run_times"].values()), state["run_times"]
    # The controller learned from every trial exactly once, across the restart.
    controller = state["controller"]
    assert sorted(controller["learned"]) == sorted(t.trial_id for t in completed)
    assert os.path.exists(os.path.join(launch.project_dir, controller["weights_file"]))


def _start_chief_and_workers(tmp_path, mode, worker_environments):
    port = distributed.free_port()
    chief = subprocess.Popen(
        [sys.executable, SCRIPTS, mode, str(tmp_path)], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
        env=_environment(**distributed.environment("chief", f"127.0.0.1:{port}")))
    workers = [subprocess.Popen(
        [sys.executable, SCRIPTS, mode, str(tmp_path)], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
        env=_environment(KERASTUNER_ORACLE_IP="127.0.0.1", KERASTUNER_ORACLE_PORT=str(port),
                         **extra))
        for extra in worker_environments]
    processes = [*workers, chief]  # the chief ends only after its workers
    outputs = []
    try:
        for process in processes:
            try:
                outputs.append(process.communicate(timeout=TIMEOUT)[0])
            except subprocess.TimeoutExpired:
                process.kill()
                outputs.append(process.communicate()[0] + "\n(timed out)")
            assert process.returncode == 0, "\n\n".join(outputs)
    finally:
        for process in processes:
            process.kill()
            process.wait()
    return [outputs[-1], *outputs[:-1]]


def test_failures_on_a_worker_reach_the_chief_with_their_reasons(tmp_path):
    chief_output, _ = _start_chief_and_workers(tmp_path, "faults",
                                               [{"KERASTUNER_TUNER_ID": "w0"}])
    trials = {t.hyperparameters.values["fault"]: t
              for t in project.load_trials(os.path.join(tmp_path, "faults"))}
    assert set(trials) == {"none", "raise", "nan", "oom"}, chief_output
    assert trials["none"].status == "COMPLETED"
    reasons = {"raise": "deliberate failure of this candidate",
               "nan": "training diverged",
               "oom": "out of memory while building"}
    for fault, reason in reasons.items():
        assert trials[fault].status == "FAILED"
        assert reason in (trials[fault].message or ""), (fault, trials[fault].message)
        assert distributed.FAILURE_MESSAGE not in trials[fault].hyperparameters.values
    assert chief_output.count("FAILED") == 3, chief_output


def test_one_trial_trains_across_two_processes_with_multi_worker_mirrored(tmp_path):
    ports = [distributed.free_port() for _ in range(2)]
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    worker_environments = [
        {"KERASTUNER_TUNER_ID": "cluster0",
         "TF_CONFIG": json.dumps({"cluster": cluster,
                                  "task": {"type": "worker", "index": index}})}
        for index in range(2)]
    chief_output, *worker_outputs = _start_chief_and_workers(tmp_path, "multiworker",
                                                             worker_environments)
    ran = [re.findall(r"^RAN (\d+)", output, re.M) for output in worker_outputs]
    # Both processes trained the same three trials, in the same order.
    assert ran[0] == ran[1] == ["0", "1", "2"], worker_outputs
    trials = project.load_trials(os.path.join(tmp_path, "multiworker"))
    assert [t.status for t in trials] == ["COMPLETED"] * 3, chief_output
    state = oracle_state(os.path.join(tmp_path, "multiworker"))
    assert state["run_times"] == {"0": 1, "1": 1, "2": 1}


@pytest.mark.parametrize("name, arguments", [
    ("evolution", {}),
    ("evolution", {"pareto_objectives": [("signal", "max"), ("params", "min")]}),
    ("predictor", {}),
    ("local", {}),
    ("controller", {}),
    ("sha", {}),
    ("hyperband", {"max_epochs": 9}),
])
def test_each_oracle_serves_three_concurrent_workers_over_grpc(name, arguments, tmp_path,
                                                               monkeypatch):
    """The chief's real gRPC server, three worker clients in threads that
    finish trials out of order, NAS-Bench-Macro lookups instead of training."""
    table = bench.load_nas_bench_macro()
    oracle = oracles.get(name, kt.Objective("signal", "max"), 24, seed=0,
                         space=table.space, **arguments)
    bench.LookupTuner(oracle, table.space, lambda values: 0.0, directory=tmp_path)
    port = distributed.free_port()
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(port))
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "unused")
    server = threading.Thread(target=distributed.serve, args=(oracle,),
                              kwargs={"poll_seconds": 0.02})
    server.start()
    idle_answers = {}

    def work(worker, seed):
        rng = np.random.default_rng(seed)
        client = distributed.WorkerOracleClient(oracle, min_wait=0.01, max_wait=0.1)
        while True:
            trial = client.create_trial(worker)
            if trial.status == "STOPPED":
                return
            if trial.status == "IDLE":
                idle_answers[worker] = idle_answers.get(worker, 0) + 1
                continue
            values = trial.hyperparameters.values
            time.sleep(float(rng.uniform(0, 0.03)))  # ends come out of order
            client.update_trial(trial.trial_id, {
                "signal": table.lookup(values, table.signal),
                "params": float(table.lookup(values, "params"))})
            trial.status = "COMPLETED"
            client.end_trial(trial)

    workers = [threading.Thread(target=work, args=(f"w{i}", i)) for i in range(3)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(120)
    server.join(30)
    assert not server.is_alive() and not any(t.is_alive() for t in workers)
    # IDLE answers (Hyperband between rungs) are waited out, not spun on.
    assert all(count < 50 for count in idle_answers.values()), idle_answers
    ended = [oracle.trials[i] for i in oracle.end_order]
    assert len(ended) == len(oracle.trials) and all(t.status == "COMPLETED" for t in ended)
    if name != "hyperband":  # it sets its own number of trials
        assert len(ended) == 24
    # No (architecture, budget) ran twice, though three workers asked at once.
    runs = {(Architecture.from_trial(t).hash, t.hyperparameters.values.get("tuner/epochs"))
            for t in ended}
    assert len(runs) == len(ended)
    if isinstance(oracle, oracles.NASOracle):
        assert {w for names in oracle.runners.values() for w in names} == {"w0", "w1", "w2"}
    if name == "controller":
        assert sorted(oracle.learned) == sorted(oracle.end_order)


class WaitingOracle(oracles.RandomOracle):
    """Answers IDLE for its first `waits` requests, as an oracle between
    rungs does, then proposes random architectures."""

    waits = 0

    def propose(self, rng):
        if self.waits > 0:
            self.waits -= 1
            return {"status": "IDLE", "values": None}
        return super().propose(rng)


def test_a_worker_waits_out_idle_answers_without_spinning(tmp_path, monkeypatch):
    table = bench.load_nas_bench_macro()
    oracle = WaitingOracle(kt.Objective("signal", "max"), max_trials=1, seed=0)
    bench.LookupTuner(oracle, table.space, lambda values: 0.0, directory=tmp_path)
    oracle.waits = 10**6
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(distributed.free_port()))
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "unused")
    server = threading.Thread(target=distributed.serve, args=(oracle,),
                              kwargs={"poll_seconds": 0.02})
    server.start()
    client = distributed.WorkerOracleClient(oracle, min_wait=0.01, max_wait=0.2)
    asked, start = 0, time.monotonic()
    while time.monotonic() - start < 1.5:
        assert client.create_trial("w0").status == "IDLE"
        asked += 1
    # 0.01 + 0.02 + ... doubling to 0.2 s: about a dozen requests, not thousands.
    assert 5 <= asked <= 20, asked
    oracle.waits = 0
    trial = client.create_trial("w0")
    assert trial.status == "RUNNING" and client._wait == client.min_wait
    client.update_trial(trial.trial_id, {"signal": 1.0})
    trial.status = "COMPLETED"
    client.end_trial(trial)
    assert client.create_trial("w0").status == "STOPPED"
    server.join(30)
    assert not server.is_alive()


def test_a_process_killed_while_writing_state_leaves_a_whole_file(tmp_path):
    """State files are written to a temporary file and renamed: SIGKILL at
    any moment leaves the previous or the new version, never a mix."""
    path = tmp_path / "oracle.json"
    writer = ("import sys\nfrom tfnas.project import write_atomically\ni = 0\n"
              "while True:\n"
              "    write_atomically(sys.argv[1], {'i': i, 'pad': 'x' * 200000})\n"
              "    i += 1\n")
    for _ in range(3):
        process = subprocess.Popen([sys.executable, "-c", writer, str(path)],
                                   env=_environment())
        _wait_for(lambda: path.exists() and json.loads(path.read_text())["i"] > 20,
                  "the writer to write")
        process.send_signal(signal.SIGKILL)
        process.wait()
        record = json.loads(path.read_text())
        assert len(record["pad"]) == 200000


def test_a_chief_on_a_busy_port_is_a_clear_error(tmp_path):
    import socket

    table = bench.load_nas_bench_macro()
    oracle = oracles.get("random", kt.Objective("signal", "max"), 2, seed=0)
    bench.LookupTuner(oracle, table.space, lambda values: 0.0, directory=tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        address = f"127.0.0.1:{busy.getsockname()[1]}"
        with pytest.raises(OSError, match=f"cannot listen on {address}"):
            distributed.serve(oracle, address)


def test_half_set_environment_variables_are_refused():
    with pytest.raises(ValueError, match="KERASTUNER_ORACLE_PORT"):
        distributed.check_environment({"KERASTUNER_TUNER_ID": "chief",
                                       "KERASTUNER_ORACLE_IP": "127.0.0.1"})
    with pytest.raises(ValueError, match="KERASTUNER_ORACLE_IP"):
        distributed.check_environment({"KERASTUNER_ORACLE_PORT": "8470"})
    with pytest.raises(ValueError, match="port number"):
        distributed.check_environment({"KERASTUNER_TUNER_ID": "w", "KERASTUNER_ORACLE_IP":
                                       "127.0.0.1", "KERASTUNER_ORACLE_PORT": "http"})
    assert distributed.check_environment({}) is None
    assert distributed.check_environment({
        "KERASTUNER_TUNER_ID": "chief", "KERASTUNER_ORACLE_IP": "127.0.0.1",
        "KERASTUNER_ORACLE_PORT": "8470"}) == "chief"
    with pytest.raises(ValueError, match="HOST:PORT"):
        distributed.parse_address("127.0.0.1")
    with pytest.raises(ValueError, match="chief"):
        distributed.environment("worker", "127.0.0.1:8470", "chief2")


def test_a_restarted_chief_resumes_instead_of_starting_over():
    from tfnas.launcher import Launcher

    launcher = Launcher(["--space", "mlp", "--overwrite"], workers=2)
    assert "--overwrite" in launcher.chief.argv
    assert "--overwrite" not in launcher.chief.restart_argv
    assert launcher.address.startswith("127.0.0.1:")  # the launcher's default
    assert [w.argv[-3:] for w in launcher.workers] == [
        ["--worker", "worker0", "--no-progress"], ["--worker", "worker1", "--no-progress"]]
    with pytest.raises(ValueError, match="workers"):
        Launcher([], workers=0)


def test_command_line_roles_are_checked_before_any_work(tmp_path, capsys, monkeypatch):
    from tfnas import cli

    assert cli._search_argv(["--space", "mlp", "--workers", "2", "--address=h:1",
                             "--max-restarts", "1", "--chief", "--epochs", "3"]) == [
        "--space", "mlp", "--epochs", "3"]
    for arguments, message in [
        (["--address", "127.0.0.1:8470"], "--address needs --chief, --worker or --workers"),
        (["--chief", "--address", "127.0.0.1"], "HOST:PORT"),
        (["--workers", "2", "--strategy", "darts"], "takes no --workers"),
    ]:
        code = cli.main(["search", "--directory", str(tmp_path), *arguments])
        assert code == 2
        assert message in capsys.readouterr().err
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    code = cli.main(["search", "--space", "mlp", "--directory", str(tmp_path)])
    assert code == 2
    assert "KERASTUNER_ORACLE_PORT" in capsys.readouterr().err
