"""Where a one-epoch one-shot search spends its time and memory, by phase.

In one process: building the space's stand-alone model, building the
supernet, compiling the `OneShotModel`, tracing its train step (Python),
the first run of the traced step (graph optimization and kernel set-up),
the later steps, and the resident memory (RSS) after each phase. The train
step is traced as Keras's `fit` traces it (`tf.function` over the paired
batch spec, one trace).

Usage: python benchmarks/supernet_profile.py [--strategy darts] [--space cell]
    [--steps 5] [--space-arg num_cells=3] [--optimizer fused|keras]
    [--grappler JSON] [--fused-bn 0|1] [--as-fit]
    [--cprofile FILE]
"""

import argparse
import contextlib
import json
import os
import sys
import time

# This checkout's tfnas, not an installed one.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def rss_mb():
    import psutil

    return psutil.Process().memory_info().rss / 2 ** 20


def peak_rss_mb():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", default="darts")
    parser.add_argument("--space", default="cell")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--space-arg", action="append", default=[])
    parser.add_argument("--optimizer", default="fused", choices=("fused", "keras"),
                        help="Adam of the weights and alphas: tfnas's FusedAdam (as shipped) "
                        "or keras.optimizers.Adam")
    parser.add_argument("--grappler", default=None,
                        help="JSON of tf.config.optimizer.set_experimental_options")
    parser.add_argument("--rewrite", default=None,
                        help="JSON of RewriterConfig fields for the functions' grappler "
                        "(e.g. {\"meta_optimizer_iterations\": \"ONE\"})")
    parser.add_argument("--lean", type=int, default=1,
                        help="1: grappler as OneShotModel.fit sets it (graph_options); 0: "
                        "TensorFlow's defaults (--as-fit only)")
    parser.add_argument("--fused-bn", type=int, default=1,
                        help="1: the supernet's batch norms on the fused kernel (as shipped); "
                        "0: Keras's BatchNormalization")
    parser.add_argument("--as-fit", action="store_true",
                        help="run Keras's own train function (nested tf.functions, as "
                        "in fit); its tracing and first run are then one phase")
    parser.add_argument("--cprofile", default=None,
                        help="write a cProfile of the tracing phase to this file")
    args = parser.parse_args()
    space_args = {}
    for item in args.space_arg:
        key, value = item.split("=", 1)
        space_args[key] = int(value) if value.isdigit() else value

    phases = []
    clock = {"wall": time.perf_counter(), "cpu": time.process_time()}

    def phase(name, **extra):
        wall, cpu = time.perf_counter(), time.process_time()
        phases.append({"phase": name, "wall_s": round(wall - clock["wall"], 2),
                       "cpu_s": round(cpu - clock["cpu"], 2), "rss_mb": round(rss_mb()),
                       "peak_rss_mb": round(peak_rss_mb()),
                       **extra})
        print(json.dumps(phases[-1]), flush=True)
        clock.update(wall=time.perf_counter(), cpu=time.process_time())

    import keras
    import keras_tuner as kt
    import tensorflow as tf

    if args.grappler:
        tf.config.optimizer.set_experimental_options(json.loads(args.grappler))

    if args.rewrite:
        from google.protobuf import json_format
        from tensorflow.python.eager import context

        config = context.context().config
        config.allow_soft_placement = True
        json_format.ParseDict(json.loads(args.rewrite), config.graph_options.rewrite_options)
        context.context().function_call_options = context.FunctionCallOptions(
            config_proto=config)

    import tfnas
    from tfnas.optimizers import FusedAdam
    from tfnas.supernet import oneshot, strategies
    from tfnas.supernet.builder import build_supernet
    from tfnas.graph_options import lean_graph_optimization
    phase("imports")
    data = tfnas.load_data("digits")
    space = tfnas.spaces.get(args.space, data.input_shape, data.num_classes, **space_args)
    phase("data", train_batches=int(data.train.cardinality()))
    space.build(kt.HyperParameters())
    phase("stand-alone build")
    keras.backend.clear_session()
    if not args.fused_bn:
        from tfnas.supernet import batch_norm

        batch_norm.FusedBatchNormalization._fused = lambda *_: False
    supernet, builder = build_supernet(space, strategies.resolve(args.strategy).mode, seed=0)
    phase("supernet build", layers=len(supernet.layers), decisions=len(builder.mixed),
          weights=len(supernet.trainable_variables))
    adam = FusedAdam if args.optimizer == "fused" else keras.optimizers.Adam
    model = oneshot.OneShotModel(supernet, builder, strategy=args.strategy, seed=0,
                                 architecture_optimizer=adam(3e-4, beta_1=0.5))
    model.compile(optimizer=adam(1e-3), loss=supernet.loss,
                  metrics=["accuracy"])
    paired = oneshot.paired(data.train, data.validation)
    batch = next(iter(paired))
    model._symbolic_build(data_batch=batch)
    model.optimizer.build(model._weights())
    phase("compile and build")

    if args.as_fit:
        with lean_graph_optimization() if args.lean else contextlib.nullcontext():
            model.make_train_function()
            iterator = iter(paired)
            model.train_function(iterator)
            phase("trace and first run (as fit)")
            steps = []
            for _ in range(args.steps):
                start = time.perf_counter()
                model.train_function(iterator)
                steps.append(time.perf_counter() - start)
        phase("later steps", step_s=[round(s, 3) for s in steps])
        print("RESULT " + json.dumps(phases), flush=True)
        return

    traces = []

    def step(data):
        traces.append(1)
        return model.train_step(data)

    # As Keras traces it: `do_not_convert`, no AutoGraph.
    function = tf.function(step, reduce_retracing=True, autograph=False)
    if args.cprofile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    iterator = iter(paired)
    graph = function.get_concrete_function(paired.element_spec).graph
    inner = sum(len(f.definition.node_def) for f in graph._functions.values())
    if args.cprofile:
        profiler.disable()
        profiler.dump_stats(args.cprofile)
    phase("trace train step", ops=len(graph.get_operations()), ops_in_inner_functions=inner)
    function(next(iterator))
    phase("first run")
    steps = []
    for _ in range(args.steps):
        start = time.perf_counter()
        function(next(iterator))
        steps.append(time.perf_counter() - start)
    shared = getattr(model, "_shared_gradients", None)
    phase("later steps", step_s=[round(s, 3) for s in steps],
          train_step_traces=len(traces),
          gradient_function_traces=shared.experimental_get_tracing_count() if shared else None)
    print("RESULT " + json.dumps(phases), flush=True)


if __name__ == "__main__":
    main()
