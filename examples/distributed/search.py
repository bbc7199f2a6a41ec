"""One script for the chief and every worker of a distributed search.

Each process reads its role from KerasTuner's environment variables (see
`local_cluster.sh`): the chief (KERASTUNER_TUNER_ID=chief) holds the
strategy and, when the search is over, prints the results; each worker
trains the trials the chief gives it. All processes must build the same
space; here they share the project directory, as on one machine or a
shared file system.
"""

import argparse
import os

import tfnas

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--strategy", default="evolution")
parser.add_argument("--max-trials", type=int, default=12)
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--directory", default="tfnas_projects")
args = parser.parse_args()

data = tfnas.load_data("digits")
space = tfnas.spaces.MLPSpace(data.input_shape, data.num_classes, max_layers=3)
tuner = tfnas.NASTuner(space, oracle=args.strategy, max_trials=args.max_trials, seed=0,
                       directory=args.directory, project_name="distributed")
tuner.search(data.train, validation_data=data.validation, epochs=args.epochs, verbose=0)

if os.environ.get("KERASTUNER_TUNER_ID") == "chief":
    tuner.results_summary()
    print(tuner.get_best_architectures(1)[0].to_json())
