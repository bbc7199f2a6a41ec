"""Distributed search on KerasTuner's chief/worker mode.

One process, the chief, holds the oracle and answers the workers over gRPC;
each worker asks it for a trial, trains the candidate and reports the
result. The roles come from KerasTuner's environment variables:

- `KERASTUNER_TUNER_ID`: "chief" for the chief, any other unique name for a
  worker (a restarted worker must keep its name to get its trial back);
- `KERASTUNER_ORACLE_IP`, `KERASTUNER_ORACLE_PORT`: the chief's address.

`tfnas search --chief/--worker/--workers N` sets them (see `tfnas.launcher`).
This module fixes what KerasTuner's own chief and workers lack:

- `check_environment` refuses half-set variables with a clear error;
- `serve` runs the chief's gRPC server on the given address and returns
  as soon as the last worker is done (KerasTuner polls every 20 seconds and
  never stops its server), with leases on the running trials (a worker that
  dies for good loses its trial to another; see `tfnas.leases`), and TLS
  and a shared token when configured (`tfnas.secure_channel`);
- `WorkerOracleClient` checks that the chief answers and searches with the
  same arguments, keeps its trial's lease while it trains, waits with a
  growing pause while the oracle answers IDLE (KerasTuner's workers ask
  again at once, in a busy loop), and carries a failed trial's reason to
  the chief inside the trial's values, since the Trial message over gRPC
  has no field for it.

Without TLS and a token the gRPC channel is unauthenticated and
unencrypted: keep the chief on 127.0.0.1 or on a trusted private network.
"""

import dataclasses
import json
import os
import socket
import threading
import time
from concurrent import futures

import grpc
import keras_tuner as kt

from tfnas import compat
from tfnas import leases
from tfnas import secure_channel
from tfnas.leases import FAILURE_MESSAGE, take_failure_message  # noqa: F401 (re-exported)

protos = compat.keras_tuner_module("protos")
oracle_chief = compat.keras_tuner_module("distribute.oracle_chief")
oracle_client = compat.keras_tuner_module("distribute.oracle_client")

TUNER_ID = "KERASTUNER_TUNER_ID"
ORACLE_IP = "KERASTUNER_ORACLE_IP"
ORACLE_PORT = "KERASTUNER_ORACLE_PORT"
CHIEF = "chief"
MAX_MESSAGE_CHARACTERS = 8000
IDLE = kt.engine.trial.TrialStatus.IDLE
RUNNING = kt.engine.trial.TrialStatus.RUNNING
STOPPED = kt.engine.trial.TrialStatus.STOPPED


def use_multi_worker_keras(strategy):
    """Lets Keras 3 `fit` run under `strategy` when it spans several workers.

    Keras 3's TensorFlow trainer fails under MultiWorkerMirroredStrategy
    (tensorflow/tensorflow#72388): it averages each step's scalar logs
    across workers along an axis 0 they do not have, and builds the model
    from a cross-worker mean of the first input batch, which eager
    collectives refuse. For multi-worker strategies only, scalar logs are
    averaged without an axis and the model is built from this worker's own
    first batch; single-process training is untouched.
    """
    import tensorflow as tf

    tree, trainer = compat.keras_trainer_internals()

    if not getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)():
        return
    if getattr(trainer, "_tfnas_multi_worker", False):
        return
    reduce_per_replica = trainer.reduce_per_replica
    maybe_symbolic_build = trainer.TensorFlowTrainer._maybe_symbolic_build

    def local(value, strategy):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    def reduce_logs(values, strategy, reduction):
        if reduction not in ("auto", "mean") or not trainer._collective_all_reduce_multi_worker(
                strategy):
            return reduce_per_replica(values, strategy, reduction)

        def reduce(value):
            if local(value, strategy).shape.rank == 0:
                return strategy.reduce("MEAN", value, axis=None)
            return reduce_per_replica(value, strategy, reduction)

        return tree.map_structure(reduce, values)

    def build_from_local_batch(model, iterator=None, data_batch=None):
        strategy = model._distribute_strategy
        if strategy is None or iterator is None or not trainer._collective_all_reduce_multi_worker(
                strategy):
            return maybe_symbolic_build(model, iterator=iterator, data_batch=data_batch)
        for _, _, batches in iterator:
            data_batch = tree.map_structure(lambda v: local(v, strategy), next(batches))
            break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    trainer.reduce_per_replica = reduce_logs
    trainer.TensorFlowTrainer._maybe_symbolic_build = build_from_local_batch
    trainer._tfnas_multi_worker = True


