"""Is the curve rule's probability a probability? Calibration on recorded curves.

`CurveExtrapolationRule` stops a trial when P(its value at the final epoch
beats the best) < 0.05. This benchmark trains nothing: it reads the
learning curves that `early_stopping.py` recorded (each architecture
trained once for all its epochs), asks the rule at several epochs of every
curve against several bests (the 75th, 90th and 97th percentiles of the
curves' maxima; only where the curve has not reached the best yet), and
compares the probability with what the curve did: how often its final
value did beat the best, per band of probability. A rule whose "below 5 %"
band beats the best more often than 5 % of the time stops winners; a rule
whose higher bands rarely beat it lets hopeless trials run.

Variants of the rule, on the same decisions (`--variants`, default all):
with no prior on the noise and no range (the rule of stop 25), with the
metric's range only (Domhan et al.'s sanity prior: an accuracy ends in
[0, 1]), with the noise prior only (learned from `--prior-curves` curves
drawn at random and left out of the judged ones), with both (the rule's
default in a search), with both but the final epoch's noise as large as
every epoch's (`final_noise="constant"`, stop 28's rule), and with that and
stop 27's bounded refits (`variable_projection=False`: over all the
parameters at once, not by variable projection; `tfnas.curve_fits`). The
variants of a decision run in turn, so their CPU times per decision are
side by side.

Usage: python benchmarks/curve_calibration.py
       [--curves results/early_stopping_curves_mnist1d_table.json ...]
       [--variants "both (default)" "both, constant final noise (stop 28)"]
"""

import argparse
import json
import os
import shlex
import time

import numpy as np

from tfnas import early_stopping

import report

BANDS = ((0.0, 0.01), (0.01, 0.05), (0.05, 0.2), (0.2, 0.5), (0.5, 1.0))
# name -> (uses the metric's range, uses the noise prior, the rule's settings)
VARIANTS = {
    "no priors (stop 25)": (False, False, {}),
    "range only": (True, False, {}),
    "noise prior only": (False, True, {}),
    "both (default)": (True, True, {}),
    "both, constant final noise (stop 28)": (True, True, {"final_noise": "constant"}),
    "both, stop 27's fits": (True, True, {"final_noise": "constant",
                                          "variable_projection": False}),
}


def decisions(curves, prior_count, epochs, decision_epochs, seed):
    """`(prior curves, [(curve, epoch, best)])`: the curves the noise prior is
    learned from, and the decisions asked of the others."""
    rng = np.random.default_rng(seed)
    chosen = set(rng.choice(len(curves), size=prior_count, replace=False).tolist())
    maxima = np.array([curve.max() for curve in curves])
    bests = np.quantile(maxima, [0.75, 0.9, 0.97])
    asked = [(curve, epoch, float(best)) for index, curve in enumerate(curves)
             if index not in chosen for epoch in decision_epochs for best in bests
             if epoch < epochs and curve[:epoch].max() < best]
    return [curves[index] for index in sorted(chosen)], asked


