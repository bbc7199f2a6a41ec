"""Leases, the workers' handshake, TLS and the token, with real processes
and real gRPC on 127.0.0.1.

The chief's server runs in a thread of the test (NAS-Bench-Macro lookups
instead of training) where a test needs to steer workers precisely;
`tfnas search --chief/--worker` processes where the whole path matters.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import keras_tuner as kt
import pytest

from tfnas import bench, distributed, oracles, project
from tfnas.secure_channel import DistributedOptions
from tests.waiting import oracle_state, wait_for

pytestmark = pytest.mark.slow
TIMEOUT = 180


def _environment(**extra):
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("KERASTUNER_", "TFNAS_"))}
    environment.pop("TF_CONFIG", None)
    environment.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1", **extra)
    return environment


def make_certificate(directory, name):
    """A self-signed certificate for 127.0.0.1 and its key, by `openssl`."""
    key, certificate = directory / f"{name}.key", directory / f"{name}.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key),
                    "-out", str(certificate), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return str(certificate), str(key)


class Chief:
    """`distributed.serve` of a NAS-Bench-Macro random search in a thread."""

    def __init__(self, tmp_path, monkeypatch, options, max_trials=4):
        self.table = bench.load_nas_bench_macro()
        self.oracle = oracles.get("random", kt.Objective("signal", "max"), max_trials,
                                  seed=0, space=self.table.space)
        bench.LookupTuner(self.oracle, self.table.space, lambda values: 0.0,
                          directory=tmp_path)
        self.address = f"127.0.0.1:{distributed.free_port()}"
        host, port = self.address.split(":")
        monkeypatch.setenv("KERASTUNER_ORACLE_IP", host)
        monkeypatch.setenv("KERASTUNER_ORACLE_PORT", port)
        monkeypatch.setenv("KERASTUNER_TUNER_ID", "unused")
        self.notes = []
        self.thread = threading.Thread(
            target=distributed.serve, args=(self.oracle, self.address),
            kwargs={"poll_seconds": 0.02, "options": options}, daemon=True)
        monkeypatch.setattr("tfnas.secure_channel.log", self.notes.append)
        self.thread.start()

    def finish(self, client, worker):
        """Lets `client` run the remaining trials; the server must then stop."""
        while True:
            trial = client.create_trial(worker)
            if trial.status == "STOPPED":
                break
            self.complete(client, trial, 1.0)
        self.thread.join(30)
        assert not self.thread.is_alive(), "the chief did not stop"

    def complete(self, client, trial, signal_value):
        client.update_trial(trial.trial_id, {"signal": signal_value})
        trial.status = "COMPLETED"
        client.end_trial(trial)


def _wait_for(condition, what, timeout=30):
    return wait_for(condition, what, timeout, interval=0.02)


def test_a_worker_seeds_its_candidates_with_the_chief_s_seed(tmp_path, monkeypatch):
    options = DistributedOptions(lease_seconds=5.0, keepalive_seconds=0.5)
    chief = Chief(tmp_path, monkeypatch, options, max_trials=1)
    its_own = oracles.get("random", kt.Objective("signal", "max"), 1, seed=7,
                          space=chief.table.space)
    worker = distributed.WorkerOracleClient(its_own, options=options)
    assert worker.seed == chief.oracle.seed == 0
    chief.finish(worker, "worker")


def test_a_silent_worker_loses_its_trial_and_its_late_report_is_discarded(
        tmp_path, monkeypatch):
    options = DistributedOptions(lease_seconds=0.6, keepalive_seconds=0.1)
    chief = Chief(tmp_path, monkeypatch, options, max_trials=3)
    oracle = chief.oracle
    lost = distributed.WorkerOracleClient(oracle, options=options)
    other = distributed.WorkerOracleClient(oracle, options=options)
    trial = lost.create_trial("lost")
    assert lost.lease_seconds == 0.6
    # Reporting keeps the lease well past its length.
    time.sleep(1.5)
    assert lost.report_progress(trial.trial_id, step=1)
    assert oracle.ongoing_trials["lost"].trial_id == trial.trial_id
    lost._stop_keepalive()  # the worker falls silent (hung, or its host is gone)
    _wait_for(lambda: any("worker lost has been silent" in note for note in chief.notes),
              "the lease to run out")
    assert "lost" not in oracle.ongoing_trials

    taken = other.create_trial("other")
    assert taken.trial_id == trial.trial_id  # re-issued before any new trial
    assert not lost.report_progress(trial.trial_id, step=2)  # told to move on
    # The lost worker's late results count for nothing.
    chief.complete(lost, trial, -5.0)
    assert oracle.trials[trial.trial_id].status == "RUNNING"
    assert any(f"discarded the late end of trial {trial.trial_id} from worker lost" in note
               for note in chief.notes), chief.notes
    chief.complete(other, taken, 0.75)
    assert oracle.trials[trial.trial_id].score == pytest.approx(0.75)
    assert oracle.end_order.count(trial.trial_id) == 1
    assert oracle.runners[trial.trial_id] == ["lost", "other"]
    chief.finish(other, "other")
    assert len(oracle.end_order) == len(oracle.trials) == 3
    assert all(count == 1 for count in oracle._run_times.values()), oracle._run_times


def test_a_lost_trial_not_yet_reissued_is_kept_by_its_returning_worker(tmp_path,
                                                                       monkeypatch):
    options = DistributedOptions(lease_seconds=0.4, keepalive_seconds=0.1)
    chief = Chief(tmp_path, monkeypatch, options, max_trials=2)
    slow = distributed.WorkerOracleClient(chief.oracle, options=options)
    trial = slow.create_trial("slow")
    slow._stop_keepalive()
    _wait_for(lambda: "slow" not in chief.oracle.ongoing_trials, "the lease to run out")
    chief.complete(slow, trial, 0.5)  # nobody took it meanwhile: the result counts
    assert chief.oracle.trials[trial.trial_id].status == "COMPLETED"
    assert chief.oracle._retry_queue == []
    chief.finish(slow, "slow")
    assert chief.oracle._run_times[trial.trial_id] == 1


def test_a_worker_stays_while_another_trial_may_need_it(tmp_path, monkeypatch):
    """A worker told that every trial is handed out waits (IDLE) as long as
    another worker's trial runs, so it can take that trial if its worker
    dies; KerasTuner's STOPPED would let it leave and the chief wait."""
    options = DistributedOptions(lease_seconds=0.5, keepalive_seconds=0.1)
    chief = Chief(tmp_path, monkeypatch, options, max_trials=1)
    dying = distributed.WorkerOracleClient(chief.oracle, options=options)
    survivor = distributed.WorkerOracleClient(chief.oracle, options=options, max_wait=0.05)
    trial = dying.create_trial("dying")
    assert survivor.create_trial("survivor").status == "IDLE"
    dying._stop_keepalive()
    taken = _wait_for(lambda: (t := survivor.create_trial("survivor")).status != "IDLE" and t,
                      "the trial to be re-issued")
    assert taken.trial_id == trial.trial_id
    chief.finish(survivor, "survivor")


