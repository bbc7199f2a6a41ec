"""`NASTuner`: trains candidates with `model.fit` and records their costs.

The tuner is the only place in tfnas that trains. Everything else proposes
architectures (oracles), declares them (spaces) or reads the results
(reports, export).
"""

import collections
import contextlib
import math
import os
import tempfile
import time
import warnings
import zlib

import keras
import keras_tuner as kt
import numpy as np
import tensorflow as tf

from tfnas import checkpoints
from tfnas import data as data_module
from tfnas import distributed
from tfnas import early_stopping as early_stopping_module
from tfnas import epoch_logs
from tfnas import errors
from tfnas import estimation
from tfnas import gc_scope
from tfnas import graph_options
from tfnas import inheritance
from tfnas import integrity
from tfnas import latency
from tfnas import objectives
from tfnas import optimizers
from tfnas import pareto
from tfnas import prebuild
from tfnas import oracles as oracles_module
from tfnas import progress
from tfnas import atomic
from tfnas import compat
from tfnas import project
from tfnas import project_lock
from tfnas import project_safety
from tfnas import screening
from tfnas import trials
from tfnas import tensorboard as search_log
from tfnas.architecture import Architecture

maybe_distribute = kt.engine.tuner.maybe_distribute

COMPLETED = trials.COMPLETED


class CandidateFailed(RuntimeError):
    """A candidate could not be built or trained; the search goes on.

    Like any error of a trial other than `keras_tuner.errors.FailedTrialError`,
    the trial is retried up to the oracle's `max_retries_per_trial` times,
    then recorded as FAILED with this message.
    """


_OUT_OF_MEMORY = (tf.errors.ResourceExhaustedError, MemoryError)


