"""The `tfnas` command line: `tfnas search`, `train`, `report`, `export`, `bench` and `rank`."""

import argparse
import json
import os
import sys
import tempfile
import time
import warnings

from tfnas import allocator, errors
from tfnas.datasets import arguments as data_arguments

DEFAULT_DIRECTORY = "tfnas_projects"
DEFAULT_ADDRESS = "127.0.0.1:8470"
SEARCH_CONFIG_FILE = "tfnas_search.json"
# Arguments that define a search: resuming with other values would mix
# incomparable trials in one project.
IDENTITY_ARGUMENTS = ("space", "space_args", "strategy", "halving", "min_epochs", "eta",
                      "dataset", "epochs", "batch_size", "seed", "objective",
                      "mnasnet_target", "latency_table", "inherit_weights",
                      "inherit_epochs") + data_arguments.DESTINATIONS
# Values of identity arguments added later, for projects recorded before them.
IDENTITY_DEFAULTS = {"inherit_weights": False, "inherit_epochs": 1}
EXIT_BAD_ARGUMENTS = 2
EXIT_INTERRUPTED = 130


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text!r}")
    return value


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(
            f"expected a non-negative integer, received {text!r}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, received {text!r}")
    return value


def _space_argument(text):
    """KEY=VALUE, the value parsed as JSON when it is JSON (3, 0.5, [16, 32])."""
    key, sep, raw = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, received {text!r}")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


def add_space_options(parser, space_arg_help=None, dataset_help=None):
    """`--space`, `--space-arg`, `--dataset` and `--data-dir`, as every command
    that builds a space on a dataset takes them."""
    from tfnas import spaces

    parser.add_argument("--space", default="chain", choices=sorted(spaces.SPACES),
                        help="built-in search space")
    parser.add_argument("--space-arg", dest="space_arg", action="append", default=[],
                        type=_space_argument, metavar="KEY=VALUE",
                        help=space_arg_help or (
                            "argument of the space's constructor, repeatable; e.g. "
                            "--space-arg 'filters=[16,32]'"))
    parser.add_argument("--dataset", default="digits",
                        help=dataset_help or (
                            "'digits', 'mnist1d' or 'tfds:NAME': the dataset whose input "
                            "shape the space takes"))
    parser.add_argument("--data-dir", default=None, help="tensorflow-datasets data directory")


