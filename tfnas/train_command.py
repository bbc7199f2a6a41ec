"""`tfnas train DIR`: the final training of a finished search's best architecture.

Reads the search's arguments from the project (`tfnas_search.json`: the
dataset, its split seed and the batch size) and its training options
(`tfnas_project.json`: the dtype policy), opens a tuner on the project
(`tfnas.final_training.open_tuner`) and calls its `train_best`.
"""

import os
import sys

from tfnas import errors, final_training

SEARCH_CONFIG_FILE = "tfnas_search.json"


def search_arguments(project_dir):
    """The arguments `tfnas search` recorded in `project_dir`."""
    path = os.path.join(project_dir, SEARCH_CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} is missing: `tfnas train` trains the projects of `tfnas search`, whose "
            "arguments (the dataset) it records there. For a search run in Python, call "
            "`tuner.train_best(train, validation_data=..., test_data=...)`.")
    return errors.read_json(path, "Run the search again (the same `tfnas search` command).")


def load_search_data(arguments, data_dir=None):
    """The search's data, split as the search split it (same source, options and seed)."""
    from types import SimpleNamespace

    from tfnas import data as data_module
    from tfnas.datasets import arguments as data_arguments

    recorded = SimpleNamespace(**{name: arguments.get(name)
                                  for name in data_arguments.DESTINATIONS})
    return data_module.load_data(arguments["dataset"], batch_size=arguments.get("batch_size", 32),
                                 seed=arguments.get("seed", 0), data_dir=data_dir,
                                 **data_arguments.options(recorded))


def run(args):
    """Runs `tfnas train` with the parsed `args`; returns the exit code."""
    import warnings

    from tfnas import augmentation, project_lock

    project_dir = final_training.find_project(args.project_dir)
    project_lock.check_free(project_dir)
    arguments = search_arguments(project_dir)
    augment = augmentation.parse(args.augment)
    warnings.filterwarnings("ignore", message="Gradients do not exist")
    data = load_search_data(arguments, args.data_dir)
    tuner = final_training.open_tuner(project_dir)
    batch_size = args.batch_size or arguments.get("batch_size", 32)
    seed = arguments.get("seed", 0) if args.seed is None else args.seed
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    space_args = dict(args.space_arg)
    print(f"Final training of {project_dir}: trial {args.trial or '(best)'}, "
          f"{args.epochs} epochs on train+validation of '{data.name}'"
          + (f", space arguments {space_args}" if space_args else "")
          + (f", augmentation {', '.join(augment)}" if augment else ""), flush=True)
    record = tuner.train_best(
        data.train, validation_data=data.validation, test_data=data.test,
        trial_id=args.trial, space_args=space_args, epochs=args.epochs,
        batch_size=batch_size, learning_rate=args.learning_rate,
        warmup_epochs=args.warmup_epochs, augment=list(augment), seed=seed,
        formats=formats, overwrite=args.overwrite, verbose=1 if args.progress else 2)
    final_dir = os.path.join(project_dir, final_training.FINAL_DIR)
    print()
    for line in final_training.summary_lines(record)[1:]:
        print(line)
    print(f"Record: {os.path.join(final_dir, final_training.RECORD_FILE)}")
    print(f"See the training: tensorboard --logdir "
          f"{os.path.join(final_dir, final_training.LOG_DIR)}")
    sys.stdout.flush()
    return 0
