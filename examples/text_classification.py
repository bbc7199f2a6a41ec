"""Text classification: search the sequence space on token ids.

The example writes its own small corpus (no download): short product
reviews whose sentiment an adjective gives and a "not" before it flips, so
that word order matters ("not good" is negative, "good" positive). A
`TextVectorization` layer, adapted on the training texts only, turns the
texts into token ids; the sequence space embeds them (`vocabulary_size`) and the
search picks the blocks. The best model is then joined to the vectorizer,
so the final model classifies raw strings.
"""

import argparse

import keras
import numpy as np
import tensorflow as tf

import tfnas

SUBJECTS = ["the phone", "this camera", "the battery", "my new laptop", "the screen",
            "the service", "this kettle", "the delivery", "the headphones", "the app"]
POSITIVE = ["good", "great", "excellent", "reliable", "fast", "lovely", "sturdy"]
NEGATIVE = ["bad", "awful", "slow", "broken", "flimsy", "noisy", "useless"]
FILLERS = ["", "really", "honestly", "to be fair", "after a week", "so far", "overall"]
ENDINGS = ["", "and i would say so again", "as expected", "for the price", "in my opinion"]


def make_corpus(size, seed):
    """`size` (text, label) pairs: label 1 for a positive review."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(size):
        positive_word = rng.random() < 0.5
        negated = rng.random() < 0.5
        adjective = rng.choice(POSITIVE if positive_word else NEGATIVE)
        words = [rng.choice(FILLERS), rng.choice(SUBJECTS), "is",
                 "not" if negated else "", adjective, rng.choice(ENDINGS)]
        texts.append(" ".join(word for word in words if word))
        labels.append(int(positive_word != negated))
    return np.array(texts), np.array(labels, dtype="int32")


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--max-trials", type=int, default=8)
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--directory", default="tfnas_projects")
args = parser.parse_args()

texts, labels = make_corpus(1200, seed=0)
split = {"train": slice(0, 800), "validation": slice(800, 1000), "test": slice(1000, None)}
sequence_length = 16
vectorize = keras.layers.TextVectorization(max_tokens=200,
                                           output_sequence_length=sequence_length)
vectorize.adapt(texts[split["train"]])  # the training texts only


def dataset(part):
    ids = vectorize(texts[split[part]])
    return tf.data.Dataset.from_tensor_slices((ids, labels[split[part]])).batch(32)


space = tfnas.spaces.SequenceSpace((sequence_length,), 2,
                                   vocabulary_size=vectorize.vocabulary_size(), max_blocks=3)
tuner = tfnas.NASTuner(space, oracle="evolution", objective="val_accuracy",
                       max_trials=args.max_trials, seed=0, directory=args.directory,
                       project_name="text_classification")
tuner.search(dataset("train"), validation_data=dataset("validation"), epochs=args.epochs,
             verbose=0)
tuner.results_summary()
best_model = tuner.get_best_models(1)[0]
print("best architecture:", space.describe(tuner.get_best_architectures(1)[0].values))
print("test accuracy:", best_model.evaluate(dataset("test"), verbose=0)[1])

# One model from raw strings to class probabilities.
raw = keras.Input(shape=(), dtype="string")
end_to_end = keras.Model(raw, best_model(vectorize(raw)))
reviews = ["the phone is not good", "the phone is good", "overall this kettle is not awful"]
for review, probabilities in zip(reviews, end_to_end.predict(tf.constant(reviews), verbose=0)):
    print(f"{review!r}: positive with probability {probabilities[1]:.2f}")