def build_parser():
    from tfnas import spaces, strategies

    parser = argparse.ArgumentParser(
        prog="tfnas",
        description="Neural Architecture Search for Keras and TensorFlow.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    search = commands.add_parser(
        "search",
        help="run an architecture search",
        description=(
            "Search a space of architectures on a dataset, print one line per "
            "finished trial, then evaluate the best architecture on the test "
            "split and export it. Re-running the same command resumes an "
            "interrupted search without losing or repeating finished trials."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_space_options(search, dataset_help=(
        "'digits' (scikit-learn's embedded 8x8 digits), 'mnist1d' (generated locally), "
        "'tfds:NAME' for a tensorflow-datasets dataset, or your own: 'images:DIR', "
        "'csv:PATH', 'npz:PATH'"))
    search.add_argument("--strategy", default="evolution",
                        choices=strategies.names(one_shot=False)
                        + strategies.names(one_shot=True),
                        help="search strategy: an oracle, or a weight-sharing "
                             f"strategy ({', '.join(strategies.names(one_shot=True))}) "
                             "that trains the space's supernet (for --epochs; ENAS: "
                             "--max-trials controller samples), then the derived "
                             "architecture from scratch")
    search.add_argument("--halving", action="store_true",
                        help="train candidates of random/evolution/local/predictor "
                             "briefly first and promote the best (asynchronous "
                             "successive halving from --min-epochs to --epochs); "
                             "the 'sha' strategy is random search with it")
    search.add_argument("--early-stopping", default=None, choices=["median", "curve"],
                        help="stop hopeless trials from their learning curves: the "
                             "median stopping rule or learning-curve extrapolation "
                             "(any strategy except KerasTuner's; see README)")
    search.add_argument("--proxy", default=None, choices=list(proxies_names()),
                        help="pre-screen the strategy's proposals by a training-free "
                             "proxy: each trial trains the best of --proxy-candidates "
                             "proposals (tfnas strategies only; see README)")
    search.add_argument("--proxy-candidates", type=_positive_int, default=None, metavar="K",
                        help="proposals scored by --proxy per trained trial (default 5)")
    search.add_argument("--min-epochs", type=_positive_int, default=1,
                        help="epochs of the first successive-halving rung")
    search.add_argument("--eta", type=_positive_int, default=3,
                        help="successive halving / Hyperband reduction factor")
    search.add_argument("--inherit-weights", action="store_true",
                        help="evolution/local: a child starts from its parent's trained "
                             "weights (layers unchanged by the mutation; an inserted "
                             "layer or skip as a function-preserving identity/zero) and "
                             "trains --inherit-epochs epochs")
    search.add_argument("--inherit-epochs", type=_positive_int, default=1,
                        help="epochs of a child that inherits its parent's weights")
    data_arguments.add_arguments(search)
    search.add_argument("--max-trials", type=_positive_int, default=30,
                        help="number of architectures to evaluate; may be raised "
                             "when resuming")
    search.add_argument("--epochs", type=_positive_int, default=6,
                        help="training epochs per trial")
    search.add_argument("--batch-size", type=_positive_int, default=32,
                        help="training batch size")
    search.add_argument("--directory", default=DEFAULT_DIRECTORY,
                        help="directory holding search projects")
    search.add_argument("--project-name", default=None,
                        help="project name, one plain folder name inside --directory "
                             "(default: SPACE-STRATEGY-DATASET)")
    search.add_argument("--seed", type=_non_negative_int, default=0,
                        help="seed of the data split, the strategy and weight "
                             "initialization")
    search.add_argument("--objective", default="val_accuracy",
                        help="metric to maximize (accuracy-like) or minimize "
                             "(loss-like)")
    search.add_argument("--latency-table", default=None, metavar="PATH",
                        help="a latency lookup table from `tfnas latency-table`: "
                             "every trial also records predicted_latency_ms")
    search.add_argument("--mnasnet-target", type=float, default=None, metavar="MS",
                        help="optimize MnasNet's reward objective * (latency / MS) "
                             "** -0.07 instead of the objective alone; the latency "
                             "is predicted_latency_ms with --latency-table, else "
                             "the measured latency_ms")
    search.add_argument("--overwrite", action="store_true",
                        help="delete an existing project of the same name and start "
                             "over (default: resume it); only a folder that tfnas "
                             "wrote, never one another search is running")
    search.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                        help="print one line per finished trial")
    parallel = search.add_argument_group(
        "distributed search",
        "KerasTuner's chief/worker mode: the chief holds the strategy, workers train. "
        "Without --tls-cert and a token the gRPC channel is unauthenticated: keep it on "
        "127.0.0.1 or a trusted network.")
    roles = parallel.add_mutually_exclusive_group()
    roles.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                       help="run a chief and N worker processes on this machine, "
                            "restarting any that dies")
    roles.add_argument("--chief", action="store_true",
                       help="serve the strategy to workers at --address, then report "
                            "the best architecture")
    roles.add_argument("--worker", default=None, metavar="NAME",
                       help="train the trials of the chief at --address; a restarted "
                            "worker must keep its NAME to resume its trial")
    parallel.add_argument("--address", default=None, metavar="HOST:PORT",
                          help="the chief's address (default: 127.0.0.1:8470, or a "
                               "free port with --workers)")
    parallel.add_argument("--max-restarts", type=int, default=3,
                          help="with --workers: restarts allowed per process")
    parallel.add_argument("--lease", type=_positive_float, default=120.0, metavar="SECONDS",
                          help="a running trial whose worker is silent this long goes to "
                               "another worker (workers report every epoch and every 10 s)")
    parallel.add_argument("--connect-timeout", type=_positive_float, default=60.0,
                          metavar="SECONDS", help="how long a worker waits for the chief")
    parallel.add_argument("--tls-cert", default=None, metavar="PEM",
                          help="the chief's TLS certificate (workers trust it as "
                               "self-signed unless --tls-ca is given)")
    parallel.add_argument("--tls-key", default=None, metavar="PEM",
                          help="the chief's TLS private key")
    parallel.add_argument("--tls-ca", default=None, metavar="PEM",
                          help="the CA certificate workers verify the chief's with")
    parallel.add_argument("--token-file", default=None, metavar="PATH",
                          help="a file holding the token that workers must present "
                               "(or set TFNAS_TOKEN); never printed")

    bench = commands.add_parser(
        "bench",
        help="compare strategies on a tabular benchmark",
        description=(
            "Run search strategies against a tabular benchmark: each trial is "
            "answered by table lookup instead of training. The strategies see "
            "the signal column; the table reports the final column of the "
            "architecture each one picks (mean and standard deviation over "
            "seeds, and the regret to the table's optimum)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    bench.add_argument("--table", default="macro",
                       help="'macro' (NAS-Bench-Macro), 'digits' or 'mnist1d' (made by "
                            "`tfnas table`; packaged), or a .csv/.json file")
    bench.add_argument("--space", default=None, choices=sorted(spaces.SPACES),
                       help="space whose architectures the table's keys encode "
                            "(required with a file not made by `tfnas table`)")
    bench.add_argument("--key-column", default="arch",
                       help="column of a file table holding the architecture key")
    bench.add_argument("--signal-column", default=None,
                       help="column the strategies see (macro: test_acc[0])")
    bench.add_argument("--final-column", default=None,
                       help="column reported for the pick (macro: mean_acc)")
    bench.add_argument("--direction", default="max", choices=["max", "min"],
                       help="whether the columns are maximized or minimized")
    bench.add_argument("--strategies", default="random,evolution,local",
                       help="comma-separated strategy names")
    bench.add_argument("--budget", type=_positive_int, nargs="+", default=[50, 100],
                       help="numbers of queries")
    bench.add_argument("--seeds", type=_positive_int, default=20,
                       help="number of seeds (0 to N-1) per strategy")
    bench.add_argument("--format", default="table", choices=["table", "json"],
                       help="output format")

    report = commands.add_parser(
        "report",
        help="summarize a search: table of trials, best architecture, plots",
        description=(
            "Print the trials of a project directory sorted by the objective "
            "(status, failure reason, architecture, objective, parameters, "
            "FLOPs, latency, time) and the best architecture in full, and "
            "write PNG plots: best so far, objective vs. parameters/FLOPs/"
            "latency with the Pareto front, the best architecture's diagram."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    report.add_argument("project_dir", metavar="DIR", nargs="?", default=None,
                        help="project directory, e.g. tfnas_projects/chain-evolution-digits")
    report.add_argument("--directory", default=None,
                        help="instead of DIR: the --directory of a search, when it holds "
                             "a single project")
    report.add_argument("--format", default="markdown", choices=["markdown", "csv", "json"],
                        help="format of the printed table")
    report.add_argument("--plots", default=None, metavar="PLOT_DIR",
                        help="where to write the PNG plots (default: DIR/report; "
                             "'none' for no plots)")

    table = commands.add_parser(
        "latency-table",
        help="measure a latency lookup table of a space on this machine",
        description=(
            "Time every operation that random architectures of a space choose, "
            "once per input shape, on this machine; write the table as JSON. "
            "`tfnas search --latency-table PATH` then predicts each candidate's "
            "latency as the sum of its operations (plus a measured base)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_space_options(table)
    table.add_argument("--samples", type=_positive_int, default=20,
                       help="random architectures whose operations are timed")
    table.add_argument("--batch-size", type=_positive_int, default=1,
                       help="inference batch size")
    table.add_argument("--repeats", type=_positive_int, default=20,
                       help="timed runs per measurement (the median is kept)")
    table.add_argument("--seed", type=_non_negative_int, default=0)
    table.add_argument("--output", default="latency_table.json")

    train = commands.add_parser(
        "train",
        help="train the best architecture of a search fully, then export it",
        description=(
            "The final training: rebuild the best trial (or --trial), optionally "
            "scaled up with --space-arg, train it on train+validation for --epochs "
            "with a cosine learning-rate schedule after a warm-up (and image "
            "augmentation with --augment) under the search's distribution strategy "
            "and dtype policy, checkpointing every epoch (running the same command "
            "again resumes an interrupted training), then evaluate it on the test "
            "split and export it to DIR/final/export. `tfnas report DIR` shows it."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    train.add_argument("project_dir", metavar="DIR",
                       help="project directory, or a search's --directory holding one")
    train.add_argument("--trial", default=None, metavar="ID",
                       help="trial to train (default: the best completed trial)")
    train.add_argument("--space-arg", dest="space_arg", action="append", default=[],
                       type=_space_argument, metavar="KEY=VALUE",
                       help="a skeleton argument of the space that scales the "
                            "architecture up, repeatable, e.g. --space-arg num_cells=8 "
                            "--space-arg filters=64; arguments that would change the "
                            "architecture's decisions are refused")
    train.add_argument("--epochs", type=_positive_int, default=30, help="training epochs")
    train.add_argument("--batch-size", type=_positive_int, default=None,
                       help="batch size (default: the search's)")
    train.add_argument("--learning-rate", type=_positive_float, default=None,
                       help="peak learning rate (default: the space's)")
    train.add_argument("--warmup-epochs", type=_non_negative_int, default=None,
                       help="epochs of linear warm-up (default: 5%% of --epochs)")
    train.add_argument("--augment", nargs="?", const="flip,translate", default=None,
                       metavar="LIST",
                       help="image augmentation, active in training only: comma-separated "
                            "among flip, translate, rotate, zoom, contrast (alone: "
                            "flip,translate)")
    train.add_argument("--seed", type=_non_negative_int, default=None,
                       help="seed of the shuffle, augmentation and initialization "
                            "(default: the search's)")
    train.add_argument("--formats", default="saved_model,keras,tflite",
                       help="comma-separated: saved_model, keras, tflite")
    train.add_argument("--data-dir", default=None, help="tensorflow-datasets data directory")
    train.add_argument("--overwrite", action="store_true",
                       help="start the final training over (deletes DIR/final's "
                            "checkpoints, logs and export) instead of resuming it")
    train.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                       help="show Keras's progress bar (else one line per epoch)")

    rank = commands.add_parser(
        "rank",
        help="rank architectures of a space by a training-free proxy",
        description=(
            "Score architectures of a space with a training-free proxy (see "
            "tfnas.proxies) on one batch of the dataset, without training, and "
            "print the best --top K, best first. Every architecture is ranked "
            "when the space has at most --samples (all, without --samples); "
            "otherwise --samples random ones."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_space_options(rank, dataset_help="'digits', 'mnist1d' or 'tfds:NAME': the "
                      "dataset whose training split gives the batch")
    rank.add_argument("--proxy", default="naswot", choices=list(proxies_names()))
    rank.add_argument("--top", type=_positive_int, default=10, metavar="K",
                      help="how many of the best architectures to print")
    rank.add_argument("--samples", type=_positive_int, default=None, metavar="N",
                      help="rank N random architectures (default: all, for a space "
                           "of at most 100,000)")
    rank.add_argument("--batch-size", type=_positive_int, default=64,
                      help="examples in the proxy's batch")
    rank.add_argument("--seed", type=_non_negative_int, default=0,
                      help="seed of the sample, the batch and the weights")
    rank.add_argument("--output", default=None, metavar="PATH",
                      help="also write the top K as JSON")

    from tfnas.bench import table_command

    table_command.add_parser(commands, add_space_options, _positive_int, _non_negative_int)

    export = commands.add_parser(
        "export",
        help="export the best model of a search",
        description=(
            "Export the best completed trial of a project directory: a "
            "SavedModel with a serving signature, a .keras file, optionally a "
            "TFLite flatbuffer, and architecture.json (see tfnas.rebuild)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    export.add_argument("project_dir", metavar="DIR", nargs="?", default=None,
                        help="project directory")
    export.add_argument("--directory", default=None,
                        help="instead of DIR: the --directory of a search, when it holds "
                             "a single project")
    export.add_argument("output", metavar="OUT", help="output directory")
    export.add_argument("--formats", default="saved_model,keras",
                        help="comma-separated: saved_model, keras, tflite")
    return parser


def proxies_names():
    from tfnas.proxies import PROXIES

    return PROXIES


def run_rank(args):
    from tfnas import data as data_module
    from tfnas import proxies, spaces
    from tfnas.architecture import Architecture

    data = data_module.load_data(args.dataset, data_dir=args.data_dir, seed=args.seed)
    try:
        space = spaces.get(args.space, data.input_shape, data.num_classes,
                           **dict(args.space_arg))
    except TypeError as error:  # an argument the space does not take
        raise ValueError(f"--space-arg for space '{args.space}': {error}") from error
    batch = proxies.proxy_batch(data, args.batch_size, args.seed)
    architectures = proxies.sample_space(space, args.samples, args.seed)

    def progress(done, count):
        print(f"\rscored {done}/{count} architectures", end="", file=sys.stderr, flush=True)

    ranked = proxies.rank(space, args.proxy, batch, architectures, seed=args.seed,
                          progress=progress)
    print(file=sys.stderr)
    top = [{"rank": index + 1, args.proxy: score, "architecture": values}
           for index, (values, score) in enumerate(ranked[:args.top])]
    print(f"Top {len(top)} of {len(ranked)} architectures of '{args.space}' by "
          f"{args.proxy} on '{data.name}' (no training):")
    for row in top:
        print(f"{row['rank']:>4}  {row[args.proxy]:>14.6g}  "
              f"{space.describe(row['architecture'])}")
        print(f"      {Architecture(row['architecture']).to_json()}")
    if args.output:
        from tfnas.atomic import write_atomically

        write_atomically(args.output, {"space": args.space, "dataset": data.name,
                                       "proxy": args.proxy, "ranked": len(ranked),
                                       "top": top})
        print(f"Wrote {args.output}")
    return 0


def run_bench(args):
    from tfnas import bench, oracles

    names = [name.strip() for name in args.strategies.split(",") if name.strip()]
    unknown = [name for name in names if name not in oracles.ORACLES]
    if not names or unknown:
        raise ValueError(
            f"--strategies: expected names from {sorted(oracles.ORACLES)}. "
            f"Received unknown: {unknown or args.strategies!r}")
    if args.table == "macro":
        table = bench.load_nas_bench_macro()
        table.signal = args.signal_column or table.signal
        table.final = args.final_column or table.final
        table.validate()
    elif args.space is None and bench.tables.is_ground_truth(args.table):
        table = bench.load_ground_truth(args.table, args.signal_column, args.final_column)
    else:
        if args.space is None:
            raise ValueError("--space is required with a table file")
        table = bench.load_table(
            args.table, args.space, key_column=args.key_column,
            signal=args.signal_column or "signal", final=args.final_column or "final",
            direction=args.direction)
    records = bench.compare(table, names, args.budget, range(args.seeds))
    if args.format == "json":
        print(json.dumps(records, indent=2))
        return 0
    print(f"{'strategy':<12} {'budget':>6}  {table.final + ' (mean ± std)':<26} regret")
    for r in records:
        print(f"{r['strategy']:<12} {r['budget']:>6}  "
              f"{r['mean']:.3f} ± {r['std']:.3f}{'':<12} {r['regret']:.3f}")
    print(f"optimum of the table: {table.optimum():.3f}; {args.seeds} seeds")
    return 0


def _project_name(args):
    if args.project_name:
        return args.project_name
    dataset = args.dataset.replace(":", "-").replace("/", "-")
    return f"{args.space}-{args.strategy}-{dataset}"


def _check_resumable(project_dir, args):
    """Records the search's arguments; refuses to resume a different search."""
    path = os.path.join(project_dir, SEARCH_CONFIG_FILE)
    identity = {name: getattr(args, name) for name in IDENTITY_ARGUMENTS}
    if os.path.exists(path) and not args.overwrite:
        recorded = errors.read_json(path, (
            "It records the search's arguments: restore it, delete it to resume with "
            "the arguments given now, or pass --overwrite to start over."))
        changed = {k: (recorded.get(k, IDENTITY_DEFAULTS.get(k)), v)
                   for k, v in identity.items()
                   if recorded.get(k, IDENTITY_DEFAULTS.get(k)) != v}
        if changed:
            details = ", ".join(f"{k}: {old!r} -> {new!r}"
                                for k, (old, new) in changed.items())
            raise ValueError(
                f"the project {project_dir} was searched with other "
                f"arguments ({details}). Pass --overwrite to start over, or "
                "--project-name to start a new project."
            )
    return path, identity


def _make_oracle(args, space):
    from tfnas import inheritance, oracles

    from tfnas import strategies

    kwargs = {}
    entry = strategies.get(args.strategy)
    if entry.schedule is not None:  # sha, hyperband: epochs are the strategy's own
        kwargs = entry.schedule(min(args.min_epochs, args.epochs), args.epochs, args.eta)
    elif args.halving:
        if not entry.halving:
            raise ValueError(
                f"--halving works with the strategies {strategies.names(halving=True)}. "
                f"Received: --strategy {args.strategy}")
        kwargs["halving"] = oracles.SuccessiveHalving(
            min_epochs=min(args.min_epochs, args.epochs), max_epochs=args.epochs,
            eta=args.eta)
    if args.inherit_weights:
        inheriting = [name for name in strategies.names(one_shot=False)
                      if inheritance.takes_arguments(strategies.get(name).cls)]
        if args.strategy not in inheriting:
            raise ValueError(f"--inherit-weights works with the strategies {inheriting}. "
                             f"Received: --strategy {args.strategy}")
        kwargs.update(inherit_weights=True, inherit_epochs=args.inherit_epochs)
    oracle = oracles.get(args.strategy, objective=_objective(args),
                         max_trials=args.max_trials, seed=args.seed, space=space, **kwargs)
    if args.proxy is not None and not isinstance(oracle, oracles.NASOracle):
        screenable = [name for name in strategies.names(one_shot=False)
                      if issubclass(strategies.get(name).cls, oracles.NASOracle)]
        raise ValueError(f"--proxy works with the strategies {screenable} (KerasTuner's "
                         "own oracles have no proposals to screen). Received: "
                         f"--strategy {args.strategy} --proxy {args.proxy}")
    if args.proxy is None and args.proxy_candidates is not None:
        raise ValueError("--proxy-candidates needs --proxy (the proxy that scores the "
                         f"candidates). Received: --proxy-candidates {args.proxy_candidates} "
                         "without --proxy")
    return oracle


def _objective(args):
    from tfnas import latency, objectives

    if args.mnasnet_target is None:
        return args.objective
    cost = latency.PREDICTED_LATENCY if args.latency_table else "latency_ms"
    if not args.mnasnet_target > 0:
        raise ValueError(f"--mnasnet-target must be positive. Received: {args.mnasnet_target}")
    return objectives.MnasNetReward(args.mnasnet_target, accuracy=args.objective, cost=cost)


def _search_argv(argv):
    """`argv` without the options that give a process its role."""
    kept, skip = [], False
    for item in argv:
        if skip:
            skip = False
            continue
        name = item.split("=", 1)[0]
        if name in ("--workers", "--address", "--max-restarts", "--worker"):
            skip = "=" not in item
            continue
        if name == "--chief":
            continue
        kept.append(item)
    return kept


def run_launcher(args):
    from tfnas.launcher import Launcher

    search_argv = args.argv[args.argv.index("search") + 1:]
    launcher = Launcher(_search_argv(search_argv), args.workers, address=args.address,
                        max_restarts=args.max_restarts)
    return launcher.run()


def _set_role(args):
    """Sets KerasTuner's variables for --chief/--worker; returns the role."""
    from tfnas import distributed

    if args.chief or args.worker:
        role = distributed.CHIEF if args.chief else "worker"
        os.environ.update(distributed.environment(
            role, args.address or DEFAULT_ADDRESS, args.worker))
    elif args.address:
        raise ValueError("--address needs --chief, --worker or --workers.")
    return distributed.check_environment()


def _check_directory(directory):
    """Refuses a --directory that is a file or cannot be written, before training."""
    try:
        os.makedirs(directory, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as error:
        raise errors.TfnasError(
            f"--directory {directory} cannot hold projects ({error.strerror or error}): "
            "expected a writable folder. Pass another --directory.") from error


def _distributed_options(args, identity):
    """Lease, timeouts, TLS and token of a distributed search; a TLS or token
    file that cannot be read fails before any work."""
    from tfnas.secure_channel import DistributedOptions

    options = DistributedOptions.from_environment(
        lease_seconds=args.lease, connect_timeout=args.connect_timeout,
        tls_cert=args.tls_cert, tls_key=args.tls_key, tls_ca=args.tls_ca,
        token_file=args.token_file, identity=identity)
    if args.workers or args.chief or args.worker:
        options.check_files()
    if (args.workers or args.chief) and options.tls_cert and not options.tls_key:
        raise ValueError(f"--tls-cert {options.tls_cert} needs --tls-key: the chief serves "
                         "TLS with its certificate and private key.")
    return options


def run_search(args):
    from tfnas import project_lock, project_safety, strategies

    project_dir = project_safety.check_location(args.directory, _project_name(args),
                                                ("--directory", "--project-name"))
    if not args.worker:  # workers share their chief's project
        project_lock.check_free(project_dir)
    role = None if args.workers else _set_role(args)
    if args.workers:
        _distributed_options(args, None)
    one_shot = strategies.is_one_shot(args.strategy)
    if one_shot and (args.workers or role):
        raise ValueError(f"--strategy {args.strategy} trains one supernet in one process: "
                         "it takes no --workers, --chief or --worker.")
    if args.workers:
        return run_launcher(args)
    started = time.perf_counter()
    strategy = "auto"
    if role == "worker" and os.environ.get("TF_CONFIG"):
        # One trial across the processes of a TF_CONFIG cluster, which all
        # run as the same --worker NAME. Created before any other
        # TensorFlow operation: collectives are configured at start-up.
        import tensorflow as tf

        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    # Candidates with disconnected paths (e.g. NAS-Bench-201 "none" edges)
    # have weights without gradients: expected in a search, not a problem.
    warnings.filterwarnings("ignore", message="Gradients do not exist")
    import keras

    from tfnas import data as data_module
    from tfnas import atomic, datasets, distributed, spaces, trials
    from tfnas.architecture import Architecture
    from tfnas.tuner import NASTuner

    args.space_args = dict(args.space_arg)
    options = _distributed_options(
        args, {name: getattr(args, name) for name in IDENTITY_ARGUMENTS})
    project_name = _project_name(args)
    _check_directory(args.directory)
    if role == "worker":
        args.overwrite = False  # only the chief may start the project over
    else:
        config_path, identity = _check_resumable(project_dir, args)

    keras.utils.set_random_seed(args.seed)
    data = data_module.load_data(args.dataset, batch_size=args.batch_size,
                                 seed=args.seed, data_dir=args.data_dir,
                                 **data_arguments.options(args))
    try:
        space = spaces.get(args.space, data.input_shape, data.num_classes, **args.space_args,
                           **datasets.space_arguments(spaces.SPACES.get(args.space), data,
                                                      args.space_args))
    except TypeError as error:  # an argument the space does not take
        raise ValueError(f"--space-arg for space '{args.space}': {error}") from error
    predictor = None
    if args.latency_table:
        from tfnas.latency import LatencyTable

        predictor = LatencyTable.load(args.latency_table, space=space)
    if one_shot:  # the supernet trains for --epochs, then the derived architecture
        from tfnas.supernet.tuner import OneShotTuner

        if (args.halving or args.mnasnet_target is not None or args.early_stopping
                or args.proxy):
            raise ValueError(f"--strategy {args.strategy} takes no --halving, "
                             "--mnasnet-target, --early-stopping or --proxy.")
        tuner = OneShotTuner(space, strategy=args.strategy, seed=args.seed,
                             enas_trials=args.max_trials, spos_trials=args.max_trials,
                             objective=args.objective, latency_table=predictor,
                             latency_weight=0.01 if predictor else 0.0,
                             directory=args.directory, project_name=project_name,
                             overwrite=args.overwrite, progress="always")
    else:
        tuner = NASTuner(
            space,
            oracle=_make_oracle(args, space),
            directory=args.directory,
            project_name=project_name,
            overwrite=args.overwrite,
            latency_predictor=predictor,
            progress="always" if args.progress else False,  # despite search(verbose=0)
            distribution_strategy=strategy,
            distributed_options=options,
            early_stopping=args.early_stopping,
            proxy=args.proxy,
            proxy_candidates=args.proxy_candidates or 5,
        )
    if role is not None:
        name = os.environ[distributed.TUNER_ID]
        address = (f"{os.environ[distributed.ORACLE_IP]}:"
                   f"{os.environ[distributed.ORACLE_PORT]}")
    if role == "worker":
        print(f"Worker {name} of the chief at {address}: training its trials in "
              f"{project_dir}", flush=True)
        tuner.search(data.train, validation_data=data.validation,
                     epochs=args.epochs, verbose=0, shuffle=False)
        print(f"Worker {name}: the chief has no more trials.", flush=True)
        return 0
    atomic.write_atomically(config_path, identity)
    data.save(project_dir)  # data.json; preprocessing.keras, put in front of exports
    done = sum(1 for t in tuner.oracle.trials.values() if t.status == trials.COMPLETED)
    if one_shot:
        plan = (f"{tuner.strategy.training_plan(tuner, args.epochs)}, then the derived "
                f"architecture for {args.epochs} epochs")
    else:
        plan = f"{args.max_trials} trials of {args.epochs} epochs"
    print(f"Searching space '{args.space}' with '{args.strategy}' on '{data.name}': "
          f"{plan} ({done} already completed) in {project_dir}", flush=True)
    if role == distributed.CHIEF:
        print(f"Chief listening on {address} ({options.describe()}); lease "
              f"{options.lease_seconds:g} s", flush=True)

    # shuffle=False: the training dataset shuffles itself every epoch.
    tuner.search(data.train, validation_data=data.validation,
                 epochs=args.epochs, verbose=0, shuffle=False)

    best = [t for t in tuner.oracle.get_best_trials(1) if t.status == trials.COMPLETED]
    failed = tuner.get_failed_trials()
    if not best:
        print(f"No trial completed ({len(failed)} failed); see "
              f"`results_summary` or {project_dir}.", file=sys.stderr)
        return 1
    trial = best[0]
    try:
        model = tuner.load_model(trial)
    except (OSError, ValueError) as error:
        raise errors.CorruptFileError(
            tuner._get_checkpoint_fname(trial.trial_id), error,
            f"Retrain it with --overwrite, or export the next-best trial: "
            f"tfnas export {project_dir} OUT") from error
    test = model.evaluate(data.test, verbose=0, return_dict=True)
    written = tuner.export_best(os.path.join(project_dir, "best"), model=model)
    architecture = Architecture.from_trial(trial)

    print()
    print(f"Best architecture (trial {trial.trial_id}, "
          f"{args.objective}={trial.score:.4f}):")
    print(f"  {space.describe(architecture.values)}")
    print(f"  {architecture.to_json()}")
    print(f"Test accuracy of the best architecture: {test['accuracy']:.4f}")
    if failed:
        print(f"Failed trials: {len(failed)} (reasons above)")
    print(f"Exported SavedModel: {written['saved_model']}")
    print(f"Exported Keras model: {written['keras']}")
    print(f"Architecture JSON: {written['architecture']}")
    print(f"See the search: tensorboard --logdir {tuner.log_dir}")
    print(f"            or: tfnas report {project_dir}")
    print(f"Wall time: {time.perf_counter() - started:.1f}s")
    return 0


def run_report(args):
    from tfnas import project, report
    from tfnas.datasets import preprocessing

    args.project_dir = project.resolve_project_dir(args.project_dir, args.directory)
    search = report.Project(args.project_dir)
    records = report.trial_records(search)
    if not records:
        raise ValueError(f"The project {args.project_dir} has no trials yet.")
    data_record = preprocessing.read_record(args.project_dir)
    if data_record:  # on stderr when stdout is a CSV or JSON table
        print(preprocessing.describe(data_record),
              file=sys.stdout if args.format == "markdown" else sys.stderr)
    print(report.render(records, search.objective, search.direction, args.format,
                        final=search.final), end="")
    if args.plots != "none":
        plot_dir = args.plots or os.path.join(args.project_dir, "report")
        for path in report.write_plots(search, plot_dir).values():
            print(f"Wrote {path}", file=sys.stderr)
    return 0


def run_latency_table(args):
    from tfnas import data as data_module
    from tfnas import spaces
    from tfnas.latency import LatencyTable
    from tfnas.sampling import sample_architectures

    data = data_module.load_data(args.dataset, data_dir=args.data_dir)
    space = spaces.get(args.space, data.input_shape, data.num_classes, **dict(args.space_arg))
    _, samples = sample_architectures(space, args.samples, seed=args.seed)

    def progress(done, count):
        print(f"\rtimed {done}/{count} architectures", end="", file=sys.stderr, flush=True)

    table = LatencyTable.measure(space, samples, batch_size=args.batch_size,
                                 repeats=args.repeats, progress=progress)
    print(file=sys.stderr)
    table.save(args.output)
    print(f"{len(table.entries)} operations timed, base {table.base_ms:.3f} ms: "
          f"{args.output}")
    return 0


def run_export(args):
    from tfnas import export, project

    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    args.project_dir = project.resolve_project_dir(args.project_dir, args.directory)
    with project.fatal_when_disk_full(args.output):
        written = export.export_project(args.project_dir, args.output, formats)
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0


def main(argv=None):
    # TensorFlow reads its C++ log level when it loads (its INFO lines: one
    # per trial from grappler), so this module imports it only within the
    # commands.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Before TensorFlow starts its thread pools (its first op): see tfnas.allocator.
    allocator.limit_arenas()
    errors.one_line_warnings()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        if args.command == "search":
            return run_search(args)
        if args.command == "bench":
            return run_bench(args)
        if args.command == "report":
            return run_report(args)
        if args.command == "export":
            return run_export(args)
        if args.command == "train":
            from tfnas import train_command

            return train_command.run(args)
        if args.command == "latency-table":
            return run_latency_table(args)
        if args.command == "rank":
            return run_rank(args)
        if args.command == "table":
            from tfnas.bench import table_command

            return table_command.run(args)
    except KeyboardInterrupt:
        saved = "epochs" if args.command == "train" else "trials"
        print(f"\nInterrupted. Finished {saved} are saved; run the same command "
              "again to resume.", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except (errors.TfnasError, ValueError, OSError) as error:
        # Expected failures, each naming its file or argument: one line.
        # Anything else keeps its traceback.
        message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
        print(f"tfnas: error: {message}", file=sys.stderr)
        return EXIT_BAD_ARGUMENTS
    return EXIT_BAD_ARGUMENTS


if __name__ == "__main__":
    sys.exit(main())
