"""Grappler settings for a supernet's train step: one pass, not two.

Before a traced function first runs, TensorFlow's graph optimizer
(grappler) rewrites it. A supernet's train step is a ~45,000-node graph
(every candidate of every decision, forward and backward, twice for DARTS),
and grappler's defaults run its pass list twice, then the MLIR "tfg"
passes and the memory optimizer (swapping and recomputation, for
accelerators' memory). On that graph the second pass removes 0.4 % of the
nodes, the tfg passes and the memory optimizer none, and together they
cost about a third of the first step's CPU (benchmarks/supernet_profile.py
with `TF_CPP_VMODULE=meta_optimizer=1`; benchmarks/results/supernet_cost.md).
`lean_graph_optimization` turns just those three off; the passes that
simplify the graph (pruning, common subgraphs, constant folding,
arithmetic, layout, remapping, dependencies) still run once, and none of
the three changes a value the graph computes.
"""

from tensorflow.core.protobuf import rewriter_config_pb2

from tfnas import compat

# The settings of TensorFlow's RewriterConfig (grappler) that a supernet's
# fit turns off.
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