def test_tls_and_the_token_refuse_strangers_and_serve_the_chiefs_workers(tmp_path,
                                                                         monkeypatch):
    certificate, key = make_certificate(tmp_path, "chief")
    stranger, _ = make_certificate(tmp_path, "stranger")
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token-value\n")
    chief_options = DistributedOptions(tls_cert=certificate, tls_key=key,
                                       token_file=str(token_file))
    chief = Chief(tmp_path, monkeypatch, chief_options, max_trials=2)

    def client(**options):
        return distributed.WorkerOracleClient(
            chief.oracle, options=DistributedOptions(connect_timeout=10, **options))

    with pytest.raises(PermissionError, match="refused this worker: .*no token"):
        client(tls_ca=certificate)
    assert any(re.search(r"refused a request to /tfnas.Chief/Hello from ipv4:127.0.0.1:\d+: "
                         "no token", note) for note in chief.notes), chief.notes
    with pytest.raises(PermissionError, match="wrong token"):
        client(tls_ca=certificate, token="guess")
    start = time.monotonic()
    with pytest.raises(ConnectionError, match="TLS handshake with the chief at .* failed"):
        client(tls_ca=stranger, token_file=str(token_file))
    assert time.monotonic() - start < 10  # refused at once, not at the timeout
    with pytest.raises(ConnectionError, match="No chief answered .* within 2 s"):
        distributed.WorkerOracleClient(chief.oracle, options=DistributedOptions(
            connect_timeout=2, token_file=str(token_file)))  # plaintext to a TLS chief
    # The chief's own workers are served.
    worker = client(tls_ca=certificate, token_file=str(token_file))
    chief.finish(worker, "w0")
    assert [t.status for t in chief.oracle.trials.values()] == ["COMPLETED"] * 2
    assert not any("s3cret" in note for note in chief.notes)
    assert "s3cret" not in repr(DistributedOptions(token="s3cret-token-value"))


