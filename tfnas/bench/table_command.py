"""`tfnas table`: the command line of `tfnas.bench.build_table`."""

import argparse
import shlex
import sys


def add_parser(commands, space_argument, positive_int, non_negative_int):
    """Adds the `table` command to the CLI's subparsers."""
    from tfnas import spaces
    from tfnas.bench.ground_truth import DEFAULT_LIMIT

    table = commands.add_parser(
        "table",
        help="train every architecture of a small space: a ground-truth table",
        description=(
            "Train every architecture of a (small) space stand-alone, once per seed, "
            "and write a CSV table that `tfnas bench --table FILE` reads: the "
            "architecture key, per-seed validation and test accuracy, their means, "
            "params, FLOPs, latency and training time. Re-running the same command "
            "resumes: finished (architecture, seed) runs are not trained again."),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    table.add_argument("--space", default="chain", choices=sorted(spaces.SPACES))
    table.add_argument("--space-arg", dest="space_arg", action="append", default=[],
                       type=space_argument, metavar="KEY=VALUE",
                       help="argument of the space's constructor, repeatable; restrict "
                            "the space to a size worth enumerating, e.g. "
                            "--space-arg 'operations=[\"conv3x3\",\"conv5x5\"]'")
    table.add_argument("--dataset", default="digits",
                       help="'digits', 'mnist1d' or 'tfds:NAME'")
    table.add_argument("--data-dir", default=None, help="tensorflow-datasets data directory")
    table.add_argument("--seeds", type=positive_int, default=2,
                       help="runs per architecture, with seeds 0 to N-1")
    table.add_argument("--epochs", type=positive_int, default=3,
                       help="training epochs of each run")
    table.add_argument("--batch-size", type=positive_int, default=32)
    table.add_argument("--workers", type=positive_int, default=1,
                       help="processes training runs in parallel")
    table.add_argument("--limit", type=positive_int, default=DEFAULT_LIMIT,
                       help="refuse a space of more architectures than this")
    table.add_argument("--data-seed", type=non_negative_int, default=0,
                       help="seed of the data split, the same for every run")
    table.add_argument("--output", default="table.csv", help="the table (.csv)")
    return table


def run(args):
    from tfnas.bench.ground_truth import build_table

    command = "tfnas " + " ".join(shlex.quote(item) for item in args.argv)
    result = build_table(
        args.output, space=args.space, dataset=args.dataset,
        space_args=dict(args.space_arg), seeds=list(range(args.seeds)),
        epochs=args.epochs, batch_size=args.batch_size, workers=args.workers,
        limit=args.limit, data_dir=args.data_dir, data_seed=args.data_seed,
        command=command, progress=lambda line: print(line, flush=True))
    if result["rows"] < result["architectures"]:
        print(f"{result['architectures'] - result['rows']} architectures are incomplete "
              "(failed runs); see the journal.", file=sys.stderr)
        return 1
    return 0