def _out_of_memory(stage, error):
    lines = [line for line in str(error).splitlines() if "OOM" in line]
    detail = lines[0].strip() if lines else type(error).__name__
    return f"out of memory while {stage}: {detail[:300]}"


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training at the end of an epoch whose loss is NaN or infinite.

    Epoch-level, unlike `keras.callbacks.TerminateOnNaN`, so that Keras can
    dispatch batches asynchronously.
    """

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            self.model.stop_training = True


def default_distribution_strategy():
    """MirroredStrategy over all GPUs when there are two or more, else None.

    None means TensorFlow's default strategy (one device).
    """
    if len(tf.config.list_logical_devices("GPU")) >= 2:
        return tf.distribute.MirroredStrategy()
    return None


def seed_globally(*parts):
    """Seeds Python's, NumPy's, TensorFlow's and Keras's global random
    generators (`keras.utils.set_random_seed`).

    Args:
        *parts: What the seed is a function of (e.g. a search's seed and a
            trial's number): their text's CRC-32 is the seed.
    """
    keras.utils.set_random_seed(zlib.crc32("/".join(map(str, parts)).encode()))


@contextlib.contextmanager
def dtype_policy_scope(policy):
    """Keras's global dtype policy set to `policy` inside the block."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _has_labels(data):
    """False when `data` is a dataset that certainly yields no labels."""
    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        return isinstance(spec, (tuple, list)) and len(spec) >= 2
    return True


class NASTuner(kt.Tuner):
    """A KerasTuner tuner for architecture search.

    Used exactly like KerasTuner's tuners: `search(...)`, `get_best_models`,
    `get_best_hyperparameters`, `results_summary`. Every candidate is trained
    with `model.fit` under a `tf.distribute` strategy, and each trial records,
    next to the objective, these metrics:

    - `params`: parameter count;
    - `flops`: floating-point operations of one forward pass on one example;
    - `latency_ms`: median inference time of one batch after warm-up;
    - `train_time_s`: wall-clock time of `model.fit`.

    A candidate that fails to build, whose loss becomes NaN, or that runs out
    of memory is retried up to `max_retries_per_trial` times (none by
    default), then recorded as FAILED with its reason, and the search goes on.

    With KerasTuner's environment variables set (see `tfnas.distributed`),
    the tuner is the chief of a distributed search (`search` serves its
    oracle to the workers and returns when the search is over) or a worker
    (it trains the trials the chief gives it). Under a
    MultiWorkerMirroredStrategy, the processes of a cluster share one worker
    name and train each trial together.

    Args:
        hypermodel: The search space, a `keras_tuner.HyperModel` (e.g. one of
            `tfnas.spaces`) or a function `build(hp) -> keras.Model`. Optional
            only in a subclass that overrides `run_trial`, as in KerasTuner.
        oracle: The search strategy: a name from `tfnas.oracles.ORACLES` or a
            `keras_tuner.Oracle` instance. Defaults to "evolution".
        objective: Metric to optimize, when `oracle` is a name. Defaults to
            "val_accuracy".
        max_trials: Number of trials, when `oracle` is a name. Defaults to 10.
        seed: Seed of the strategy, when `oracle` is a name.
        distribution_strategy: A `tf.distribute.Strategy` for training each
            candidate. Defaults to MirroredStrategy over all GPUs when there
            are two or more, else the default strategy.
        measure_latency: Whether to time inference of each candidate.
        latency_batch_size: Batch size of the latency measurement.
        latency_repeats: Number of timed batches (the median is reported).
        count_flops: Whether to count FLOPs with TensorFlow's profiler.
        latency_predictor: Optional callable from an architecture's decision
            values to a latency in milliseconds, e.g. a
            `tfnas.latency.LatencyTable`; recorded as `predicted_latency_ms`.
        progress: Whether to print one line per finished trial (replacing
            KerasTuner's multi-line trial display): True prints them unless
            `search(verbose=0)` (which silences KerasTuner's display too);
            "always" prints them even then (trial lines without Keras's
            progress bars, as the command line does); False keeps
            KerasTuner's display.
        max_consecutive_failed_trials: Stop the search after this many
            consecutive failed trials, when `oracle` is a name. Defaults to 3.
        hyperparameters, tune_new_entries, allow_new_entries,
            max_retries_per_trial: as for `keras_tuner.Oracle`, when `oracle`
            is a name.
        log_dir: Where to write TensorBoard logs (see `tfnas.tensorboard`):
            "auto" for `<project_dir>/logs`, a path, or None for no logs.
            Training curves go under it unless `search` is given a
            `keras.callbacks.TensorBoard` of its own.
        dtype_policy: The Keras dtype policy candidates are built under, e.g.
            "mixed_float16" or "mixed_bfloat16" for mixed precision on GPUs
            and TPUs. Defaults to the global policy when the tuner is created
            (KerasTuner's `clear_session` before each build would otherwise
            reset it to float32).
        early_stopping: Stop hopeless trials from their learning curves:
            "median", "curve", a `tfnas.early_stopping.StoppingRule`, or None
            (train every trial for all its epochs). Each epoch's logs are
            reported to the oracle (the chief's, in a distributed search),
            which applies the rule; see `tfnas.early_stopping`.
        proxy: A training-free proxy of `tfnas.proxies.PROXIES`, e.g. "naswot":
            each trial trains the best of `proxy_candidates` proposals of the
            strategy by this proxy (`tfnas.screening`), scored on a batch of
            `proxy_batch_size` examples of the training data. tfnas
            strategies only. In a distributed search the chief's oracle
            screens; a worker ignores it.
        proxy_candidates: k, the proposals compared per trial.
        proxy_batch_size: Examples of the proxy's batch.
        distributed_options: A `tfnas.DistributedOptions` for a distributed
            search: the lease on running trials, the workers' connection
            timeout, TLS and the shared token, and the search's identity
            that workers must share with the chief. Defaults to the
            environment's (`TFNAS_TOKEN`, `TFNAS_TLS_CERT`, ...).
        **kwargs: Other `keras_tuner.Tuner` arguments: `directory`,
            `project_name`, `overwrite`, `executions_per_trial`, ...

    Attributes:
        lean_graph_optimization: Whether a candidate's `fit` runs under
            grappler's lean settings (`tfnas.graph_options`: one pass, the
            same values). Set it to False for TensorFlow's defaults.
        fused_optimizer_updates: Whether a candidate's Keras `Adam` updates
            its variables with one fused op per variable during `fit`
            (`tfnas.optimizers.fused_updates`: the same update to float32
            rounding, traced and run faster). Set it to False for Keras's.
    """

    lean_graph_optimization = True
    fused_optimizer_updates = True

    def __init__(
        self,
        hypermodel=None,
        oracle="evolution",
        objective=None,
        max_trials=None,
        seed=None,
        distribution_strategy="auto",
        measure_latency=True,
        latency_batch_size=1,
        latency_repeats=10,
        count_flops=True,
        latency_predictor=None,
        progress=True,
        max_consecutive_failed_trials=None,
        log_dir="auto",
        dtype_policy=None,
        hyperparameters=None,
        tune_new_entries=True,
        allow_new_entries=True,
        max_retries_per_trial=0,
        distributed_options=None,
        early_stopping=None,
        proxy=None,
        proxy_candidates=5,
        proxy_batch_size=64,
        **kwargs,
    ):
        if hypermodel is None and type(self).run_trial is NASTuner.run_trial:
            raise ValueError(
                "Received `hypermodel=None`. A search space is needed unless a "
                "subclass of NASTuner overrides `run_trial` (as in KerasTuner): pass "
                "a keras_tuner.HyperModel or a function `build(hp) -> keras.Model`.")
        oracle_args = {  # KerasTuner's Oracle arguments, and their defaults
            "objective": (objective, None),
            "max_trials": (max_trials, None),
            "seed": (seed, None),
            "max_consecutive_failed_trials": (max_consecutive_failed_trials, None),
            "hyperparameters": (hyperparameters, None),
            "tune_new_entries": (tune_new_entries, True),
            "allow_new_entries": (allow_new_entries, True),
            "max_retries_per_trial": (max_retries_per_trial, 0),
        }
        if isinstance(oracle, str):
            oracle = oracles_module.get(
                oracle,
                space=hypermodel,
                objective=objective or "val_accuracy",
                max_trials=10 if max_trials is None else max_trials,
                seed=seed,
                max_consecutive_failed_trials=max_consecutive_failed_trials or 3,
                hyperparameters=hyperparameters,
                tune_new_entries=tune_new_entries,
                allow_new_entries=allow_new_entries,
                max_retries_per_trial=max_retries_per_trial,
            )
        elif isinstance(oracle, kt.Oracle):
            given = [name for name, (value, default) in oracle_args.items()
                     if value is not default]
            if given:
                raise ValueError(
                    f"Received `oracle` as an Oracle instance together with "
                    f"{given}: set these on the oracle instead."
                )
        else:
            raise ValueError(
                "Received an invalid value for `oracle`, expected a strategy "
                f"name from {sorted(oracles_module.ORACLES)} or a "
                f"keras_tuner.Oracle. Received: oracle={oracle!r}"
            )
        early_stopping = early_stopping_module.get(early_stopping)
        if latency_repeats < 1 or latency_batch_size < 1:
            raise ValueError(
                "Expected positive `latency_repeats` and `latency_batch_size`. "
                f"Received: latency_repeats={latency_repeats}, "
                f"latency_batch_size={latency_batch_size}"
            )
        if distribution_strategy == "auto":
            distribution_strategy = default_distribution_strategy()
        self.dtype_policy = keras.dtype_policies.get(
            dtype_policy if dtype_policy is not None else keras.config.dtype_policy())
        self.role = distributed.check_environment()
        if distribution_strategy is not None:
            distributed.use_multi_worker_keras(distribution_strategy)
        overwrite = kwargs.pop("overwrite", False)
        project_dir = project_safety.open_project(  # the name is checked first
            kwargs.get("directory"), kwargs.get("project_name"), overwrite,
            self.role == "worker")
        if not overwrite and self.role != "worker":
            integrity.check_project(project_dir)
        super().__init__(
            oracle=oracle,
            hypermodel=hypermodel,
            distribution_strategy=distribution_strategy,
            overwrite=False,  # done safely above
            **kwargs,
        )
        if proxy is not None and self.role != "worker":  # the chief's oracle screens
            screening.attach(self.oracle, self.hypermodel, proxy, proxy_candidates,
                             proxy_batch_size)
        self.distributed_options = distributed.resolve_options(
            distributed_options, self.hypermodel, oracle)
        if self.role == "worker":  # the chief's rule judges the worker's reports
            self.oracle = distributed.worker_oracle(self.oracle, self.distributed_options)
        else:
            early_stopping_module.attach(self.oracle, early_stopping)
        self._planned_epochs = None  # the epoch at which the current fit ends
        self._builds = collections.Counter()  # candidate builds per trial, this process
        self.measure_latency = measure_latency
        self.latency_batch_size = latency_batch_size
        self.latency_repeats = latency_repeats
        self.count_flops = count_flops
        if latency_predictor is not None and not callable(latency_predictor):
            raise TypeError(
                "Received an invalid value for `latency_predictor`, expected a "
                "callable from decision values to milliseconds (e.g. a "
                f"tfnas.latency.LatencyTable). Received: {latency_predictor!r}")
        self.latency_predictor = latency_predictor
        self.progress = progress
        self.log_dir = os.path.join(self.project_dir, "logs") if log_dir == "auto" else log_dir
        if not self._reports_results():
            self.log_dir = None  # the cluster's reporting worker logs the trial
        self._search_log = None
        self._logged_decisions = None
        self._barrier = None  # multi-worker clusters: a collective, built once
        self._scratch = None  # multi-worker clusters: a non-reporter's checkpoints
        self._quiet = False  # search(verbose=0)

    # The project's state (see `tfnas.project_safety`).

    def _populate_initial_space(self):
        # KerasTuner resumes only when this tuner's own file exists.
        if self.role != "worker" and project_safety.has_search_state(self.project_dir):
            self.reload()
        else:
            super()._populate_initial_space()

    def reload(self):
        if not self._is_worker():
            project_safety.check_oracle_state(self.project_dir)
            self.oracle.reload()
            project_safety.adopt_orphaned_trials(self.oracle, self.tuner_id,
                                                 self.role == distributed.CHIEF)
        self.set_state(project_safety.read_tuner_state(self._get_tuner_fname()))

    def save(self):
        if not self._is_worker():
            self.oracle.save()
        atomic.write_atomically(self._get_tuner_fname(), self.get_state())

    # Searching.

    @project_lock.exclusive
    def search(self, *fit_args, **fit_kwargs):
        """Runs the search; arguments are those of `model.fit`.

        Raises:
            ValueError: before any training, when the training or validation
                data yields no labels, or the objective is a validation
                metric and no validation data is given (unless a subclass's
                `run_trial` or the HyperModel's `fit` trains on its own), or
                (before the first `fit`) the compiled model never logs the
                objective.
            tfnas.errors.SearchStopped: after too many consecutive failed
                trials (a `RuntimeError`, as in KerasTuner).
        """
        self._quiet = fit_kwargs.get("verbose", 1) == 0
        if self._trains_with_model_fit():
            self._check_data(fit_args, fit_kwargs)
            fit_kwargs = data_module.leave_order_to_dataset(fit_args, fit_kwargs)
        screening.set_batch(self.oracle, fit_args, fit_kwargs)
        if self.role == distributed.CHIEF:
            return distributed.run_chief(self)
        try:
            with gc_scope.SearchCollections():
                return super().search(*fit_args, **fit_kwargs)
        except RuntimeError as error:
            stopped = errors.search_stopped(error)
            if stopped is None:
                raise
            raise stopped from error
        finally:
            if self.role == "worker":
                self.oracle.close()  # the chief must not wait for this worker

    def _trains_with_model_fit(self):
        """Whether trials train with `model.fit` on the data given to `search`
        (no custom `run_trial`, `_build_and_fit_model` or `HyperModel.fit`)."""
        return (type(self).run_trial is NASTuner.run_trial
                and type(self)._build_and_fit_model is NASTuner._build_and_fit_model
                and self.hypermodel is not None
                and type(self.hypermodel).fit is kt.HyperModel.fit)

    def _check_data(self, fit_args, fit_kwargs):
        x = fit_args[0] if fit_args else fit_kwargs.get("x")
        y = fit_args[1] if len(fit_args) > 1 else fit_kwargs.get("y")
        if x is None:
            raise ValueError("Received no training data: pass `x` (and `y`).")
        if isinstance(x, tf.data.Dataset):
            if not _has_labels(x):
                raise ValueError(
                    "Expected the training dataset to yield (inputs, labels) "
                    f"pairs. Received a dataset of: {x.element_spec}"
                )
        elif y is None and not isinstance(x, keras.utils.PyDataset):
            raise ValueError(
                "Received training inputs without labels: pass `y`, or a "
                "tf.data.Dataset of (inputs, labels) pairs."
            )
        validation = fit_kwargs.get("validation_data")
        if validation is not None and not _has_labels(validation):
            raise ValueError(
                "Expected `validation_data` to yield (inputs, labels) pairs. "
                f"Received a dataset of: {validation.element_spec}"
            )
        objective_names = [objectives.epoch_metric(obj)
                           for obj in objectives.objectives_of(self.oracle.objective)]
        if (
            any(name.startswith("val_") for name in objective_names)
            and validation is None
            and not fit_kwargs.get("validation_split")
        ):
            raise ValueError(
                f"The objective {objective_names} is a validation metric, but "
                "`validation_data` and `validation_split` are missing."
            )

    def _build_hypermodel(self, hp):
        with dtype_policy_scope(self.dtype_policy):  # clear_session has reset it
            return super()._build_hypermodel(hp)

    def _reports_results(self):
        """False on the workers of a MultiWorkerMirroredStrategy cluster that
        train the same trial as its first worker, which alone reports it."""
        return getattr(self.oracle, "should_report", True)

    def pre_create_trial(self):
        super().pre_create_trial()
        if getattr(self.oracle, "multi_worker", False):
            # All workers of a cluster wait for the first one's report of the
            # previous trial, so they all receive the same next trial.
            if self._barrier is None:
                strategy = self.distribution_strategy
                self._barrier = tf.function(lambda: strategy.reduce(
                    "SUM", strategy.run(lambda: tf.constant(1.0)), axis=None))
            self._barrier()

    def _get_checkpoint_fname(self, trial_id):
        path = super()._get_checkpoint_fname(trial_id)
        if self._reports_results():
            return path
        # Another worker of the cluster writes the same file.
        return os.path.join(self._scratch_dir(), trial_id, os.path.basename(path))

    def _scratch_dir(self):
        if self._scratch is None:
            self._scratch = tempfile.mkdtemp(prefix="tfnas-worker-")
        return self._scratch

    def on_search_begin(self):
        super().on_search_begin()
        if self.progress:
            self.oracle.verbose = 0  # our one-line reports replace its display
        record = project.update(self, started_at=time.time())
        if self.log_dir:
            self._search_log = search_log.SearchLog(
                self.log_dir, self.oracle.objective.name, self.oracle.objective.direction,
                describe=self._describer(),
                diagram=getattr(self.hypermodel, "diagram", None),
                started_at=record["started_at"])
            self._write_experiment()

    def _write_experiment(self):
        if self.role == "worker":
            return  # the chief, which knows every decision, writes it
        hyperparameters = self.oracle.get_space()
        names = [hp.name for hp in hyperparameters.space]
        if names != self._logged_decisions:
            self._search_log.write_experiment(hyperparameters)
            self._logged_decisions = names

    def on_epoch_end(self, trial, model, epoch, logs=None):
        super().on_epoch_end(trial, model, epoch, logs=logs)
        keep_lease = getattr(self.oracle, "report_progress", None)  # a worker's client
        if keep_lease is not None and not keep_lease(trial.trial_id, epoch):
            model.stop_training = True  # the chief gave the trial to another worker
        elif early_stopping_module.report_epoch(self.oracle, trial.trial_id, epoch, logs,
                                                self._planned_epochs):
            model.stop_training = True  # the oracle's early stopping rule

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        self._report_trial(self.oracle.get_trial(trial.trial_id))

    def _report_trial(self, finished):
        """Prints a finished trial's line and logs it to TensorBoard."""
        if self.progress == "always" or (self.progress and not self._quiet):
            line = progress.trial_line(finished, self.oracle.objective.name,
                                       self._describer())
            print(line, flush=True)
        if self._search_log is not None:
            self._write_experiment()
            # A KerasTuner worker's oracle client cannot list the trials:
            # only the trial's own session is logged there.
            known = getattr(self.oracle, "trials", None)
            number = None if known is None else sum(
                1 for t in known.values() if t.status not in (trials.RUNNING, trials.IDLE))
            best = [t for t in self.oracle.get_best_trials(1) if t.status == COMPLETED]
            scalars = getattr(self.oracle, "scalars", None)
            self._search_log.log_trial(finished, number, best[0] if best else None,
                                       scalars() if scalars is not None else None)

    def on_search_end(self):
        super().on_search_end()
        if self._search_log is not None:
            self._search_log.close()
            self._search_log = None

    def run_trial(self, trial, *args, **kwargs):
        callbacks = list(kwargs.get("callbacks") or [])
        if self.log_dir and not any(isinstance(c, keras.callbacks.TensorBoard)
                                    for c in callbacks):
            callbacks.append(epoch_logs.EpochTensorBoard(log_dir=self.log_dir))
        kwargs["callbacks"] = callbacks
        trial_dir = os.path.join(self.project_dir, f"trial_{trial.trial_id}")
        with atomic.fatal_when_disk_full(trial_dir):
            return super().run_trial(trial, *args, **kwargs)

    def _configure_tensorboard_dir(self, callbacks, trial, execution=0):
        """Points TensorBoard callbacks at `<log_dir>/<trial_id>/execution<n>`.

        Unlike KerasTuner, adds no HParams callback: `tfnas.tensorboard`
        writes each trial's session with its architecture and costs.
        """
        for callback in callbacks:
            if isinstance(callback, keras.callbacks.TensorBoard):
                callback.log_dir = self._get_tensorboard_dir(
                    callback.log_dir, trial.trial_id, execution)

    def _describer(self):
        return getattr(self.hypermodel, "describe", None)

    def _build_and_fit_model(self, trial, *args, **kwargs):
        hp = trial.hyperparameters
        donor = inheritance.load_parent(self, trial)  # builds the parent: before the child
        self.seed_candidate(trial)
        try:
            model = self._try_build(hp)
        except (kt.errors.FatalError, kt.errors.FailedTrialError):
            raise
        except _OUT_OF_MEMORY as error:
            raise CandidateFailed(_out_of_memory("building", error)) from error
        except Exception as error:
            raise CandidateFailed(
                "building the architecture raised "
                + errors.root_cause(f"{type(error).__name__}: {error}")) from error

        self._apply_budget(trial, model, kwargs)
        inherited = inheritance.inherit(model, donor, kwargs,  # and its fewer epochs
                                        seed=trial.trial_id)
        plain_fit = type(self.hypermodel).fit is kt.HyperModel.fit  # data reach model.fit
        if plain_fit:  # a user's fit logs its own
            validation = kwargs.get("validation_data") is not None or bool(
                kwargs.get("validation_split"))
            objectives.check_logged(self.oracle.objective, model, validation)
        kwargs["callbacks"] = self._callbacks(kwargs.get("callbacks"))
        self._planned_epochs = kwargs.get("epochs", 1)
        start = time.perf_counter()
        if plain_fit:
            prebuild.build_training_state(model, prebuild.fit_data_spec(args, kwargs))
        try:
            with self._graph_optimization(), self._fused_updates(model):
                results = self.hypermodel.fit(hp, model, *args, **kwargs)
        except _OUT_OF_MEMORY as error:
            raise CandidateFailed(_out_of_memory("training", error)) from error
        train_time = time.perf_counter() - start

        remember_s = inheritance.remember(self, trial, model,  # the parent of children to come
                                          results)
        metrics = self._results_to_metrics(results)
        metrics.update(self._costs(model, hp))
        metrics["train_time_s"] = train_time
        metrics.update(inherited)
        if remember_s:
            metrics["inherit_remember_s"] = remember_s
        objectives.add_derived_metrics(self.oracle.objective, metrics)
        if isinstance(results, keras.callbacks.History):
            metrics["epochs"] = float(len(results.history.get("loss", [])))
        if self._reports_results():
            atomic.write_atomically(self._get_build_config_fname(trial.trial_id),
                                    model.get_build_config())
        return metrics

    def seed_candidate(self, trial):
        """Seeds Python's, NumPy's, TensorFlow's and Keras's global random
        generators (`keras.utils.set_random_seed`) for the model that `trial`
        builds and trains next. `run_trial` calls it before each build; a
        subclass that builds its own models in `run_trial` can call it too.

        The model's initial weights and the randomness of its training
        (dropout, a shuffle without a seed of its own) then depend only on
        the oracle's seed, the trial's number and the execution, not on what
        ran before in the process (KerasTuner's discovery of the space builds
        models from unseeded values). The execution counts this trial's
        builds in this process: each of `executions_per_trial`, and a retry in
        the same process, start from other weights; a retry after a resume or
        on another worker starts from the first attempt's. An oracle without
        a seed leaves the generators alone.

        Args:
            trial: The `keras_tuner.engine.trial.Trial` about to be trained.
        """
        seed = getattr(self.oracle, "seed", None)
        execution = self._builds[trial.trial_id]
        self._builds[trial.trial_id] += 1
        if seed is None:
            return
        # The number, not the id: "07" and "007" (more trials) are one trial.
        number = int(trial.trial_id) if trial.trial_id.isdigit() else trial.trial_id
        seed_globally(seed, number, execution)

    def _graph_optimization(self):
        """The grappler settings a candidate's `fit` runs under (see the
        `lean_graph_optimization` attribute)."""
        if self.lean_graph_optimization:
            return graph_options.candidate_graph_optimization()
        return contextlib.nullcontext()

    def _fused_updates(self, model):
        """Adam's fused update during a candidate's `fit` (see the
        `fused_optimizer_updates` attribute)."""
        if self.fused_optimizer_updates:
            return optimizers.fused_updates(model)
        return contextlib.nullcontext()

    def _callbacks(self, callbacks):
        """The fit callbacks, plus a stop on a non-finite loss.

        Keras turns off its asynchronous batch dispatch when a callback has
        batch hooks; KerasTuner's TunerCallback has them, forwarding to this
        tuner's `on_batch_begin`/`on_batch_end`. Unless a subclass overrides
        those, they do nothing, so the callback is marked async-safe.
        """
        callbacks = list(callbacks or [])
        checkpoints.make_atomic(callbacks)  # a full disk or a kill leaves no half file
        batch_hooks_unused = (type(self).on_batch_begin is kt.Tuner.on_batch_begin
                              and type(self).on_batch_end is kt.Tuner.on_batch_end)
        tuner_callback = compat.tuner_callback_class()
        for callback in callbacks:
            if batch_hooks_unused and isinstance(callback, tuner_callback):
                callback.async_safe = True
        return callbacks + [StopOnNonFiniteLoss()]

    def _apply_budget(self, trial, model, fit_kwargs):
        """Honours a trial's training budget (successive halving, Hyperband).

        `tuner/epochs` and `tuner/initial_epoch` set the epochs to train;
        `tuner/trial_id` names the trial whose best weights warm-start this
        one, as in KerasTuner's Hyperband; its optimizer's state (Adam's
        moments, its step count) comes with them, so that the promoted trial
        continues the parent's training instead of restarting the optimizer.
        """
        values = trial.hyperparameters.values
        if trials.EPOCHS not in values:
            return
        fit_kwargs["epochs"] = values[trials.EPOCHS]
        fit_kwargs["initial_epoch"] = values.get(trials.INITIAL_EPOCH, 0)
        parent = values.get(trials.PARENT)
        if parent is None:
            return
        checkpoint = kt.Tuner._get_checkpoint_fname(self, parent)  # the reporter's
        if not os.path.exists(checkpoint):
            # E.g. the parent trained on another worker's disk: train the
            # whole budget from scratch rather than fail the trial.
            warnings.warn(f"Trial {trial.trial_id}: no checkpoint of trial {parent} "
                          f"at {checkpoint}; training from scratch.")
            fit_kwargs["initial_epoch"] = 0
            return
        with maybe_distribute(self.distribution_strategy):
            checkpoints.build_optimizer(model)  # to receive the parent's state
            model.load_weights(checkpoint)

    def _results_to_metrics(self, results):
        """Metrics of the best epoch of a History (or a user's fit result)."""
        objective = self.oracle.objective
        if isinstance(results, (int, float, np.floating)):
            results = {objective.name: float(results)}
        if isinstance(results, dict):
            metrics = {name: float(value) for name, value in results.items()}
            if objective.name not in metrics:
                needed = [objectives.epoch_metric(o) for o in objectives.objectives_of(objective)]
                if not all(name in metrics for name in needed):
                    raise kt.errors.FatalValueError(
                        f"Expected the dict returned by HyperModel.fit() to have the "
                        f"objective {needed} among its keys. Received: {sorted(metrics)}")
                if hasattr(objective, "name_to_direction"):  # a list: MultiObjective
                    metrics[objective.name] = float(objective.get_value(metrics))
            if not all(math.isfinite(v) for v in metrics.values()):
                raise CandidateFailed(f"training diverged: non-finite metrics {metrics}")
            return metrics
        if not isinstance(results, keras.callbacks.History):
            raise kt.errors.FatalTypeError(
                "Expected HyperModel.fit() to return a History, a dict or a "
                f"float. Received: {type(results).__name__}"
            )
        history = results.history
        for epoch, loss in enumerate(history.get("loss", [])):
            if not math.isfinite(loss):
                raise CandidateFailed(
                    f"training diverged: the loss became {loss} in epoch {epoch + 1}"
                )
        name = objectives.epoch_metric(objective)
        epochs = max((len(series) for series in history.values()), default=0)
        per_epoch = [{metric: series[epoch] for metric, series in history.items()
                      if len(series) == epochs} for epoch in range(epochs)]
        if name in history:
            values = np.asarray(history[name], dtype=float)
        elif per_epoch and objective.has_value(per_epoch[0]):
            # Computed per epoch, as KerasTuner does (e.g. a list objective).
            values = np.asarray([objective.get_value(logs) for logs in per_epoch], dtype=float)
        else:
            raise kt.errors.FatalValueError(
                f"The objective `{name}` is not among the metrics that "
                f"training logged: {sorted(history)}"
            )
        best = int(np.nanargmax(values) if objective.direction == "max"
                   else np.nanargmin(values))
        metrics = {metric: float(series[best]) for metric, series in history.items()
                   if len(series) == len(values)}
        metrics.setdefault(name, float(values[best]))
        return metrics

    def _costs(self, model, hp):
        costs = {"params": float(estimation.count_params(model))}
        forward = estimation.forward_function(model)  # traced once for both
        if self.latency_predictor is not None:
            values = Architecture.from_hyperparameters(hp).values
            costs[latency.PREDICTED_LATENCY] = float(self.latency_predictor(values))
        if self.count_flops:
            flops = estimation.count_flops(model, forward=forward)
            if flops is not None:
                costs["flops"] = float(flops)
        if self.measure_latency:
            measured = estimation.measure_latency(
                model,
                batch_size=self.latency_batch_size,
                repeats=self.latency_repeats,
                forward=forward,
            )
            if measured is not None:
                costs["latency_ms"] = measured
        return costs

    def load_model(self, trial):
        # KerasTuner's checkpoints hold optimizer slots that a freshly built
        # model has not created; only the weights matter for a loaded model.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            return super().load_model(trial)

    # Results.

    def get_best_architectures(self, num_architectures=1):
        """The `Architecture`s of the best completed trials, best first."""
        return [
            Architecture.from_trial(trial)
            for trial in self.oracle.get_best_trials(num_architectures)
            if trial.status == COMPLETED
        ]

    def get_pareto_front(self, objectives=None):
        """The completed trials that no other completed trial dominates.

        Args:
            objectives: Two or more `keras_tuner.Objective`s or `(name,
                direction)` pairs over the trials' metrics, e.g.
                `[("val_accuracy", "max"), ("latency_ms", "min")]`. Defaults
                to the oracle's `pareto_objectives`.

        Returns:
            The front's trials, in the order they finished.
        """
        objectives = objectives or getattr(self.oracle, "pareto_objectives", None)
        if not objectives:
            raise ValueError(
                "Pass `objectives`, e.g. [('val_accuracy', 'max'), ('latency_ms', "
                "'min')]: the oracle has no `pareto_objectives`.")
        ended = [self.oracle.trials[i] for i in self.oracle.end_order]
        return pareto.pareto_front(ended, objectives)

    def get_failed_trials(self):
        """Trials that ended without a result, in start order."""
        return [
            trial
            for trial in self.oracle.trials.values()
            if trial.status not in (COMPLETED, trials.RUNNING, trials.IDLE)
        ]

    def results_summary(self, num_trials=10):
        """Prints the best trials, one line each, then the failed ones."""
        objective = self.oracle.objective
        completed = [
            t for t in self.oracle.get_best_trials(num_trials) if t.status == COMPLETED
        ]
        print(f"Results summary for {self.project_dir}")
        print(f"Objective: {objective.name} ({objective.direction})")
        print(f"Best {len(completed)} trials:")
        for trial in completed:
            print("  " + progress.trial_line(trial, objective.name, self._describer()))
        failed = self.get_failed_trials()
        if failed:
            print(f"Failed trials ({len(failed)}):")
            for trial in failed:
                print("  " + progress.trial_line(trial, objective.name, self._describer()))

    @contextlib.contextmanager
    def training_scope(self):
        """The scopes candidates are built in: the distribution strategy and dtype policy."""
        with maybe_distribute(self.distribution_strategy), dtype_policy_scope(self.dtype_policy):
            yield

    @project_lock.exclusive
    def train_best(self, x, validation_data=None, test_data=None, **options):
        """Trains the best architecture fully, evaluates it and exports it.

        The final training of NAS papers, through this tuner's fit path
        (its distribution strategy, dtype policy and callbacks): the best
        completed trial (or `trial_id`), optionally scaled up by
        `space_args`, trained on `x` plus `validation_data` with a cosine
        schedule and warm-up, checkpointed every epoch (a run with the same
        settings resumes an interrupted one), evaluated on `test_data` and
        exported. See `tfnas.final_training`.

        Args:
            x: Training data: a tf.data.Dataset of (inputs, labels) batches
                or an (inputs, labels) pair of arrays.
            validation_data: The search's validation data, trained on too.
            test_data: Evaluated after training (and the search's model with it).
            **options: `trial_id`, `space_args` (a dict of the space's
                skeleton arguments; arguments that would change the
                architecture's decisions raise
                `tfnas.scale_up.DecisionChangeError`), `epochs` (30),
                `batch_size` (32), `learning_rate` (the space's), `warmup_epochs`
                (5 % of the epochs), `augment` (True, or names of
                `tfnas.augmentation.AUGMENTATIONS`), `seed`, `output_dir`
                (`<project_dir>/final`), `formats`, `overwrite`, `verbose`,
                `callbacks`.

        Returns:
            The final training's record (also in `<output_dir>/final_training.json`).
        """
        from tfnas import final_training

        return final_training.train_best(self, x, validation_data, test_data, **options)

    def export_best(self, path, formats=("saved_model", "keras"), model=None):
        """Exports the best model and its architecture; see `tfnas.export`.

        Args:
            path: Output directory.
            formats: Any of "saved_model", "keras" and "tflite".
            model: The best trial's model if already loaded with
                `load_model` (not built and loaded again).
        """
        from tfnas import export

        with atomic.fatal_when_disk_full(path):
            return export.export_best(self, path, formats=formats, model=model)