def check_environment(environ=None):
    """The role of this process from KerasTuner's variables, or None.

    Returns:
        None when none of the variables is set (a local search), "chief" or
        "worker".

    Raises:
        ValueError: when only some of the variables are set, or the port is
            not a port number.
    """
    environ = os.environ if environ is None else environ
    names = (TUNER_ID, ORACLE_IP, ORACLE_PORT)
    present = [name for name in names if environ.get(name)]
    if not present:
        return None
    missing = [name for name in names if name not in present]
    if missing:
        raise ValueError(
            f"Distributed search needs {', '.join(names)} together. Received "
            f"{', '.join(f'{n}={environ[n]!r}' for n in present)} but not "
            f"{', '.join(missing)}. Set all three (KERASTUNER_TUNER_ID=chief on "
            "the chief, a unique name on each worker), or none for a local search.")
    port = environ[ORACLE_PORT]
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"Expected {ORACLE_PORT} to be a port number (1-65535). "
                         f"Received: {port!r}")
    return CHIEF if CHIEF in environ[TUNER_ID] else "worker"


def parse_address(address):
    """("host", port) from "host:port"; raises ValueError naming the address."""
    host, sep, port = str(address).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"Expected an address HOST:PORT (e.g. 127.0.0.1:8470). Received: {address!r}")
    return host, int(port)


def environment(role, address, worker_id=None):
    """KerasTuner's variables for `role` ("chief" or "worker") at `address`."""
    host, port = parse_address(address)
    if role == CHIEF:
        tuner_id = CHIEF
    elif role == "worker":
        if not worker_id or CHIEF in worker_id:
            raise ValueError(
                f"Expected a worker name without the word 'chief'. Received: {worker_id!r}")
        tuner_id = worker_id
    else:
        raise ValueError(f"Expected role 'chief' or 'worker'. Received: {role!r}")
    return {TUNER_ID: tuner_id, ORACLE_IP: host, ORACLE_PORT: str(port)}


