"""The chief's gRPC servicer: trial leases and the workers' handshake.

KerasTuner has no lease on trials: a worker that dies for good keeps its
trial "ongoing" forever, and the chief waits for it. `LeasingServicer`
wraps KerasTuner's `OracleServicer` and, for workers that identify
themselves (`tfnas.distributed.WorkerOracleClient` sends its name with
every request and reports every epoch and every few seconds while it
trains):

- records when each worker was last heard from; a worker silent for longer
  than the lease loses its trial, which goes to the front of KerasTuner's
  retry queue (its private `_retry_queue`: KerasTuner has no public way to
  re-issue a trial) for the next worker that asks, and is no longer waited
  for;
  time the chief itself spends busy in a request does not count as silence;
- discards a report (`UpdateTrial`, `EndTrial`) from a worker that no
  longer holds the trial, so a re-issued trial is counted once, and answers
  it with status STOPPED so that the worker stops training and moves on;
  if the trial has not been re-issued yet, the late result is taken;
- answers IDLE instead of STOPPED while other trials still run, so that a
  worker stays to take over a trial whose worker is lost;
- serves `tfnas.Chief/Hello`: a worker's first call, which publishes the
  chief's lease and search arguments; a worker whose arguments differ is
  refused with the differences listed; and `tfnas.Chief/KeepAlive`, which
  a worker calls every few seconds for as long as it takes part (a worker
  alive between trials is waited for; a dead one is not).

Workers that do not identify themselves (KerasTuner's own client) are
served as KerasTuner serves them, without a lease.
"""

import contextlib
import json
import time

import grpc
# KerasTuner's per-oracle locks, which its `synchronized` uses; not exported.
from keras_tuner.engine import trial as trial_module

from tfnas import compat, secure_channel
from tfnas.compat import oracle_lock

protos = compat.keras_tuner_module("protos")
oracle_chief = compat.keras_tuner_module("distribute.oracle_chief")

SERVICE = "tfnas.Chief"
HELLO = f"/{SERVICE}/Hello"
KEEP_ALIVE = f"/{SERVICE}/KeepAlive"
STOPPED = trial_module.TrialStatus.STOPPED
IDLE = trial_module.TrialStatus.IDLE
RUNNING = trial_module.TrialStatus.RUNNING
# A failed trial's reason travels from a worker to the chief under this
# value; the chief's servicer moves it back to `trial.message`.
FAILURE_MESSAGE = "tfnas/failure_message"


def encode(record):
    return json.dumps(record, sort_keys=True).encode()


def decode(data):
    return json.loads(data.decode())


def normalized(identity):
    """`identity` as it reads after a JSON round trip (tuples become lists)."""
    return None if identity is None else json.loads(json.dumps(identity, sort_keys=True))


def differences(chief, worker):
    """["name: chief X, this worker Y", ...] between two identities."""
    if chief is None or worker is None:
        return []
    chief, worker = normalized(chief), normalized(worker)
    return [f"{name}: chief {chief.get(name)!r}, this worker {worker.get(name)!r}"
            for name in sorted(set(chief) | set(worker))
            if chief.get(name) != worker.get(name)]


def take_failure_message(trial):
    """Moves a worker's failure reason from the trial's values to its message."""
    message = trial.hyperparameters.values.pop(FAILURE_MESSAGE, None)
    if message:
        trial.message = message
    return trial


