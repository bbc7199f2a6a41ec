"""How a supernet's traced steps are prepared for running.

A supernet's train step is one very large graph (every candidate of every
decision, forward and backward, and an optimizer update per weight: about
110,000 nodes for the default cell space). TensorFlow's graph optimizer
(grappler) rewrites such a graph at its first run for longer than an epoch
of the supernet's steps takes to compute, and holds copies of it while it
does (see benchmarks/results/supernet_cost.md). Its rewrites (constant
folding, arithmetic simplification, op fusion...) do not change what a step
computes; they only make later runs faster, which a one-shot search, with a
few epochs of a graph that is built once, does not get back.
"""

import contextlib

import tensorflow as tf

META_OPTIMIZER = "disable_meta_optimizer"


@contextlib.contextmanager
def without_graph_rewrites():
    """Within the context, functions run without grappler's rewrites.

    The setting is the process's (`tf.config.optimizer`); it is restored on
    exit. A traced function keeps the setting of its first run only while
    it runs inside the same setting: run all of a model's steps inside.
    """
    previous = tf.config.optimizer.get_experimental_options().get(META_OPTIMIZER, False)
    tf.config.optimizer.set_experimental_options({META_OPTIMIZER: True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({META_OPTIMIZER: previous})
