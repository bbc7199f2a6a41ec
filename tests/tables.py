"""Synthetic tabular benchmarks that tests write to a temporary directory."""

import csv
import itertools

from tfnas.spaces import nb201

#: Per-operation effects: convolutions help, "none" hurts.
EFFECTS = {"none": 0, "skip_connect": 1, "avg_pool_3x3": 1, "nor_conv_1x1": 2,
           "nor_conv_3x3": 3}


def write_nb201_table(path, signal="signal", final="final", final_offset=0.0):
    """Writes a CSV over all 15,625 NAS-Bench-201 architectures keyed by their
    string (column "arch"): signal = sum of the edges' effects, final = signal
    + `final_offset`. Its optimum is 18 + `final_offset`."""
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["arch", signal, final])
        for ops in itertools.product(nb201.NB201_OPS, repeat=6):
            values = {nb201.edge_name(j, i): op for (j, i), op in zip(nb201.EDGES, ops)}
            score = sum(EFFECTS[op] for op in ops)
            writer.writerow([nb201.to_string(values), score, score + final_offset])
    return str(path)
