"""Grappler settings for the functions a model's `fit` traces: one pass, not two.

Before a traced function first runs, TensorFlow's graph optimizer
(grappler) rewrites it. Its defaults run the pass list twice, then the MLIR
"tfg" passes and the memory optimizer (swapping and recomputation, for
accelerators' memory). On a supernet's train step the second pass removes
0.4 % of the nodes, the tfg passes and the memory optimizer none, and
together they cost about a third of the first step's CPU
(benchmarks/supernet_profile.py, benchmarks/results/supernet_cost.md); on a
small candidate's train step they are a fixed cost of every trial
(benchmarks/trial_breakdown.py). `lean_graph_optimization` turns just those
three off; the passes that simplify the graph (pruning, common subgraphs,
constant folding, arithmetic, layout, remapping, dependencies) still run
once, and none of the three changes a value the graph computes.
"""

import tensorflow as tf
from tensorflow.core.protobuf import rewriter_config_pb2

from tfnas import compat

# The settings of TensorFlow's RewriterConfig (grappler) that a lean scope
# turns off.
LEAN_REWRITES = {
    "meta_optimizer_iterations": rewriter_config_pb2.RewriterConfig.ONE,
    "memory_optimization": rewriter_config_pb2.RewriterConfig.NO_MEM_OPT,
    "disable_tfg_optimizer": True,
}


def lean_graph_optimization():
    """A context in which functions first run (on this thread) are
    optimized with `LEAN_REWRITES` on top of the current settings
    (`tfnas.compat.function_rewrites`)."""
    return compat.function_rewrites(**LEAN_REWRITES)


def candidate_graph_optimization():
    """`lean_graph_optimization` for a candidate's `fit`, except that with a
    GPU visible the memory optimizer stays on: it is what lets a candidate
    too big for the accelerator's memory train by swapping or recomputing,
    and a search's candidates are not known to be small."""
    rewrites = dict(LEAN_REWRITES)
    if tf.config.list_logical_devices("GPU"):
        del rewrites["memory_optimization"]
    return compat.function_rewrites(**rewrites)
