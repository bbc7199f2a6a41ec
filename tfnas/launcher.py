"""`tfnas search --workers N`: a chief and N workers on this machine, supervised.

The launcher starts the chief (`tfnas search ... --chief`), waits until it
listens, starts the workers (`--worker worker<i>`), and watches them:

- a worker that dies (killed, out of memory, crashed) while the chief still
  serves is started again under the same name, so the chief hands it back
  the trial it was running;
- a chief killed by a signal is started again on the same project
  directory: it reloads the finished trials and the strategy's state, keeps
  the running trials with their workers, and the workers reconnect to it;
- when the chief exits, the workers it has not stopped yet are stopped;
- a worker that has used up its restarts loses its trial to another worker
  when its lease runs out (`--lease`);
- the TLS and token options are passed on to every process; without a
  token, the launcher makes a random one (in `TFNAS_TOKEN` of its
  processes), so that only they can use the chief's port.

The chief prints one line per finished trial; the workers print none.

Each process may be restarted `max_restarts` times.
"""

import os
import secrets
import signal
import socket
import subprocess
import sys
import time

from tfnas import distributed, secure_channel


def _describe_exit(code):
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


class _Process:
    def __init__(self, name, argv, environment):
        self.name = name
        self.argv = argv
        # A restart resumes the project: it must never start it over.
        self.restart_argv = [a for a in argv if a != "--overwrite"]
        self.environment = environment
        self.restarts = 0
        self.popen = None

    def start(self, log):
        argv = self.restart_argv if self.restarts else self.argv
        self.popen = subprocess.Popen(argv, env=self.environment)
        log(f"started {self.name} (pid {self.popen.pid})")

    def poll(self):
        return None if self.popen is None else self.popen.poll()

    def stop(self, timeout=10.0):
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


class Launcher:
    """Runs and supervises a chief and `workers` workers of one search.

    Args:
        search_argv: The `tfnas search` arguments shared by every process
            (without --workers/--chief/--worker/--address).
        workers: Number of worker processes.
        address: "host:port" of the chief; a free port on 127.0.0.1 when None.
        max_restarts: How many times each process may be restarted.
        environment: Base environment of the processes (default: this one's).
        chief_timeout: Seconds to wait for the chief to listen.
    """

    def __init__(self, search_argv, workers, address=None, max_restarts=3,
                 environment=None, chief_timeout=300.0, poll_seconds=0.2):
        if workers < 1:
            raise ValueError(f"Expected `workers` >= 1. Received: {workers}")
        if max_restarts < 0:
            raise ValueError(f"Expected `max_restarts` >= 0. Received: {max_restarts}")
        self.address = address or f"127.0.0.1:{distributed.free_port()}"
        self.host, self.port = distributed.parse_address(self.address)
        base = dict(os.environ if environment is None else environment)
        for name in (distributed.TUNER_ID, distributed.ORACLE_IP, distributed.ORACLE_PORT):
            base.pop(name, None)
        if not (base.get(secure_channel.TOKEN_ENV) or base.get(secure_channel.TOKEN_FILE_ENV)
                or any(a.split("=", 1)[0] == "--token-file" for a in search_argv)):
            # Only this launcher's processes can use the chief's port.
            base[secure_channel.TOKEN_ENV] = secrets.token_urlsafe(32)
        command = [sys.executable, "-m", "tfnas", "search", *search_argv,
                   "--address", self.address]
        self.chief = _Process(
            "chief", command + ["--chief"],
            {**base, **distributed.environment("chief", self.address)})
        self.workers = []
        for index in range(workers):
            name = f"worker{index}"
            self.workers.append(_Process(
                name, command + ["--worker", name, "--no-progress"],
                {**base, **distributed.environment("worker", self.address, name)}))
        self.max_restarts = max_restarts
        self.chief_timeout = chief_timeout
        self.poll_seconds = poll_seconds

    def log(self, message):
        print(f"tfnas launcher: {message}", flush=True)

    def run(self):
        """Runs the search to its end; returns the chief's exit status."""
        try:
            self.chief.start(self.log)
            if not self._wait_for_chief():
                return self._stop_all(self.chief.poll() or 1)
            for worker in self.workers:
                worker.start(self.log)
            return self._supervise()
        except KeyboardInterrupt:
            self._stop_all(None)
            raise

    def _wait_for_chief(self):
        deadline = time.monotonic() + self.chief_timeout
        while time.monotonic() < deadline:
            if self.chief.poll() is not None:
                self.log(f"the chief {_describe_exit(self.chief.poll())} before listening")
                return False
            with socket.socket() as probe:
                probe.settimeout(1.0)
                if probe.connect_ex((self.host, self.port)) == 0:
                    return True
            time.sleep(self.poll_seconds)
        self.log(f"the chief did not listen on {self.address} within {self.chief_timeout:.0f} s")
        return False

    def _restart(self, process, code):
        if process.restarts >= self.max_restarts:
            self.log(f"{process.name} {_describe_exit(code)}; no restarts left "
                     f"({self.max_restarts} used)")
            return False
        process.restarts += 1
        self.log(f"{process.name} {_describe_exit(code)}; restarting it "
                 f"({process.restarts} of {self.max_restarts})")
        process.start(self.log)
        return True

    def _supervise(self):
        while True:
            time.sleep(self.poll_seconds)
            code = self.chief.poll()
            if code is not None:
                if code < 0 and self._restart(self.chief, code):
                    if not self._wait_for_chief():
                        return self._stop_all(self.chief.poll() or 1)
                    continue
                return self._stop_all(code)
            for worker in self.workers:
                code = worker.poll()
                if code not in (None, 0) and not self._restart(worker, code):
                    worker.popen = None  # given up; the others go on
            if all(w.popen is None for w in self.workers):
                self.log("every worker has failed; stopping the chief")
                return self._stop_all(1)

    def _stop_all(self, code, grace_seconds=10.0):
        """Stops every process; after a normal end, workers get `grace_seconds`
        to hear from the chief that the search is over and exit by themselves."""
        deadline = time.monotonic() + (grace_seconds if code == 0 else 0.0)
        for worker in self.workers:
            while worker.poll() is None and time.monotonic() < deadline:
                time.sleep(self.poll_seconds)
            worker.stop()
        if code is None or self.chief.poll() is None:
            self.chief.stop()
        return code