def calibrate(name, curves, args):
    prior_curves, asked = decisions(curves, args.prior_curves, args.epochs,
                                    args.decision_epochs, args.seed)
    x = np.arange(1, args.epochs + 1, dtype=float)
    variants = {variant: VARIANTS[variant] for variant in args.variants}
    rules = {variant: early_stopping.CurveExtrapolationRule(**settings)
             for variant, (_, _, settings) in variants.items()}
    priors = {variant: rule.noise_prior([(x, curve) for curve in prior_curves], args.epochs)
              for variant, rule in rules.items()}
    probabilities = {variant: [] for variant in variants}
    seconds = dict.fromkeys(variants, 0.0)
    unanswered = dict.fromkeys(variants, 0)  # no family fitted: the trial goes on
    outcomes = []  # (final beats, a later epoch beats) of the decisions every variant took
    for index, (curve, epoch, best) in enumerate(asked):
        answers = {}
        for variant, (ranged, noisy, _) in variants.items():
            start = time.process_time()
            answers[variant] = rules[variant].probability_to_beat(
                x[:epoch], curve[:epoch], args.epochs, best, key=index,
                value_range=(0.0, 1.0) if ranged else (-np.inf, np.inf),
                noise_prior=priors[variant] if noisy else None)
            seconds[variant] += time.process_time() - start
        for variant, answer in answers.items():
            unanswered[variant] += answer is None
        if all(answer is not None for answer in answers.values()):
            for variant, answer in answers.items():
                probabilities[variant].append(answer)
            outcomes.append((curve[-1] > best, curve[epoch:].max() > best))
    final_beats, later_beats = np.array(outcomes, dtype=float).T
    winners = later_beats == 1
    rows = []
    for variant in variants:
        probability = np.array(probabilities[variant])
        cells = []
        for low, high in BANDS:
            band = (probability >= low) & ((probability < high) if high < 1 else True)
            cells.append(f"{band.sum()}: {final_beats[band].mean():.3f}" if band.any() else "0")
        stopped = probability < rules[variant].threshold
        rows.append(
            f"| {name} | {variant} | {len(probability)} | {unanswered[variant]} of "
            f"{len(asked)} | " + " | ".join(cells)
            + f" | {stopped.mean():.0%} | {(stopped & winners).sum()} of {winners.sum()} | "
            f"{1000 * seconds[variant] / max(len(asked), 1):.0f} |")
        print(rows[-1], flush=True)
    # The prior of the rule a search uses, where it is among the variants.
    return rows, priors.get("both (default)", priors[next(iter(variants))])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--curves", nargs="+", default=[
        os.path.join(report.RESULTS, f"early_stopping_curves_{name}.json")
        for name in ("mnist1d_table", "digits_table", "mnist1d", "digits")])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--decision-epochs", type=int, nargs="+", default=[4, 6, 10])
    parser.add_argument("--prior-curves", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--output", default=os.path.join(report.RESULTS, "curve_calibration.md"))
    args = parser.parse_args()
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    rows = ["| curves | rule | decisions | no answer (no family fitted) | " + " | ".join(
        f"P in [{low}, {high}): n: final beats" for low, high in BANDS)
        + " | stopped (P < 0.05) | winners stopped | ms CPU per decision |",
        "|---|---|---:|---:|" + "---:|" * len(BANDS) + "---:|---:|---:|"]
    priors = []
    for path in args.curves:
        with open(path) as file:
            recorded = json.load(file)
        curves = [np.array(c["val"][:args.epochs], dtype=float) for c in recorded.values()
                  if len(c["val"]) >= args.epochs]
        name = os.path.splitext(os.path.basename(path))[0].replace("early_stopping_curves_", "")
        table, prior = calibrate(f"{name} ({len(curves)})", curves, args)
        rows += table
        priors.append(f"{name}: variance {prior.variance:.2e} (sd {prior.variance ** 0.5:.3f}), "
                      f"{prior.dof:.0f} degrees of freedom, final share {prior.final_share:.2f}")
    load = os.getloadavg()
    report.write_table(
        args.output, "Calibration of the curve rule on recorded learning curves",
        "`python benchmarks/curve_calibration.py " + shlex.join(
            os.path.relpath(a) if os.path.exists(a) else a for a in os.sys.argv[1:])
        + "`: the validation-accuracy curves recorded by `early_stopping.py` "
        f"({args.epochs} epochs each), the rule asked at epochs {args.decision_epochs} "
        "against the 75th, 90th and 97th percentiles of the curves' maxima (where the "
        f"curve is still below), the noise prior learned from {args.prior_curves} curves "
        f"drawn at random (seed {args.seed}) and not judged. Per band of the rule's "
        "probability: the decisions in it and the fraction whose final value did beat the "
        "best (a calibrated rule: inside the band); only the decisions every variant could take "
        "(a family fitted; no answer: the decisions asked where this variant fitted none, so "
        "the trial would go on). Stopped: the decisions with P below the "
        "threshold; winners stopped: of the decisions whose later epochs beat the best, "
        "those stopped. Priors: " + "; ".join(priors) + ". "
        f"This benchmark took {time.process_time() - cpu_start:.0f} CPU s and "
        f"{time.perf_counter() - wall_start:.0f} s wall; load average at its end "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}.", rows)


if __name__ == "__main__":
    main()
