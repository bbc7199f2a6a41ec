"""Grappler settings for a supernet's train step (see `tfnas.graph_options`).

A supernet's train step is a ~45,000-node graph (every candidate of every
decision, forward and backward, twice for DARTS): grappler's second pass,
tfg passes and memory optimizer cost about a third of its first step's CPU
and change nothing in it.
"""

from tfnas.graph_options import LEAN_REWRITES, lean_graph_optimization

__all__ = ["LEAN_REWRITES", "lean_graph_optimization"]
