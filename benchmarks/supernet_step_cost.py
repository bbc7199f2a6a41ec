"""A supernet's training step against one stand-alone candidate's, per strategy.

For each one-shot strategy (darts, darts2, gdas, proxyless, spos, enas) one
child process builds the space's supernet in the strategy's mode, compiles
its `OneShotModel` as `OneShotTuner` does, and trains it with `fit` on
`((x_train, y_train), (x_val, y_val))` batches; one more child trains the
space's default architecture (a stand-alone candidate) on the same batches.
Each child reports:

- the first step (tracing and the first run of the traced step);
- the median of the later steps (wall seconds);
- the step's tensor peak: the peak bytes of TensorFlow's CPU allocator
  during one step minus the bytes held before it (median of the later
  steps), i.e. the activations and gradients a step keeps alive at once;
- the step's RSS growth (peak resident memory, sampled every few
  milliseconds by a thread, during the later steps minus the RSS before
  them; reused buffers hide activations from it), the process's peak RSS
  and its CPU seconds.

The data are the digits images, resized (`--image-size`, default 32x32) so
that activations, not graphs, dominate a step's memory. SPOS samples a path
per step; ENAS trains on one fixed path (its controller changes the path
between trials, not steps).

Usage: python benchmarks/supernet_step_cost.py [--space mobile]
    [--space-arg width_multiplier=0.5] [--batch-size 128] [--steps 8]
    [--strategies darts darts2 gdas proxyless spos enas]
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
STRATEGIES = ("darts", "darts2", "gdas", "proxyless", "spos", "enas")
CANDIDATE = "candidate"


class PeakRSS:
    """Samples this process's RSS in a thread; `peak` is the largest seen."""

    def __init__(self, interval=0.002):
        import psutil

        self.process = psutil.Process()
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def child(args):
    """Trains one supernet (or the candidate) in this process; prints JSON."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, ROOT)
    import keras
    import keras_tuner as kt
    import psutil
    import tensorflow as tf

    import tfnas
    from tfnas.supernet import oneshot, strategies
    from tfnas.supernet.builder import build_supernet

    class StepTimes(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times, self.tensor_bytes, self.memory = [], [], None

        def on_train_batch_begin(self, batch, logs=None):
            if batch == 1:  # after the first (traced) step
                self.before = psutil.Process().memory_info().rss
                self.memory = PeakRSS().__enter__()
            # TensorFlow's allocator counts every tensor it hands out, so its
            # peak during a step is the step's live activations and gradients,
            # which RSS cannot show once the first step's buffers are reused.
            tf.config.experimental.reset_memory_stats("CPU:0")
            self.current = tf.config.experimental.get_memory_info("CPU:0")["current"]
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            # Keras hands this callback numpy logs, so the step has finished.
            self.times.append(time.perf_counter() - self.start)
            peak = tf.config.experimental.get_memory_info("CPU:0")["peak"]
            self.tensor_bytes.append(peak - self.current)

        def on_train_end(self, logs=None):
            if self.memory is not None:
                self.memory.__exit__()

    data = tfnas.load_data("digits", batch_size=args.batch_size)
    size = (args.image_size, args.image_size)

    def resize(x, y):
        return tf.image.resize(x, size), y

    train = data.train.map(resize).repeat()
    validation = data.validation.map(resize).repeat()
    space = tfnas.spaces.get(args.space, (*size, data.input_shape[-1]), data.num_classes,
                             **parse_space_args(args.space_arg))
    name = args.strategies[0]
    if name == CANDIDATE:
        model = space.build(kt.HyperParameters())
        batches = train
    else:
        strategy = strategies.resolve(name)
        supernet, builder = build_supernet(space, strategy.mode, seed=0)
        model = oneshot.OneShotModel(supernet, builder, strategy=strategy, seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=supernet.loss,
                      metrics=["accuracy"])
        if name == "enas":
            model.sample_paths()  # one fixed path
        batches = oneshot.paired(train, validation)
    steps = StepTimes()
    model.fit(batches, steps_per_epoch=args.steps, epochs=1, verbose=0, callbacks=[steps])
    result = {
        "strategy": name,
        "parameters": int(sum(v.shape.num_elements() for v in model.trainable_variables)),
        "first_step_s": steps.times[0],
        "step_s": statistics.median(steps.times[1:]),
        "tensor_mb": statistics.median(steps.tensor_bytes[1:]) / 2 ** 20,
        "first_tensor_mb": steps.tensor_bytes[0] / 2 ** 20,
        "step_memory_mb": (steps.memory.peak - steps.before) / 2 ** 20,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cpu_s": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]),
    }
    print("RESULT " + json.dumps(result), flush=True)


def parse_space_args(items):
    values = {}
    for item in items:
        key, value = item.split("=", 1)
        try:
            values[key] = int(value)
        except ValueError:
            try:
                values[key] = float(value)
            except ValueError:
                values[key] = value
    return values


def run(name, args):
    command = [sys.executable, os.path.abspath(__file__), "--child", "--strategies", name,
               "--space", args.space, "--batch-size", str(args.batch_size),
               "--steps", str(args.steps), "--image-size", str(args.image_size),
               *[f"--space-arg={item}" for item in args.space_arg]]
    process = subprocess.run(command, capture_output=True, text=True, cwd="/")
    lines = [line for line in process.stdout.splitlines() if line.startswith("RESULT ")]
    if process.returncode or not lines:
        return {"strategy": name, "error": (process.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(lines[-1][len("RESULT "):])


def table(rows, command, load):
    candidate = next((r for r in rows if r["strategy"] == CANDIDATE and "error" not in r), {})
    darts = next((r for r in rows if r["strategy"] == "darts" and "error" not in r), {})
    lines = [
        "# Supernet step against one stand-alone candidate's, per strategy",
        "",
        f"Command: `{command}`",
        "",
        f"Load average (1 min) at the start and at the last row: {load[0]:.1f}, "
        f"{load[1]:.1f} (2 cores, shared).",
        "",
        "| strategy | first step (s) | step (s) | x candidate | tensor peak (MB) "
        "| x candidate | x darts | first step tensor peak (MB) | step RSS (MB) | max RSS (MB) "
        "| child CPU (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def ratio(row, other, key):
        return (f"{row[key] / other[key]:.2f}"
                if other.get(key) and other[key] > 0 and row.get(key) is not None else "-")

    for row in rows:
        if "error" in row:
            lines.append(f"| {row['strategy']} | error: {row['error']} |" + " |" * 9)
            continue
        lines.append(
            f"| {row['strategy']} | {row['first_step_s']:.1f} | {row['step_s']:.3f} "
            f"| {ratio(row, candidate, 'step_s')} | {row['tensor_mb']:.1f} "
            f"| {ratio(row, candidate, 'tensor_mb')} | {ratio(row, darts, 'tensor_mb')} "
            f"| {row['first_tensor_mb']:.1f} | {row['step_memory_mb']:.0f} "
            f"| {row['max_rss_mb']:.0f} | {row.get('cpu_s', 0):.0f} |")
    return "\n".join(lines) + "\n" + COLUMNS


COLUMNS = """
Columns: *first step*: wall seconds of the first step (tracing, graph
optimization and its first run); *step*: median wall seconds of the later
steps; *tensor peak*: median over the later steps of the peak bytes held by
TensorFlow's CPU allocator during one step minus the bytes held just before
it (`tf.config.experimental.reset_memory_stats` /
`get_memory_info("CPU:0")`): the activations, gradients and temporaries a
step keeps alive at once, weights and optimizer slots excluded; *first step
tensor peak*: the same for the first step; *step RSS*: the process's peak
resident memory during the later steps minus its RSS before them (buffers of
the first step are reused, so this hardly moves); *max RSS*: the process's
peak resident memory, dominated by the traced graphs; *child CPU*: user +
system CPU seconds of the child process (build, tracing and all steps). Ratios: to the
stand-alone candidate (the space's default architecture, trained on the same
batches) and to darts.
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="mobile")
    parser.add_argument("--space-arg", action="append", default=[])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--output",
                        default=os.path.join(HERE, "results", "supernet_step_cost.md"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    load = [os.getloadavg()[0]]
    rows = []
    command = "python benchmarks/supernet_step_cost.py " + " ".join(sys.argv[1:])
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    for name in [CANDIDATE, *args.strategies]:
        rows.append(run(name, args))
        print(json.dumps(rows[-1]), flush=True)
        # Written after every row: a long run keeps what it measured.
        with open(args.output, "w") as handle:
            handle.write(table(rows, command, [load[0], os.getloadavg()[0]]))
    print(table(rows, command, [load[0], os.getloadavg()[0]]))


if __name__ == "__main__":
    main()