class LeasingServicer(oracle_chief.OracleServicer):
    """KerasTuner's chief servicer with trial leases (see the module).

    Args:
        oracle: The chief's oracle.
        lease_seconds: Silence after which a worker loses its trial.
        identity: The search's arguments that workers must share, or None.
        log: Called with each note (a lost worker, a discarded report, a
            refused worker).
        clock: Monotonic time in seconds.
    """

    def __init__(self, oracle, lease_seconds=secure_channel.DEFAULT_LEASE_SECONDS,
                 identity=None, log=None, clock=time.monotonic):
        super().__init__(oracle)
        self.lease_seconds = float(lease_seconds)
        self.identity = normalized(identity)
        self.log = log or (lambda message: secure_channel.log(message))
        self.clock = clock
        self._busy_total = 0.0  # seconds spent handling requests
        self._last_seen = {}  # tuner id -> (time, busy total then)
        self.lost = []  # (tuner id, trial id) of each lease that ran out
        now = clock()
        # After a restart, the workers of the running trials get a full lease
        # to reconnect (those that died meanwhile lose their trials then).
        for tuner_id in oracle.ongoing_trials:
            self._last_seen[tuner_id] = (now, 0.0)

    def add_to_server(self, server):
        protos.get_service_grpc().add_OracleServicer_to_server(self, server)
        handlers = {name: grpc.unary_unary_rpc_method_handler(
            method, request_deserializer=decode, response_serializer=encode)
            for name, method in (("Hello", self.Hello), ("KeepAlive", self.KeepAlive))}
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, handlers),))

    # Bookkeeping.

    @contextlib.contextmanager
    def _request(self, tuner_id):
        """Marks the chief busy, and `tuner_id` (if any) as heard from."""
        with oracle_lock(self.oracle):  # `expire` sees a request whole or not at all
            now = self.clock()
            if tuner_id is not None:
                self._last_seen[tuner_id] = (now, self._busy_total)
            try:
                yield
            finally:
                self._busy_total += self.clock() - now

    def expire(self):
        """Takes the trials of workers silent past the lease; returns the
        (tuner id, trial id) pairs of the trials taken."""
        taken = []
        with oracle_lock(self.oracle):
            now, busy = self.clock(), self._busy_total
            for tuner_id, (seen, busy_then) in list(self._last_seen.items()):
                silence = (now - seen) - (busy - busy_then)
                if silence <= self.lease_seconds:
                    continue
                del self._last_seen[tuner_id]
                self.oracle.tuner_ids.discard(tuner_id)
                trial = self.oracle.ongoing_trials.pop(tuner_id, None)
                if trial is None or trial.trial_id in self.oracle.end_order:
                    continue
                compat.retry_queue(self.oracle).append(trial.trial_id)  # the next to run
                self.oracle.save()
                taken.append((tuner_id, trial.trial_id))
                self.log(f"worker {tuner_id} has been silent for {silence:.0f} s (lease "
                         f"{self.lease_seconds:g} s): trial {trial.trial_id} goes to the "
                         "next worker that asks")
        self.lost.extend(taken)
        return taken

    def _holds(self, tuner_id, trial_id):
        """Whether `tuner_id` holds `trial_id`; takes it back for the worker
        when the trial waits, unassigned, to be re-issued."""
        ongoing = self.oracle.ongoing_trials.get(tuner_id)
        if ongoing is not None and ongoing.trial_id == trial_id:
            return True
        queue = compat.retry_queue(self.oracle)
        if ongoing is None and trial_id in queue and trial_id not in self.oracle.end_order:
            queue.remove(trial_id)
            trial = self.oracle.trials[trial_id]
            trial.status = RUNNING
            self.oracle.ongoing_trials[tuner_id] = trial
            self.oracle.tuner_ids.add(tuner_id)
            self.log(f"worker {tuner_id} is back: it keeps trial {trial_id}")
            return True
        return False

    def _holder(self, trial_id):
        return next((t for t, trial in self.oracle.ongoing_trials.items()
                     if trial.trial_id == trial_id), None)

    def _stopped(self, trial_id):
        service = protos.get_service()
        trial = self.oracle.trials.get(trial_id)
        if trial is None:
            return service.UpdateTrialResponse()
        copy = trial_module.Trial(trial.hyperparameters, trial_id=trial_id, status=STOPPED)
        return service.UpdateTrialResponse(trial=copy.to_proto())

    # The handlers.

    def Hello(self, request, context):
        tuner_id = str(request.get("tuner_id"))
        with self._request(tuner_id):
            found = differences(self.identity, request.get("identity"))
            if found:
                self._last_seen.pop(tuner_id, None)
                self.log(f"refused worker {tuner_id} from {context.peer()}: its search "
                         f"arguments differ from the chief's ({'; '.join(found)})")
            return {"lease_seconds": self.lease_seconds, "differences": found,
                    "identity": self.identity,
                    # Candidates are seeded by it (NASTuner): the chief's, not the worker's.
                    "seed": getattr(self.oracle, "seed", None)}

    def KeepAlive(self, request, context):
        """A worker between trials (or in a long epoch) is alive."""
        with self._request(secure_channel.caller_tuner_id(context)):
            return {}

    def GetSpace(self, request, context):
        with self._request(secure_channel.caller_tuner_id(context)):
            return super().GetSpace(request, context)

    def UpdateSpace(self, request, context):
        with self._request(secure_channel.caller_tuner_id(context)):
            return super().UpdateSpace(request, context)

    def GetTrial(self, request, context):
        with self._request(secure_channel.caller_tuner_id(context)):
            return super().GetTrial(request, context)

    def GetBestTrials(self, request, context):
        with self._request(secure_channel.caller_tuner_id(context)):
            return super().GetBestTrials(request, context)

    def CreateTrial(self, request, context):
        tuner_id = secure_channel.caller_tuner_id(context)
        with self._request(tuner_id):
            response = super().CreateTrial(request, context)
            others = [t for t in self.oracle.ongoing_trials if t != request.tuner_id]
            if (tuner_id is not None and response.trial.status == _status_proto(STOPPED)
                    and (others or compat.retry_queue(self.oracle))):
                # Stay: a running trial may yet need another worker.
                self.stop_triggered = True
                self.oracle.tuner_ids.add(request.tuner_id)
                response.trial.status = _status_proto(IDLE)
            return response

    def UpdateTrial(self, request, context):
        tuner_id = secure_channel.caller_tuner_id(context)
        with self._request(tuner_id):
            if tuner_id is None:
                return super().UpdateTrial(request, context)
            if not self._holds(tuner_id, request.trial_id):
                if request.metrics:
                    self._discard(tuner_id, request.trial_id, "results")
                return self._stopped(request.trial_id)
            if not request.metrics:  # a progress report: the lease is renewed
                trial = self.oracle.trials[request.trial_id]
                return protos.get_service().UpdateTrialResponse(trial=trial.to_proto())
            return super().UpdateTrial(request, context)

    def EndTrial(self, request, context):
        tuner_id = secure_channel.caller_tuner_id(context)
        with self._request(tuner_id):
            if tuner_id is not None and not self._holds(tuner_id, request.trial.trial_id):
                self._discard(tuner_id, request.trial.trial_id, "end")
                return protos.get_service().EndTrialResponse()
            # KerasTuner's EndTrial, with the worker's failure reason moved
            # back to the trial's message.
            trial = take_failure_message(trial_module.Trial.from_proto(request.trial))
            self.oracle.end_trial(trial)
            return protos.get_service().EndTrialResponse()

    def _discard(self, tuner_id, trial_id, what):
        holder = self._holder(trial_id)
        now = (f"it runs on {holder}" if holder else
               "it has ended" if trial_id in self.oracle.end_order else "it waits for a worker")
        self.log(f"discarded the late {what} of trial {trial_id} from worker {tuner_id}, "
                 f"which lost it ({now})")


def _status_proto(status):
    return trial_module.TrialStatus.to_proto(status)
