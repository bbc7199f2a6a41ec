"""Search scripts that `test_distributed.py` runs as real processes.

Each process finds its role (chief or worker) in KerasTuner's environment
variables, as a user's own script would.

    python tests/distributed_scripts.py faults DIRECTORY
    python tests/distributed_scripts.py multiworker DIRECTORY
    python tests/distributed_scripts.py early_stopping DIRECTORY
"""

import gc
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfnas  # noqa: E402
from tfnas import data  # noqa: E402
from tfnas.early_stopping import MedianStoppingRule  # noqa: E402
from tfnas.oracles.base import NASOracle  # noqa: E402
from tfnas.spaces import MLPSpace  # noqa: E402

FAULTS = ("none", "raise", "nan", "oom")


class FaultySpace(MLPSpace):
    """One small MLP, and a decision that breaks it in three real ways."""

    def build_features(self, hp, inputs):
        fault = hp.Choice("fault", list(FAULTS))
        features = super().build_features(hp, inputs)
        if fault == "raise":
            raise ValueError("deliberate failure of this candidate")
        if fault == "nan":
            return keras.layers.Lambda(lambda x: x * float("nan"))(features)
        if fault == "oom":
            # A 4 TiB kernel: TensorFlow's allocator refuses it.
            return keras.layers.Dense(2**36)(features)
        return features


class BlindableSpace(MLPSpace):
    """A small MLP that sees its inputs ("eyes") or only zeros ("blind":
    chance accuracy whatever it trains)."""

    def build_features(self, hp, inputs):
        if hp.Choice("sight", ["eyes", "blind"]) == "blind":
            inputs = keras.layers.Lambda(lambda x: x * 0.0)(inputs)
        return super().build_features(hp, inputs)


class SeeingFirstOracle(NASOracle):
    """Random architectures that see for the first `seeing` trials, then
    blind ones: which trials an early stopping rule must stop is known."""

    def __init__(self, seeing=2, **kwargs):
        super().__init__(**kwargs)
        self.seeing = seeing

    def propose(self, rng):
        values = self.random_architecture(rng)
        values["sight"] = "eyes" if len(self.trials) < self.seeing else "blind"
        return {"status": "RUNNING", "values": values}


def early_stopping_search(directory, rule, epochs=3, max_trials=4, **kwargs):
    """A search of `BlindableSpace` on digits with `rule`: the last
    `max_trials - 2` trials are blind."""
    import keras_tuner as kt

    digits = data.load_digits_data(batch_size=64, seed=0)
    space = BlindableSpace(digits.input_shape, digits.num_classes, max_layers=1,
                           units=(32,), activations=("relu",))
    oracle = SeeingFirstOracle(objective=kt.Objective("val_accuracy", "max"),
                               max_trials=max_trials, seed=0)
    tuner = tfnas.NASTuner(space, oracle=oracle, early_stopping=rule, directory=directory,
                           project_name="early_stopping", measure_latency=False,
                           count_flops=False, **kwargs)
    tuner.search(digits.train, validation_data=digits.validation, epochs=epochs, verbose=0)
    return tuner


class AnnouncingTuner(tfnas.NASTuner):
    def on_trial_begin(self, trial):
        print(f"RAN {trial.trial_id} {self.oracle.__class__.__name__}", flush=True)
        super().on_trial_begin(trial)


def main(mode, directory):
    strategy = None
    if "TF_CONFIG" in os.environ:
        # Before any other TensorFlow op: collectives are set up at start-up.
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    digits = data.load_digits_data(batch_size=64, seed=0)
    common = dict(directory=directory, seed=0, measure_latency=False, count_flops=False,
                  log_dir=None, progress="always")  # trial lines despite verbose=0
    if mode == "faults":
        space = FaultySpace(digits.input_shape, digits.num_classes, max_layers=1,
                            units=(16,), activations=("relu",))
        tuner = tfnas.NASTuner(space, oracle="random", max_trials=len(FAULTS),
                               project_name="faults",
                               max_consecutive_failed_trials=len(FAULTS), **common)
    elif mode == "multiworker":
        space = MLPSpace(digits.input_shape, digits.num_classes, max_layers=2,
                         units=(16, 32))
        tuner = AnnouncingTuner(space, oracle="random", max_trials=3,
                                project_name="multiworker",
                                distribution_strategy=strategy, **common)
    elif mode == "early_stopping":
        keras.utils.set_random_seed(0)
        early_stopping_search(directory, MedianStoppingRule(min_epochs=1, min_completed=2),
                              log_dir=None, progress="always")
        print("SEARCH DONE", flush=True)
        return
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    tuner.search(digits.train, validation_data=digits.validation, epochs=1, verbose=0)
    print("SEARCH DONE", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
    gc.freeze()  # exit without the final garbage collections (see tfnas/__main__.py)
