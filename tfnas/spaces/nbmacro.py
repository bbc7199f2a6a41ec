"""The NAS-Bench-Macro space (Su et al., 2021), with its 8-digit codes."""

from tfnas import decisions
from tfnas.spaces import ops
from tfnas.spaces.base import SearchSpace, chain_graph, check_int_range

#: Candidate blocks, in the order of the benchmark's digits 0, 1, 2.
MACRO_OPS = ("identity", "mb3_k3", "mb6_k5")
STAGES = (2, 3, 3)
NUM_LAYERS = sum(STAGES)


def layer_name(index):
    return f"layer_{index}"


def to_code(values):
    """Decision values to the benchmark's code, e.g. "02012100"."""
    return "".join(str(MACRO_OPS.index(values[layer_name(i)])) for i in range(NUM_LAYERS))


def from_code(code):
    """The benchmark's 8-digit code to decision values."""
    if not isinstance(code, str) or len(code) != NUM_LAYERS or any(
        c not in "012" for c in code
    ):
        raise ValueError(
            f"Expected a NAS-Bench-Macro code of {NUM_LAYERS} digits 0-2. "
            f"Received: {code!r}"
        )
    return {layer_name(i): MACRO_OPS[int(c)] for i, c in enumerate(code)}


def _block(op, filters, strides):
    if op == "identity":  # a projection where the shape changes
        return ops.Shortcut(filters, strides=strides)
    expansion, kernel = (3, 3) if op == "mb3_k3" else (6, 5)
    return ops.MobileBlock(filters, kernel, strides=strides, kind="inverted",
                           expansion=expansion)


class NASBenchMacroSpace(SearchSpace):
    """NAS-Bench-Macro: 8 layers, each identity, MB3-K3 or MB6-K5.

    The benchmark's network: a 3x3 convolution stem with `init_filters`
    channels, batch norm and ReLU; three stages of 2, 3 and 3 searchable
    layers, the first of each stage with stride 2 and twice the channels (an
    identity there is a strided 1x1 projection); a 1x1 convolution to
    `head_filters` with batch norm and ReLU; global pooling and a linear
    classifier. Decisions `layer_0` to `layer_7`; 3 ** 8 = 6,561
    architectures. Its trainable parameter counts equal the benchmark's.

    Args:
        input_shape, num_classes, task, learning_rate: see `SearchSpace`.
        init_filters: Stem channels, 32 in the benchmark.
        head_filters: Channels of the last 1x1 convolution, 1280 in the benchmark.
    """

    space_name = "macro"

    def __init__(self, input_shape, num_classes, task="classification",
                 learning_rate=1e-3, init_filters=32, head_filters=1280):
        super().__init__(input_shape, num_classes, task, learning_rate)
        self.init_filters = check_int_range(init_filters, "init_filters", 1)
        self.head_filters = check_int_range(head_filters, "head_filters", 1)

    def build_features(self, hp, inputs):
        x = ops.ConvBN(self.init_filters, 3)(inputs)
        filters, index = self.init_filters, 0
        for stage_layers in STAGES:
            for position in range(stage_layers):
                strides = 2 if position == 0 else 1
                if position == 0:
                    filters *= 2
                candidates = {op: (lambda op=op, f=filters, s=strides: _block(op, f, s))
                              for op in MACRO_OPS}
                x = decisions.choose_op(hp, layer_name(index), candidates)(x)
                index += 1
        return ops.ConvBN(self.head_filters, 1)(x)

    def size(self):
        return len(MACRO_OPS) ** NUM_LAYERS

    def describe(self, values):
        return to_code(values)

    def diagram(self, values):
        return [chain_graph([values[layer_name(i)] for i in range(NUM_LAYERS)],
                            title=f"NAS-Bench-Macro {to_code(values)}")]

    def get_config(self):
        return {**super().get_config(), "init_filters": self.init_filters,
                "head_filters": self.head_filters}
