"""Tolerances shared by tests that compare two training runs."""

# Two `fit` runs of the same model on the same batches agree only to within
# the noise of training itself: a gradient's float32 rounding can differ from
# run to run (threaded reductions), and Adam divides near-zero gradients (the
# 8x8 digits' blank border) by their own size. In suite runs on other
# machines a few weights moved 2e-4 to 5e-4 apart between Keras's Adam and
# the fused one (learning rate 1e-2). An update of the wrong size is larger
# there: each step moves a weight by up to the learning rate. The update rule
# itself is checked exactly, without training, by
# `test_optimizers.test_fused_adam_updates_as_keras_adam`.
TRAINING_NOISE = {"rtol": 1e-2, "atol": 2e-3}
