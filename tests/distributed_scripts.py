"""Search scripts that `test_distributed.py` runs as real processes.

Each process finds its role (chief or worker) in KerasTuner's environment
variables, as a user's own script would.

    python tests/distributed_scripts.py faults DIRECTORY
    python tests/distributed_scripts.py multiworker DIRECTORY
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfnas  # noqa: E402
from tfnas import data  # noqa: E402
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
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    tuner.search(digits.train, validation_data=digits.validation, epochs=1, verbose=0)
    print("SEARCH DONE", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
