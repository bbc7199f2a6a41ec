"""A pytest plugin that reports CPU seconds per test and the collector's time.

Each test's CPU seconds are this process's plus those of the children it
waited for (`tfnas` commands, workers). The cyclic garbage collector's time is
reported by generation. Used for benchmarks/results/test_suite_time.md:

    PYTHONPATH=benchmarks python -m pytest -n 0 -p pytest_cpu tests/test_cli.py
"""

import gc
import resource
import time

import pytest

_rows = []
_gc_seconds = [0.0, 0.0, 0.0]
_gc_counts = [0, 0, 0]
_gc_started = [0.0]


def _cpu_seconds():
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def _on_collection(phase, info):
    if phase == "start":
        _gc_started[0] = time.process_time()
    else:
        _gc_seconds[info["generation"]] += time.process_time() - _gc_started[0]
        _gc_counts[info["generation"]] += 1


gc.callbacks.append(_on_collection)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    own_before, children_before = _cpu_seconds()
    yield
    own_after, children_after = _cpu_seconds()
    own, children = own_after - own_before, children_after - children_before
    _rows.append((own + children, own, children, item.nodeid))


def pytest_terminal_summary(terminalreporter):
    write = terminalreporter.write_line
    write("GC CPU by generation: " + ", ".join(
        f"gen{g}: {_gc_seconds[g]:.1f} s in {_gc_counts[g]}" for g in range(3)))
    write(f"CPU total over tests: {sum(row[0] for row in _rows):.1f} s")
    for total, own, children, nodeid in sorted(_rows, reverse=True)[:40]:
        write(f"CPU {total:7.2f} (own {own:6.2f} children {children:6.2f}) {nodeid}")
