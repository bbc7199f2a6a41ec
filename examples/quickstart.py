"""The README's quick start: search the chain space on the digits data."""

import argparse

import tfnas

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--max-trials", type=int, default=10)
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--directory", default="tfnas_projects")
args = parser.parse_args()

data = tfnas.load_data("digits")  # or "tfds:cifar10"
space = tfnas.spaces.ChainSpace(data.input_shape, data.num_classes, max_layers=4)
tuner = tfnas.NASTuner(space, oracle="evolution", objective="val_accuracy",
                       max_trials=args.max_trials, directory=args.directory,
                       project_name="quickstart")
tuner.search(data.train, validation_data=data.validation, epochs=args.epochs,
             verbose=0)
tuner.results_summary()
best_model = tuner.get_best_models(1)[0]
print("test accuracy:", best_model.evaluate(data.test, verbose=0)[1])
print(tuner.get_best_architectures(1)[0].to_json())
print(tuner.export_best(f"{args.directory}/quickstart/best"))
