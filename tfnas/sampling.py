"""Sampling architectures of a space, as a search would.

`tfnas latency-table` times such samples; the test kit checks spaces on them.
"""

import tempfile


def sample_architectures(space, count, seed=0):
    """Samples up to `count` architectures with tfnas's random oracle.

    The oracle discovers the space's decisions exactly as in a search (a
    `NASTuner` is created in a temporary directory), so conditional decisions
    are sampled only where active.

    Returns:
        `(hyperparameters, samples)`: the space's `HyperParameters` as the
        oracle knows them, and a list of decision-value dicts.
    """
    from tfnas.tuner import NASTuner

    with tempfile.TemporaryDirectory() as directory:
        tuner = NASTuner(space, oracle="random", max_trials=count, seed=seed,
                         directory=directory, progress=False)
        oracle = tuner.oracle
        samples = []
        for index in range(count):
            response = oracle.populate_space(str(index))
            if response["status"] != "RUNNING":
                break
            samples.append(dict(response["values"]))
        return oracle.get_space(), samples