def test_distributed_options_are_checked():
    for name in ("lease_seconds", "keepalive_seconds", "connect_timeout"):
        with pytest.raises(ValueError, match=f"`{name}`, expected a positive number"):
            DistributedOptions(**{name: 0})
    with pytest.raises(ValueError, match="`tls_key` without `tls_cert`"):
        DistributedOptions(tls_key="key.pem")
    with pytest.raises(OSError, match=r"token file /nonexistent/token given as `token_file` "
                                      r"\(--token-file\)"):
        DistributedOptions(token_file="/nonexistent/token").check_files()
    options = DistributedOptions.from_environment(
        {"TFNAS_TOKEN": "abc", "TFNAS_TLS_CA": "ca.pem"}, lease_seconds=5.0)
    assert options.read_token() == b"abc" and options.tls_ca == "ca.pem"
    assert options.lease_seconds == 5.0
    # A token file given explicitly wins over the environment's token.
    options = DistributedOptions.from_environment({"TFNAS_TOKEN": "abc"}, token_file="t")
    assert options.token is None and options.token_file == "t"


def test_a_worker_retries_an_absent_chief_at_least_every_second():
    """gRPC's default reconnection backoff grows to minutes: a worker would
    find a restarted chief tens of seconds late. A port that accepts and
    drops every connection stands in for a chief that is not there yet."""

    import grpc

    from tfnas import secure_channel

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    attempts, stop = [], threading.Event()

    def drop_connections():
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except socket.timeout:
                continue
            attempts.append(time.monotonic())
            connection.close()

    thread = threading.Thread(target=drop_connections, daemon=True)
    thread.start()
    address = f"127.0.0.1:{listener.getsockname()[1]}"
    channel = secure_channel.client_channel(address, DistributedOptions(), lambda: "w")
    try:
        with pytest.raises(grpc.FutureTimeoutError):
            grpc.channel_ready_future(channel).result(timeout=6)
    finally:
        channel.close()
        stop.set()
        thread.join(5)
        listener.close()
    # Every second (after 0.25, 0.4, 0.64 s): 8 attempts in 6 s; gRPC's
    # default (1 s, then 1.6 times longer each time) makes 4.
    assert len(attempts) >= 6, [round(t - attempts[0], 2) for t in attempts]


# Real `tfnas search` processes.

SEARCH = [sys.executable, "-m", "tfnas", "search", "--space", "mlp", "--space-arg",
          "units=[16,32,64]", "--dataset", "digits", "--strategy", "random",
          "--project-name", "p", "--no-progress"]


def _start(directory, *arguments, **environment):
    return subprocess.Popen([*SEARCH, "--directory", str(directory), *arguments],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=_environment(**environment))


def _finish(process, timeout=TIMEOUT):
    try:
        output = process.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        output = process.communicate()[0]
        raise AssertionError(f"the process did not end in {timeout} s:\n{output}")
    return process.returncode, output


def test_a_worker_killed_for_good_does_not_hang_the_chief(tmp_path):
    """`--chief` and two external workers; one is killed mid-trial and never
    comes back: its trial goes to the other worker when its lease runs out,
    and the search ends with every trial run once."""
    address = f"127.0.0.1:{distributed.free_port()}"
    common = ["--max-trials", "3", "--epochs", "10", "--address", address, "--lease", "6"]
    chief = _start(tmp_path, *common, "--chief")
    workers = {name: _start(tmp_path, *common, "--worker", name) for name in ("w1", "w2")}
    processes = [chief, *workers.values()]
    try:
        project_dir = os.path.join(str(tmp_path), "p")

        def w1_trial():
            state = oracle_state(project_dir)
            return state and state["ongoing_trials"].get("w1")

        trial_id = _wait_for(w1_trial, "w1 to start a trial", timeout=TIMEOUT)
        time.sleep(0.5)
        assert w1_trial() == trial_id, "the trial ended before the kill: raise --epochs"
        workers["w1"].send_signal(signal.SIGKILL)
        code, output = _finish(chief)
        assert code == 0, output
        assert _finish(workers["w2"])[0] == 0
    finally:
        for process in processes:
            process.kill()
            process.wait()
    assert re.search(rf"worker w1 has been silent for \d+ s \(lease 6 s\): trial {trial_id}",
                     output), output
    trials = project.load_trials(project_dir)
    assert [t.status for t in trials] == ["COMPLETED"] * 3, output
    state = oracle_state(project_dir)
    assert state["runners"][trial_id] == ["w1", "w2"]
    assert state["run_times"] == {t.trial_id: 1 for t in trials}
    assert state["ongoing_trials"] == {} and state["retry_queue"] == []


