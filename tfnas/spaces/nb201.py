"""The NAS-Bench-201 space (Dong & Yang, 2020), with its architecture strings."""

import keras

from tfnas import decisions
from tfnas.spaces import ops
from tfnas.spaces.base import SearchSpace, check_int_range

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NUM_NODES = 4
#: The six edges (source node j, target node i), in the string's order.
EDGES = tuple((j, i) for i in range(1, NUM_NODES) for j in range(i))


def edge_name(source, target):
    """The decision name of the edge from node `source` to node `target`."""
    return f"edge_{source}_{target}"


def to_string(values):
    """Decision values to the NAS-Bench-201 string, e.g.
    `|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|...|`."""
    nodes = []
    for target in range(1, NUM_NODES):
        edges = [f"{values[edge_name(source, target)]}~{source}"
                 for source in range(target)]
        nodes.append("|" + "|".join(edges) + "|")
    return "+".join(nodes)


def from_string(text):
    """Parses a NAS-Bench-201 string into decision values."""
    nodes = text.split("+") if isinstance(text, str) else []
    if len(nodes) != NUM_NODES - 1:
        raise ValueError(
            f"Expected a NAS-Bench-201 string of {NUM_NODES - 1} nodes joined by "
            f"'+'. Received: {text!r}"
        )
    values = {}
    for target, node in enumerate(nodes, start=1):
        edges = node.strip("|").split("|") if node.startswith("|") and node.endswith("|") else []
        if len(edges) != target:
            raise ValueError(
                f"Expected node {target} of {text!r} to have {target} edges "
                f"written |op~source|. Received: {node!r}"
            )
        for expected_source, edge in enumerate(edges):
            op, _, source = edge.partition("~")
            if op not in NB201_OPS or source != str(expected_source):
                raise ValueError(
                    f"Invalid edge {edge!r} in {text!r}: expected one of "
                    f"{NB201_OPS} followed by '~{expected_source}'."
                )
            values[edge_name(expected_source, target)] = op
    return values


#: Routes from the input node 0 to the output node 3, as node sequences.
ROUTES = ((0, 3), (0, 1, 3), (0, 2, 3), (0, 1, 2, 3))
PATH_OPS = tuple(op for op in NB201_OPS if op != "none")


def path_features():
    """Names of the path-encoding features: (route, ops along it)."""
    import itertools

    return [(route, ops) for route in ROUTES
            for ops in itertools.product(PATH_OPS, repeat=len(route) - 1)]


def path_encoding(values):
    """The path encoding of White et al. (BANANAS): one binary feature per
    input-to-output path and sequence of operations along it; a path through
    a "none" edge does not exist. 4 + 16 + 16 + 64 = 100 features."""
    present = set()
    for route in ROUTES:
        ops = tuple(values[edge_name(a, b)] for a, b in zip(route, route[1:]))
        if "none" not in ops:
            present.add((route, ops))
    return [1.0 if feature in present else 0.0 for feature in path_features()]


def _edge_op(name, filters):
    if name == "none":
        return ops.Zero()
    if name == "skip_connect":
        return keras.layers.Identity()
    if name == "avg_pool_3x3":
        return ops.Pool("avg", 3)
    return ops.ConvBN(filters, 1 if name == "nor_conv_1x1" else 3, preactivation=True)


class NASBench201Space(SearchSpace):
    """The NAS-Bench-201 cell in its published macro skeleton.

    The cell is a DAG of 4 nodes; each of its 6 edges `edge_{j}_{i}` (from
    node j to node i > j) is one of `NB201_OPS`, and node i sums its incoming
    edges. The network: a 3x3 convolution stem with batch norm; three stages
    of `cells_per_stage` cells with `filters`, 2x and 4x filters, separated by
    residual reduction blocks; batch norm, ReLU, global pooling, classifier.
    All cells share one cell architecture. 5 ** 6 = 15,625 architectures.

    Args:
        input_shape, num_classes, task, learning_rate: see `SearchSpace`.
        cells_per_stage: N, 5 in the benchmark.
        filters: C, 16 in the benchmark.
    """

    space_name = "nb201"

    def __init__(self, input_shape, num_classes, task="classification",
                 learning_rate=1e-3, cells_per_stage=5, filters=16):
        super().__init__(input_shape, num_classes, task, learning_rate)
        self.cells_per_stage = check_int_range(cells_per_stage, "cells_per_stage", 1)
        self.filters = check_int_range(filters, "filters", 1)

    def _cell(self, hp, x, filters):
        nodes = [x]
        for target in range(1, NUM_NODES):
            incoming = []
            for source in range(target):
                candidates = {op: (lambda op=op: _edge_op(op, filters)) for op in NB201_OPS}
                layer = decisions.choose_op(hp, edge_name(source, target), candidates)
                incoming.append(layer(nodes[source]))
            nodes.append(incoming[0] if len(incoming) == 1 else keras.layers.Add()(incoming))
        return nodes[-1]

    def build_features(self, hp, inputs):
        x = ops.ConvBN(self.filters, 3, activation=None)(inputs)
        for stage in range(3):
            filters = self.filters * 2 ** stage
            if stage:
                x = ops.ResNetBasicBlock(filters, strides=2)(x)
            for _ in range(self.cells_per_stage):
                x = self._cell(hp, x, filters)
        x = ops._batch_norm()(x)
        return keras.layers.ReLU()(x)

    def size(self):
        return len(NB201_OPS) ** len(EDGES)

    def describe(self, values):
        return to_string(values)

    def diagram(self, values):
        """The cell: four nodes, an edge per operation other than "none"."""
        edges = [(source, target, values[edge_name(source, target)])
                 for source, target in EDGES if values[edge_name(source, target)] != "none"]
        return [{"title": "cell", "nodes": [f"node {i}" for i in range(NUM_NODES)],
                 "edges": edges}]

    def path_encoding(self, values):
        """See `tfnas.spaces.nb201.path_encoding`."""
        return path_encoding(values)

    def get_config(self):
        return {**super().get_config(), "cells_per_stage": self.cells_per_stage,
                "filters": self.filters}