def free_port(host="127.0.0.1"):
    """A TCP port on `host` that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def serve(oracle, address=None, poll_seconds=0.2, on_trial_end=None, options=None):
    """Serves `oracle` to the workers until the search is over.

    The search is over when the oracle has told a worker to stop and no
    trial is running and every worker has been told to stop. A worker
    silent for longer than the lease loses its trial to another worker and
    is no longer waited for (see `tfnas.leases`).

    Args:
        oracle: The chief's oracle.
        address: "host:port" to listen on; defaults to KerasTuner's
            variables.
        poll_seconds: How often to check whether the search is over.
        on_trial_end: Called with the id of each trial that ends, in the
            order they end (from this thread, not the server's).
        options: A `tfnas.secure_channel.DistributedOptions` (lease, TLS,
            token, the search's identity); defaults to the environment's.

    Raises:
        OSError: when the address cannot be bound (e.g. already in use), or
            a TLS or token file cannot be read.
    """
    if address is None:
        address = f"{os.environ[ORACLE_IP]}:{os.environ[ORACLE_PORT]}"
    if options is None:
        options = secure_channel.DistributedOptions.from_environment()
    compat.quiet_condition_protos()
    credentials = options.server_credentials()
    token = options.read_token()
    interceptors = [secure_channel.ServerAuthentication(token)] if token is not None else []
    # One thread, as in KerasTuner: the oracle handles one request at a time.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1), interceptors=interceptors)
    servicer = leases.LeasingServicer(oracle, options.lease_seconds, options.identity)
    servicer.add_to_server(server)
    try:
        if credentials is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, credentials)
    except RuntimeError as error:  # some grpc versions raise on a failed bind
        bound, reason = 0, f" ({error})"
    else:
        reason = ""
    if not bound:
        raise OSError(f"The chief cannot listen on {address}{reason}: is another "
                      "process using the port?")
    server.start()
    reported = len(oracle.end_order)

    def report_ended():
        nonlocal reported
        while on_trial_end is not None and reported < len(oracle.end_order):
            on_trial_end(oracle.end_order[reported])
            reported += 1

    try:
        while not (servicer.stop_triggered and oracle_chief.exit_chief(oracle)):
            time.sleep(poll_seconds)
            servicer.expire()
            report_ended()
        report_ended()
    finally:
        server.stop(grace=2).wait()


def run_chief(tuner):
    """A chief's `search`: serves `tuner`'s oracle until the search is over.

    KerasTuner's chief server polls every 20 s and never stops; this one
    stops when the search is over, and reports each trial as it ends (the
    tuner's progress line and search log) under the oracle's lock.
    """
    tuner.on_search_begin()
    tuner.save()

    def report(trial_id):
        with compat.oracle_lock(tuner.oracle):
            tuner._report_trial(tuner.oracle.trials[trial_id])

    serve(tuner.oracle, on_trial_end=report, options=tuner.distributed_options)
    tuner.on_search_end()


def worker_oracle(oracle, options):
    """A worker's oracle: KerasTuner's worker client (in `oracle`, as
    KerasTuner's tuner makes it) replaced by a `WorkerOracleClient`."""
    client = WorkerOracleClient(compat.wrapped_oracle(oracle), options=options)
    client.multi_worker = oracle.multi_worker
    client.should_report = oracle.should_report
    return client


class WorkerOracleClient(oracle_client.OracleClient):
    """KerasTuner's worker-side oracle proxy, patient, checked and leased.

    Unlike KerasTuner's client, it:

    - opens its own channel (TLS and the shared token when `options` say
      so) and sends its name with every request;
    - says hello to the chief first, waiting at most `connect_timeout`
      seconds for it, and is refused when its search arguments
      (`options.identity`) differ from the chief's;
    - keeps its lease (`report_progress` on its trial each epoch, and a
      keep-alive thread every few seconds, for long epochs and between
      trials), and learns from the chief when its trial was given to
      another worker;
    - sends a report, a trial's end or a request for a trial
      (`update_trial`, `end_trial`, `get_trial`, `create_trial`) again
      while the chief cannot be reached (restarting after a crash), up to
      `connect_timeout` seconds;
    - waits with a growing pause while the oracle answers IDLE (KerasTuner's
      workers ask again at once, in a busy loop);
    - carries a failed trial's reason to the chief inside the trial's
      values, since the Trial message over gRPC has no field for it.

    Args:
        oracle: The worker's local oracle (its objective and max_trials are
            read locally, as in KerasTuner).
        min_wait, max_wait: Seconds to wait after an IDLE answer; the wait
            doubles with each consecutive IDLE, up to `max_wait`.
        options: A `tfnas.secure_channel.DistributedOptions`; defaults to
            the environment's.

    Raises:
        ConnectionError: when no chief answers within `connect_timeout`, or
            the TLS handshake fails.
        PermissionError: when the chief refuses the token.
        ValueError: when the chief searches with other arguments.
    """

    def __init__(self, oracle, min_wait=0.05, max_wait=2.0, options=None):
        compat.quiet_condition_protos()
        self._oracle = oracle
        self.options = options or secure_channel.DistributedOptions.from_environment()
        self.address = f"{os.environ[ORACLE_IP]}:{os.environ[ORACLE_PORT]}"
        self.tuner_id = os.environ[TUNER_ID]
        self._channel = secure_channel.client_channel(self.address, self.options,
                                                      lambda: self.tuner_id)
        self.stub = protos.get_service_grpc().OracleStub(self._channel)
        self.multi_worker = False
        self.should_report = True
        # The chief's oracle is of the same class (the search's identity).
        self.takes_epoch_reports = getattr(oracle, "takes_epoch_reports", False)
        self.seed = getattr(oracle, "seed", None)  # the chief's, once it answers
        self.min_wait = min_wait
        self.max_wait = max_wait
        self._wait = min_wait
        self.lease_seconds = None
        self._keepalive = None
        self._trial_id = None  # the trial this worker trains
        self.lost_trials = set()  # trials the chief gave to another worker
        self._hello()

    def _hello(self):
        hello = self._channel.unary_unary(leases.HELLO, request_serializer=leases.encode,
                                          response_deserializer=leases.decode)
        request = {"tuner_id": self.tuner_id, "identity": self.options.identity}
        timeout = self.options.connect_timeout
        deadline = time.monotonic() + timeout
        last = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConnectionError(
                    f"No chief answered at {self.address} within {timeout:g} s "
                    f"(connect_timeout, --connect-timeout). Start the chief first, check "
                    f"the address, and that both use TLS or neither (last error: {last}).")
            try:
                answer = hello(request, timeout=min(remaining, 10.0))
                break
            except grpc.RpcError as error:
                code, last = error.code(), error.details()
                if code == grpc.StatusCode.UNAUTHENTICATED:
                    raise PermissionError(f"The chief at {self.address} refused this "
                                          f"worker: {last}") from None
                if code == grpc.StatusCode.UNIMPLEMENTED:  # KerasTuner's own chief
                    return
                if self.options.uses_tls and "handshake" in (last or "").lower():
                    raise ConnectionError(
                        f"The TLS handshake with the chief at {self.address} failed: the "
                        "chief's certificate is not signed by the CA given as --tls-ca "
                        f"(tls_ca), or the chief does not use TLS ({last}).") from None
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        if answer.get("differences"):
            raise ValueError(
                f"The chief at {self.address} searches with other arguments than this "
                f"worker: {'; '.join(answer['differences'])}. Start the worker with the "
                "chief's arguments.")
        self.lease_seconds = answer.get("lease_seconds")
        self.seed = answer.get("seed", self.seed)
        if self.lease_seconds:
            self._start_keepalive()

    def create_trial(self, tuner_id):
        self.tuner_id = tuner_id  # the name its later reports are sent under
        self._trial_id = None
        # Asked again while the chief restarts; a chief that gave a trial to
        # this worker before it crashed gives the same one again.
        trial = self._patiently(super().create_trial, tuner_id)
        if trial.status == IDLE:
            time.sleep(self._wait)
            self._wait = min(2 * self._wait, self.max_wait)
        else:
            self._wait = self.min_wait
        if trial.status == RUNNING:
            self._trial_id = trial.trial_id
        elif trial.status == STOPPED:
            self._stop_keepalive()  # this worker's search is over
        return trial

    def report_progress(self, trial_id, step=0):
        """Renews the lease of `trial_id`; False when the chief gave the
        trial to another worker (stop training it)."""
        if not self.should_report or trial_id in self.lost_trials:
            return trial_id not in self.lost_trials
        try:
            response = self.stub.UpdateTrial(
                protos.get_service().UpdateTrialRequest(trial_id=trial_id, metrics={},
                                                        step=int(step)),
                timeout=self.options.connect_timeout)
        except grpc.RpcError:
            return True  # the chief may be restarting: the next report tells
        if response.trial.status == kt.engine.trial.TrialStatus.to_proto(STOPPED):
            if trial_id not in self.lost_trials:
                self.lost_trials.add(trial_id)
                print(f"Worker {self.tuner_id}: the chief gave trial {trial_id} to another "
                      "worker (this one was silent past the lease); moving on.", flush=True)
            return False
        return True

    def _start_keepalive(self):
        """Reports every `keepalive_seconds` (at most a quarter of the lease)
        for as long as this worker takes part in the search: on its trial
        while it trains one, with a plain keep-alive between trials."""
        interval = min(self.options.keepalive_seconds, self.lease_seconds / 4)
        stop = threading.Event()
        keep_alive = self._channel.unary_unary(leases.KEEP_ALIVE,
                                               request_serializer=leases.encode,
                                               response_deserializer=leases.decode)

        def run():
            while not stop.wait(interval):
                trial_id = self._trial_id
                if not self.should_report:
                    continue
                if trial_id is not None:
                    self.report_progress(trial_id)
                    continue
                try:
                    keep_alive({}, timeout=self.options.connect_timeout)
                except grpc.RpcError:
                    pass  # the chief may be restarting

        thread = threading.Thread(target=run, daemon=True, name="tfnas-keepalive")
        thread.start()
        self._keepalive = (stop, thread)

    def close(self):
        """Stops the keep-alives: a search that ended on an error must not
        keep the chief waiting for this worker."""
        self._stop_keepalive()

    def _stop_keepalive(self):
        if self._keepalive is not None:
            stop, thread = self._keepalive
            stop.set()
            thread.join(5.0)
            self._keepalive = None

    def _patiently(self, call, *args, **kwargs):
        """`call(*args, **kwargs)`, sent again while the chief cannot be
        reached (restarting after a crash), for up to `connect_timeout`
        seconds."""
        deadline = time.monotonic() + self.options.connect_timeout
        while True:
            try:
                return call(*args, **kwargs)
            except grpc.RpcError as error:
                if (error.code() != grpc.StatusCode.UNAVAILABLE
                        or time.monotonic() >= deadline):
                    raise
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))

    def update_trial(self, trial_id, metrics, step=0):
        """KerasTuner's, sent again while the chief restarts: a per-epoch
        report must not fail the trial in the middle of its `fit`."""
        return self._patiently(super().update_trial, trial_id, metrics, step=step)

    def get_trial(self, trial_id):
        """KerasTuner's, asked again while the chief restarts: KerasTuner's
        tuner asks for the trial right after its `fit`, and an error there
        fails a trial that trained to the end."""
        return self._patiently(super().get_trial, trial_id)

    def end_trial(self, trial):
        """KerasTuner's, sent again while the chief restarts (a chief ends a
        trial once: a second report of its end is ignored)."""
        self._trial_id = None
        values = trial.hyperparameters.values
        if trial.message:
            values[FAILURE_MESSAGE] = str(trial.message)[-MAX_MESSAGE_CHARACTERS:]
        try:
            self._patiently(super().end_trial, trial)
        finally:
            values.pop(FAILURE_MESSAGE, None)


def resolve_options(options, hypermodel, oracle):
    """`options` (default: the environment's) with an identity: when none is
    given, the space's name and configuration, the objective and the
    strategy's class, which a worker must share with its chief."""
    from tfnas import project

    options = options or secure_channel.DistributedOptions.from_environment()
    if not isinstance(options, secure_channel.DistributedOptions):
        raise TypeError("Received an invalid value for `distributed_options`, expected a "
                        "tfnas.DistributedOptions or None. Received: "
                        f"distributed_options={options!r}")
    if options.identity is not None:
        return options
    identity = {"space": project.space_record(hypermodel),
                "objective": str(getattr(oracle.objective, "name", oracle.objective)),
                "strategy": type(oracle).__name__}
    # Sent as JSON: a value JSON cannot hold is compared by its type only
    # (its repr may hold a memory address, which differs between processes).
    identity = json.loads(json.dumps(identity, sort_keys=True,
                                     default=lambda value: f"<{type(value).__name__}>"))
    return dataclasses.replace(options, identity=identity)