def test_a_worker_without_a_chief_fails_after_the_connect_timeout(tmp_path):
    address = f"127.0.0.1:{distributed.free_port()}"
    start = time.monotonic()
    code, output = _finish(_start(tmp_path, "--worker", "w1", "--address", address,
                                  "--connect-timeout", "2"), timeout=120)
    assert code == 2, output
    assert re.search(rf"^tfnas: error: No chief answered at {address} within 2 s "
                     r"\(connect_timeout, --connect-timeout\)", output, re.M), output
    assert "Traceback" not in output
    assert time.monotonic() - start < 100


def test_a_secured_chief_refuses_mismatched_and_unauthenticated_workers(tmp_path):
    """TLS and a token end to end through the command line; a worker with
    other search arguments is refused with the differences listed."""
    certificate, key = make_certificate(tmp_path, "chief")
    token_file = tmp_path / "token"
    token_file.write_text("another-s3cret\n")
    address = f"127.0.0.1:{distributed.free_port()}"
    common = ["--max-trials", "2", "--epochs", "1", "--address", address]
    tls = ["--tls-cert", certificate, "--tls-key", key]
    chief = _start(tmp_path, *common, *tls, "--token-file", str(token_file), "--chief")
    try:
        refused = {
            "no token": _start(tmp_path, *common, "--tls-ca", certificate, "--worker", "a"),
            "other epochs": _start(tmp_path, *common[:-3], "2", "--address", address,
                                   "--tls-ca", certificate, "--worker", "b",
                                   TFNAS_TOKEN="another-s3cret"),
        }
        outputs = {name: _finish(process) for name, process in refused.items()}
        for name, (code, output) in outputs.items():
            assert code == 2, (name, output)
        assert re.search(r"^tfnas: error: The chief at .* refused this worker: .*no token",
                         outputs["no token"][1], re.M), outputs["no token"][1]
        assert re.search(r"^tfnas: error: The chief at .* searches with other arguments than "
                         r"this worker: epochs: chief 1, this worker 2\. Start the worker",
                         outputs["other epochs"][1], re.M), outputs["other epochs"][1]
        good = _start(tmp_path, *common, "--tls-ca", certificate, "--token-file",
                      str(token_file), "--worker", "c")
        assert _finish(good)[0] == 0
        code, output = _finish(chief)
    finally:
        for process in [chief, *refused.values()]:
            process.kill()
            process.wait()
    assert code == 0, output
    assert "Chief listening on" in output and "(TLS, token required)" in output
    assert re.search(r"refused a request to /tfnas.Chief/Hello from ipv4:127.0.0.1:\d+: "
                     "no token", output), output
    assert "refused worker b" in output and "epochs: chief 1, this worker 2" in output
    assert [t.status for t in project.load_trials(os.path.join(str(tmp_path), "p"))] == [
        "COMPLETED"] * 2
    everything = output + "".join(o for _, o in outputs.values())
    assert "s3cret" not in everything


def test_the_launcher_passes_tls_and_token_on_and_makes_a_token_when_none_is_given():
    from tfnas.launcher import Launcher

    secured = ["--tls-cert", "c.pem", "--tls-key", "k.pem", "--token-file", "token",
               "--lease", "30"]
    launcher = Launcher(["--space", "mlp", *secured], workers=2, environment={})
    for process in [launcher.chief, *launcher.workers]:
        assert all(argument in process.argv for argument in secured)
        assert "TFNAS_TOKEN" not in process.environment  # the file is the token
    launcher = Launcher(["--space", "mlp"], workers=2, environment={"PATH": "/bin"})
    tokens = {p.environment.get("TFNAS_TOKEN") for p in [launcher.chief, *launcher.workers]}
    assert len(tokens) == 1 and len(tokens.pop() or "") >= 32
    other = Launcher(["--space", "mlp"], workers=1, environment={})
    assert other.chief.environment["TFNAS_TOKEN"] != launcher.chief.environment["TFNAS_TOKEN"]


def test_time_the_chief_spends_busy_is_not_a_workers_silence(tmp_path):
    """A worker cannot be heard while the single-threaded chief handles a
    long request (e.g. a strategy learning after a trial): that time does
    not count against its lease."""
    from tfnas import leases

    table = bench.load_nas_bench_macro()
    oracle = oracles.get("random", kt.Objective("signal", "max"), 4, seed=0,
                         space=table.space)
    bench.LookupTuner(oracle, table.space, lambda values: 0.0, directory=tmp_path)
    now = [0.0]
    servicer = leases.LeasingServicer(oracle, lease_seconds=10, log=lambda note: None,
                                      clock=lambda: now[0])
    with servicer._request("a"):
        trial = oracle.create_trial("a")
    with servicer._request("b"):
        now[0] += 100.0  # the chief is busy for 100 s
    assert servicer.expire() == []
    now[0] += 11.0
    assert servicer.expire() == [("a", trial.trial_id)]
    assert oracle._retry_queue == [trial.trial_id] and "a" not in oracle.ongoing_trials


