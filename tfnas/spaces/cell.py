"""The cell (micro) space of NASNet, ENAS and DARTS."""

import math

import keras

from tfnas import decisions
from tfnas.spaces import ops
from tfnas.spaces.base import SearchSpace, check_choices, check_int_range

CELL_TYPES = ("normal", "reduce")


class CellSpace(SearchSpace):
    """Stacked normal and reduction cells, each of `num_blocks` blocks (or
    of a searched number of blocks, from `min_blocks` to `max_blocks`).

    A cell has two inputs, the outputs of the two previous cells (each first
    projected to the cell's filters by a 1x1 ReLU-conv-BN, or a factorized
    reduction when the older one is larger). Block b picks two inputs among
    those two and the outputs of blocks 0..b-1, applies one operation to each
    and adds the results; the cell's output concatenates all block outputs.
    A reduction cell (at 1/3 and 2/3 of the depth) first halves the
    resolution of its inputs with factorized reductions and doubles the
    filters (ENAS's reduction), so every candidate input of a block has the
    same shape. All normal cells share one architecture, all reduction cells
    another.

    Decisions, for each cell type in ("normal", "reduce") and block b:
    `{type}/block_{b}/input_{k}` (k = 0, 1), whose values are the labels
    "c_k-2", "c_k-1", "b0", "b1", ..., and `{type}/block_{b}/op_{k}`, one of
    `operations` (default `ops.CELL_OPS`). With `min_blocks < max_blocks`,
    also `num_blocks`, the blocks per cell (both cell types), declared as a
    `tfnas.decisions.repeat` so that block b's decisions exist only when
    `num_blocks > b`: progressive NAS (`pnas`, `dpp`) grows cells block by
    block, and a supernet mixes the cell's outputs at each depth (zero-padded
    to the widest concatenation, see `tfnas.supernet.builder`).

    Args:
        input_shape, num_classes, task, learning_rate: see `SearchSpace`.
        num_cells: Number of cells, at least 3 (two are reduction cells).
        num_blocks: B, blocks per cell (4 by default): the largest number
            when `min_blocks` is given.
        min_blocks: Smallest number of blocks per cell when it is searched.
            Defaults to `max_blocks` (not searched).
        max_blocks: Largest number of blocks per cell; the same as
            `num_blocks` (give one of them).
        filters: Filters of the first cells (doubled at each reduction).
        stem_multiplier: The stem has `stem_multiplier * filters` channels.
        operations: Candidate operations, a subset of `ops.CELL_OPS`.
    """

    space_name = "cell"

    def __init__(self, input_shape, num_classes, task="classification",
                 learning_rate=1e-3, num_cells=5, num_blocks=None, filters=16,
                 stem_multiplier=3, operations=ops.CELL_OPS, min_blocks=None,
                 max_blocks=None):
        super().__init__(input_shape, num_classes, task, learning_rate)
        self.num_cells = check_int_range(num_cells, "num_cells", 3)
        self.max_blocks = _max_blocks(num_blocks, max_blocks)
        self.min_blocks = self.max_blocks if min_blocks is None else check_int_range(
            min_blocks, "min_blocks", 1, self.max_blocks,
            expected=f"an integer from 1 to max_blocks={self.max_blocks}")
        self.num_blocks = self.max_blocks
        self.filters = check_int_range(filters, "filters", 2)
        if self.filters % 2:
            raise ValueError(
                "Received an invalid value for `filters`, expected an even "
                f"number (factorized reductions split it in two). Received: {filters}"
            )
        self.stem_multiplier = check_int_range(stem_multiplier, "stem_multiplier", 1)
        self.operations = check_choices(operations, "operations", str, ops.CELL_OPS)

    def reduction_indices(self):
        """Indices of the reduction cells."""
        return sorted({self.num_cells // 3, 2 * self.num_cells // 3})

    @staticmethod
    def input_labels(block):
        return ["c_k-2", "c_k-1"] + [f"b{i}" for i in range(block)]

    def _cell(self, hp, index, cell_type, older, previous, filters):
        # Layers are named "{role}.{variant}", their keys for weight
        # inheritance (tfnas.inheritance).
        reduce_inputs = cell_type == "reduce"
        cell = f"cell_{index}"
        if older.shape[1] != previous.shape[1]:
            older = ops.FactorizedReduce(filters, name=f"{cell}_input_0.reduce")(older)
        else:
            older = ops.ConvBN(filters, 1, preactivation=True,
                               name=f"{cell}_input_0.project")(older)
        previous = ops.ConvBN(filters, 1, preactivation=True,
                              name=f"{cell}_input_1.project")(previous)
        if reduce_inputs:
            older = ops.FactorizedReduce(filters, name=f"{cell}_input_0.halve")(older)
            previous = ops.FactorizedReduce(filters, name=f"{cell}_input_1.halve")(previous)
        states = [older, previous]

        def add_block(number, _):
            branches = []
            for k in (0, 1):
                prefix = f"{cell_type}/block_{number}"
                x = decisions.choose_inputs(
                    hp, f"{prefix}/input_{k}", states, n_chosen=1,
                    labels=self.input_labels(number))
                key = f"{cell}_block_{number}_op_{k}"
                candidates = {op: (lambda op=op: ops.cell_op(op, filters, f"{key}.{op}"))
                              for op in self.operations}
                branches.append(decisions.choose_op(hp, f"{prefix}/op_{k}", candidates)(x))
            states.append(keras.layers.Add()(branches))
            return states[-1]

        if self.min_blocks == self.max_blocks:
            for number in range(self.max_blocks):
                add_block(number, None)
            return keras.layers.Concatenate()(states[2:])

        def grown(number, x):
            # A cell of `number + 1` blocks outputs them all, concatenated.
            add_block(number, x)
            return keras.layers.Concatenate()(states[2:]) if number else states[2]

        depths = range(self.min_blocks, self.max_blocks + 1)
        return decisions.repeat(hp, "num_blocks", grown, previous, depths=depths)

    def build_features(self, hp, inputs):
        stem = ops.ConvBN(self.stem_multiplier * self.filters, 3, activation=None)(inputs)
        older = previous = stem
        filters = self.filters
        for index in range(self.num_cells):
            cell_type = "normal"
            if index in self.reduction_indices():
                cell_type, filters = "reduce", filters * 2
            older, previous = previous, self._cell(hp, index, cell_type, older, previous,
                                                   filters)
        return keras.layers.ReLU()(previous)

    def size(self):
        return sum(
            math.prod(((2 + block) * len(self.operations)) ** 2 for block in range(depth))
            ** len(CELL_TYPES) for depth in range(self.min_blocks, self.max_blocks + 1))

    def blocks(self, values):
        """The number of blocks per cell of the architecture `values`."""
        return values.get("num_blocks", self.max_blocks)

    def describe(self, values):
        cells = []
        for cell_type in CELL_TYPES:
            blocks = []
            for block in range(self.blocks(values)):
                prefix = f"{cell_type}/block_{block}"
                blocks.append("+".join(
                    f"{values[f'{prefix}/op_{k}']}({values[f'{prefix}/input_{k}']})"
                    for k in (0, 1)))
            cells.append(f"{cell_type}: " + " ".join(blocks))
        return " | ".join(cells)

    def diagram(self, values):
        """One graph per cell type: the two cell inputs, the blocks, the concat."""
        graphs = []
        for cell_type in CELL_TYPES:
            labels = self.input_labels(self.blocks(values))
            nodes = labels + ["concat"]
            edges = []
            for block in range(self.blocks(values)):
                prefix = f"{cell_type}/block_{block}"
                for k in (0, 1):
                    source = labels.index(values[f"{prefix}/input_{k}"])
                    edges.append((source, block + 2, values[f"{prefix}/op_{k}"]))
                edges.append((block + 2, len(labels), ""))
            graphs.append({"title": f"{cell_type} cell", "nodes": nodes, "edges": edges})
        return graphs

    def path_encoding(self, values):
        """Path encoding (White et al., BANANAS) of a cell architecture.

        A feature per path from a cell input ("c_k-2" or "c_k-1") through
        operations to a block, named `"{type}:{input}:{op}>{op}..."`, valued
        by how many times the path occurs. Returned as a dict (sparse); the
        predictor vectorizes the union of paths it sees.
        """
        features = {}
        for cell_type in CELL_TYPES:
            paths = []  # per block: list of (source, ops)
            for block in range(self.blocks(values)):
                block_paths = []
                for k in (0, 1):
                    prefix = f"{cell_type}/block_{block}"
                    source, op = values[f"{prefix}/input_{k}"], values[f"{prefix}/op_{k}"]
                    if source.startswith("c_"):
                        block_paths.append((source, (op,)))
                    else:
                        block_paths.extend((origin, trail + (op,))
                                           for origin, trail in paths[int(source[1:])])
                paths.append(block_paths)
                for origin, trail in block_paths:
                    key = f"{cell_type}:{origin}:{'>'.join(trail)}"
                    features[key] = features.get(key, 0.0) + 1.0
        return features

    def get_config(self):
        # A fixed block count is `num_blocks` (as before min/max_blocks existed).
        blocks = ({"num_blocks": self.max_blocks} if self.min_blocks == self.max_blocks
                  else {"min_blocks": self.min_blocks, "max_blocks": self.max_blocks})
        return {**super().get_config(), "num_cells": self.num_cells, **blocks,
                "filters": self.filters,
                "stem_multiplier": self.stem_multiplier,
                "operations": list(self.operations)}


def _max_blocks(num_blocks, max_blocks):
    """The largest number of blocks per cell, from `num_blocks` or `max_blocks`."""
    if num_blocks is not None and max_blocks is not None and num_blocks != max_blocks:
        raise ValueError(
            "Received both `num_blocks` and `max_blocks`, which name the same number "
            "(the largest number of blocks per cell), with different values. Give one "
            f"of them. Received: num_blocks={num_blocks}, max_blocks={max_blocks}")
    if max_blocks is not None:
        return check_int_range(max_blocks, "max_blocks", 1)
    return check_int_range(4 if num_blocks is None else num_blocks, "num_blocks", 1)
