"""PNG figures of a search: best-so-far curve, trade-offs, architecture diagrams.

Figures are drawn with matplotlib's object API on an Agg canvas, so they never
touch pyplot's global state or need a display.
"""

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tfnas import pareto, trials

FRONT_COLOR = "tab:red"


def _figure(width=6.4, height=4.0):
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def to_png(figure):
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def running_best(scores, direction):
    """The best score so far after each entry (None entries are skipped)."""
    return trials.running_best(scores, direction)


def best_so_far(scores, objective, direction):
    """Each trial's score and the best score so far, by trial number.

    Args:
        scores: Scores in trial order; None for a trial without one (failed).
        objective: The objective's name, for the axis label.
        direction: "max" or "min".
    """
    figure = _figure()
    axes = figure.add_subplot()
    numbers = np.arange(1, len(scores) + 1)
    done = [(n, s) for n, s in zip(numbers, scores) if s is not None]
    if done:
        axes.scatter(*zip(*done), s=14, color="tab:gray", alpha=0.6, label="trial")
    curve = running_best(scores, direction)
    steps = [(n, b) for n, b in zip(numbers, curve) if b is not None]
    if steps:
        axes.step(*zip(*steps), where="post", color="tab:blue", label="best so far")
    failed = [n for n, s in zip(numbers, scores) if s is None]
    if failed:
        low = min(s for _, s in done) if done else 0.0
        axes.scatter(failed, [low] * len(failed), marker="x", color=FRONT_COLOR,
                     label="failed")
    axes.set_xlabel("trial")
    axes.set_ylabel(objective)
    axes.set_title(f"Best {objective} so far")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right" if direction == "max" else "upper right")
    return figure


def tradeoff(costs, scores, cost_name, objective, direction, labels=None):
    """Objective against a cost (minimized), with the Pareto front marked.

    Args:
        costs: One cost per architecture (e.g. parameters, latency).
        scores: The objective of each architecture.
        cost_name: Axis label of the cost.
        objective: Axis label of the objective.
        direction: The objective's direction, "max" or "min".
        labels: Optional text per point (e.g. trial ids), written next to
            the front's points.
    """
    figure = _figure()
    axes = figure.add_subplot()
    axes.scatter(costs, scores, s=16, color="tab:gray", alpha=0.7, label="trial")
    if len(costs):
        front = pareto.non_dominated(list(zip(costs, scores)), ["min", direction])
        front = sorted(front, key=lambda i: costs[i])
        axes.step([costs[i] for i in front], [scores[i] for i in front],
                  where="post", color=FRONT_COLOR, alpha=0.6)
        axes.scatter([costs[i] for i in front], [scores[i] for i in front],
                     s=30, color=FRONT_COLOR, label="Pareto front", zorder=3)
        for i in front if labels else ():
            axes.annotate(str(labels[i]), (costs[i], scores[i]), fontsize=7,
                          xytext=(3, 3), textcoords="offset points")
        if min(costs) > 0 and max(costs) / min(costs) > 100:
            axes.set_xscale("log")
    axes.set_xlabel(cost_name)
    axes.set_ylabel(objective)
    axes.set_title(f"{objective} vs {cost_name}")
    axes.grid(alpha=0.3)
    axes.legend(loc="best")
    return figure


def _layered(graph):
    """Node labels, kinds, edges and (x, y) positions of a diagram graph.

    A labelled edge becomes an operation node between its ends. Nodes sit on
    rows by longest path from the inputs, spread evenly within a row.
    """
    labels = list(graph["nodes"])
    is_op = [False] * len(labels)
    edges = []
    for source, target, label in graph["edges"]:
        if label:
            labels.append(label)
            is_op.append(True)
            edges += [(source, len(labels) - 1), (len(labels) - 1, target)]
        else:
            edges.append((source, target))
    parents = {node: [s for s, t in edges if t == node] for node in range(len(labels))}
    row = {}

    def row_of(node):
        if node not in row:
            row[node] = max((row_of(p) + 1 for p in parents[node]), default=0)
        return row[node]

    rows = {}
    for node in range(len(labels)):
        rows.setdefault(row_of(node), []).append(node)
    position = {}
    for depth, members in rows.items():
        for rank, node in enumerate(members):
            position[node] = (rank - (len(members) - 1) / 2, -depth)
    return labels, is_op, edges, position


def architecture_diagram(graphs, title=None):
    """Draws a space's diagram of an architecture (see `SearchSpace.diagram`).

    Tensors are blue boxes and operations (labelled edges) white ones; an
    edge that skips rows, or repeats another (a residual), is drawn as an arc.
    """
    layouts = [_layered(graph) for graph in graphs]
    widest = max(max(x for x, _ in p.values()) - min(x for x, _ in p.values())
                 for *_, p in layouts)
    deepest = max(-min(y for _, y in p.values()) for *_, p in layouts)
    figure = _figure(max(3.0, 1.9 * (widest + 1)) * len(graphs), 0.55 * (deepest + 2) + 0.6)
    for column, (graph, (labels, is_op, edges, position)) in enumerate(zip(graphs, layouts)):
        axes = figure.add_subplot(1, len(graphs), column + 1)
        for index, (source, target) in enumerate(edges):
            (x0, y0), (x1, y1) = position[source], position[target]
            repeated = (source, target) in edges[:index]  # e.g. a residual
            bend = 0.8 if repeated else 0.0 if y0 - y1 <= 1 else 0.25 + 0.02 * (y0 - y1)
            axes.annotate("", xy=(x1, y1), xytext=(x0, y0),
                          arrowprops=dict(arrowstyle="->", color="tab:gray", shrinkA=9,
                                          shrinkB=9, connectionstyle=f"arc3,rad={bend}"))
        for node, text in enumerate(labels):
            colour = "white" if is_op[node] else "#dce8f7"
            axes.text(*position[node], text, ha="center", va="center",
                      fontsize=7 if is_op[node] else 8,
                      bbox=dict(boxstyle="round,pad=0.3", facecolor=colour,
                                edgecolor="tab:blue"))
        xs = [x for x, _ in position.values()]
        ys = [y for _, y in position.values()]
        axes.set_xlim(min(xs) - 0.8, max(xs) + 0.8)
        axes.set_ylim(min(ys) - 0.6, max(ys) + 0.6)
        axes.axis("off")
        if graph.get("title"):
            axes.set_title(graph["title"], fontsize=9)
    if title:
        figure.suptitle(title, fontsize=9)
    return figure