def test_a_worker_alive_between_trials_is_waited_for_and_a_dead_one_is_not(
        tmp_path, monkeypatch):
    options = DistributedOptions(lease_seconds=0.4, keepalive_seconds=0.05)
    chief = Chief(tmp_path, monkeypatch, options, max_trials=2)
    alive = distributed.WorkerOracleClient(chief.oracle, options=options)
    dead = distributed.WorkerOracleClient(chief.oracle, options=options)
    chief.complete(alive, alive.create_trial("alive"), 0.5)
    chief.complete(dead, dead.create_trial("dead"), 0.6)
    dead._stop_keepalive()  # dies between trials, before asking for the next
    time.sleep(1.5)  # a long pause between trials, well past the lease
    assert "alive" in chief.oracle.tuner_ids and "dead" not in chief.oracle.tuner_ids
    assert not any("silent" in note for note in chief.notes)  # no trial was taken
    chief.finish(alive, "alive")  # the chief ends without waiting for the dead one


class CuttingProxy:
    """A TCP relay between the workers and the chief that can cut the
    connections open now when their next request arrives, as a chief killed
    while a request is on its way does; later connections are relayed. A
    connection that arrives before the chief listens is closed, as the chief's
    own port would refuse it (an uncaught refusal ended the relay's thread, and
    every later connection then waited in the listener's backlog forever)."""

    def __init__(self, target):
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.cut_on_next_request = threading.Event()
        self.cuts = 0
        self.stop = threading.Event()
        self.accepting = threading.Thread(target=self._accept, daemon=True)
        self.accepting.start()

    def _accept(self):
        host, port = self.target.split(":")
        while not self.stop.is_set():
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            try:
                server = socket.create_connection((host, int(port)))
            except OSError:  # the chief's thread is not listening yet: the client retries
                client.close()
                continue
            cut = self.cut_on_next_request.is_set()  # set before: relayed
            for source, sink, watch in ((client, server, not cut), (server, client, False)):
                threading.Thread(target=self._relay, args=(source, sink, watch),
                                 daemon=True).start()

    def _relay(self, source, sink, watch):
        try:
            while data := source.recv(65536):
                if watch and self.cut_on_next_request.is_set():
                    self.cut_on_next_request.clear()
                    self.cuts += 1
                    break
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            end.close()

    def close(self):
        self.stop.set()
        self.accepting.join(5)  # within one accept timeout: then the listener may go
        self.listener.close()


def test_requests_cut_by_a_chief_crash_are_sent_again(tmp_path, monkeypatch):
    """Each request whose connection breaks mid-request (the chief killed
    and restarted) is sent again: asking for a trial, a per-epoch report
    (which must not fail the trial in the middle of its `fit`), asking for
    the trial after its `fit` (KerasTuner's tuner does; an error there
    failed a trained trial in test_distributed's killed-chief test) and
    ending it. The trial is given once and ended once."""
    options = DistributedOptions()
    chief = Chief(tmp_path, monkeypatch, options, max_trials=2)
    proxy = CuttingProxy(chief.address)
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", proxy.address.split(":")[1])
    try:
        client = distributed.WorkerOracleClient(chief.oracle, options=options)
        proxy.cut_on_next_request.set()
        trial = client.create_trial("w")
        assert proxy.cuts == 1 and trial.status == "RUNNING"
        proxy.cut_on_next_request.set()
        answer = client.update_trial(trial.trial_id, {"signal": 0.5}, step=0)
        assert proxy.cuts == 2 and answer.status == "RUNNING"
        assert chief.oracle.trials[trial.trial_id].metrics.get_last_value("signal") == 0.5
        proxy.cut_on_next_request.set()
        assert client.get_trial(trial.trial_id).trial_id == trial.trial_id
        assert proxy.cuts == 3
        trial.status = "COMPLETED"
        proxy.cut_on_next_request.set()
        client.end_trial(trial)
        assert proxy.cuts == 4
        assert chief.oracle.end_order == [trial.trial_id]
        assert chief.oracle.trials[trial.trial_id].status == "COMPLETED"
        assert list(chief.oracle.trials) == [trial.trial_id]  # given once
        chief.finish(client, "w")
    finally:
        proxy.close()
