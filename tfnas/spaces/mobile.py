"""The factorized hierarchical mobile space of MnasNet (Tan et al., 2019)."""

import math

from tfnas import decisions
from tfnas.spaces import ops
from tfnas.spaces.base import SearchSpace, chain_graph, check_int_range
from tfnas.supernet import elastic

#: MobileNetV2's seven blocks: (output filters, layers, first stride).
MOBILENET_V2_BLOCKS = ((16, 1, 1), (24, 2, 2), (32, 3, 2), (64, 4, 2),
                       (96, 3, 1), (160, 3, 2), (320, 1, 1))
#: Convolution types: name -> (MobileBlock kind, expansion).
CONV_TYPES = {
    "conv": ("conv", 1),
    "dwconv": ("separable", 1),
    "mbconv1": ("inverted", 1),
    "mbconv3": ("inverted", 3),
    "mbconv6": ("inverted", 6),
}
KERNELS = (3, 5)
SE_RATIOS = (0.0, 0.25)
SKIPS = ("identity", "none")
FILTER_MULTIPLIERS = (0.75, 1.0, 1.25)
LAYER_OFFSETS = (-1, 0, 1)


def _round_filters(filters, divisor=8):
    """Rounds to a multiple of `divisor`, not below 90% (MobileNet's rule)."""
    rounded = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * filters else rounded


def _apply(value, function):
    """`function(value)` of a plain value or of a shared one (a supernet's)."""
    return value.map(function) if hasattr(value, "map") else function(value)


class MobileSpace(SearchSpace):
    """MnasNet's space: seven blocks on MobileNetV2's skeleton.

    Per block b, decisions shared by all its layers: `block_{b}/conv` (one of
    `CONV_TYPES`: regular, depthwise-separable, or inverted residual with
    expansion 1, 3 or 6), `block_{b}/kernel` (3 or 5), `block_{b}/se_ratio`
    (0 or 0.25), `block_{b}/skip` ("identity" residual where shapes allow, or
    "none"), `block_{b}/filters` (MobileNetV2's filters times 0.75, 1.0 or
    1.25), and `block_{b}/layers`, MobileNetV2's layer count plus -1, 0 or +1
    (at least 1). The skeleton: a stride-2 3x3 convolution stem with 32
    filters, the blocks, a 1x1 convolution with 1280 filters, pooling and the
    classifier.

    Args:
        input_shape, num_classes, task, learning_rate: see `SearchSpace`.
        width_multiplier: Scales every filter count (stem, blocks, head).
        num_blocks: How many of MobileNetV2's seven blocks the skeleton
            keeps, from the first (1 to 7; fewer make a small space whose
            blocks have the same decisions).
    """

    space_name = "mobile"

    def __init__(self, input_shape, num_classes, task="classification",
                 learning_rate=1e-3, width_multiplier=1.0, num_blocks=7):
        super().__init__(input_shape, num_classes, task, learning_rate)
        check_int_range(num_blocks, "num_blocks", 1, len(MOBILENET_V2_BLOCKS))
        if not width_multiplier > 0:
            raise ValueError(
                "Received an invalid value for `width_multiplier`, expected a "
                f"positive number. Received: width_multiplier={width_multiplier!r}"
            )
        self.width_multiplier = float(width_multiplier)
        self.num_blocks = int(num_blocks)
        self.blocks = MOBILENET_V2_BLOCKS[:self.num_blocks]

    def layer_choices(self, block):
        base = self.blocks[block][1]
        return sorted({max(1, base + offset) for offset in LAYER_OFFSETS})

    def _filters(self, filters):
        return _round_filters(filters * self.width_multiplier)

    def build_features(self, hp, inputs):
        previous = self._filters(32)  # the stem's width
        # Layers with weights are named "{role}.{variant}", their keys for
        # weight inheritance (tfnas.inheritance): a block's layers keep their
        # keys when an earlier block gains or loses a layer.
        x = ops.ConvBN(previous, 3, strides=2, name="stem.conv_bn")(inputs)
        for block, (base_filters, _, first_stride) in enumerate(self.blocks):
            prefix = f"block_{block}"
            conv = decisions.choose_value(hp, f"{prefix}/conv", list(CONV_TYPES),
                                          default="mbconv6")
            kernel = decisions.choose_value(hp, f"{prefix}/kernel", list(KERNELS))
            se_ratio = decisions.choose_value(hp, f"{prefix}/se_ratio", list(SE_RATIOS))
            skip = decisions.choose_value(hp, f"{prefix}/skip", list(SKIPS))
            multiplier = decisions.choose_value(hp, f"{prefix}/filters",
                                                list(FILTER_MULTIPLIERS), default=1.0)
            filters = _apply(multiplier, lambda m, b=base_filters: self._filters(b * m))
            residual = _apply(skip, lambda s: s == "identity")

            def layer(index, x, conv=conv, kernel=kernel, se_ratio=se_ratio,
                      residual=residual, filters=filters, first_stride=first_stride,
                      previous=previous, block=block):
                return elastic.mobile_block(
                    filters, kernel, first_stride if index == 0 else 1, conv, CONV_TYPES,
                    se_ratio=se_ratio, skip=residual,
                    in_filters=previous if index == 0 else filters,
                    name=f"block_{block}_layer_{index}.mobile_block")(x)

            choices = self.layer_choices(block)
            x = decisions.repeat(hp, f"{prefix}/layers", layer, x, depths=choices,
                                 default=self.blocks[block][1])
            previous = filters
        return ops.ConvBN(self._filters(1280), 1, name="top.conv_bn")(x)

    def size(self):
        per_block = (len(CONV_TYPES) * len(KERNELS) * len(SE_RATIOS) * len(SKIPS)
                     * len(FILTER_MULTIPLIERS))
        return math.prod(per_block * len(self.layer_choices(block))
                         for block in range(self.num_blocks))

    def describe(self, values):
        blocks = []
        for block in range(self.num_blocks):
            p = f"block_{block}"
            se = "-se" if values[f"{p}/se_ratio"] else ""
            skip = "" if values[f"{p}/skip"] == "identity" else "-noskip"
            blocks.append(f"{values[f'{p}/conv']}k{values[f'{p}/kernel']}{se}{skip}"
                          f"x{values[f'{p}/layers']}@{values[f'{p}/filters']}")
        return " ".join(blocks)

    def diagram(self, values):
        return [chain_graph(self.describe(values).split(" "))]

    def get_config(self):
        return {**super().get_config(), "width_multiplier": self.width_multiplier,
                "num_blocks": self.num_blocks}
