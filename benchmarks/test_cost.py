"""What single tests cost, in two checkouts: CPU seconds (with every child
process) and wall seconds.

Each test runs alone (`pytest -n 0`), first in the `--before` checkout, then
in the `--after` one, so that a pair is measured minutes apart. On a shared
machine the wall time swings with the load; the CPU time (the test's
process and all the processes it waited for: chiefs, workers, `tfnas`
commands) is the steadier measure.

    git archive BASE_COMMIT | tar -x -C /tmp/base
    python benchmarks/test_cost.py --before /tmp/base --after . \
        tests/test_cli.py::test_search_runs_to_completion_and_exports

Writes a markdown table to benchmarks/results/test_cost.md (`--output`).
"""

import argparse
import os
import re
import resource
import subprocess
import sys
import time


def measure(checkout, test_id, timeout):
    """(CPU seconds of the children, wall seconds, pytest's last line)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "0", "-q", "-p", "no:cacheprovider", test_id],
        cwd=checkout, capture_output=True, text=True, timeout=timeout)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = [line for line in result.stdout.splitlines() if re.search(r" (passed|failed)", line)]
    return cpu, wall, (lines[-1] if lines else result.stdout[-300:]).strip("= ")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tests", nargs="+", help="pytest node ids")
    parser.add_argument("--before", required=True, help="checkout before the change")
    parser.add_argument("--after", default=".", help="checkout after the change")
    parser.add_argument("--timeout", type=float, default=1500)
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results",
                                                         "test_cost.md"))
    args = parser.parse_args()
    rows = []
    for test_id in args.tests:
        measured = {}
        for name, checkout in (("before", args.before), ("after", args.after)):
            measured[name] = measure(os.path.abspath(checkout), test_id, args.timeout)
            print(test_id, name, measured[name], flush=True)
        (cpu0, wall0, out0), (cpu1, wall1, out1) = measured["before"], measured["after"]
        rows.append(f"| `{test_id.split('::')[-1]}` | {cpu0:.1f} | {cpu1:.1f} | "
                    f"{(cpu1 / cpu0 - 1) * 100:+.0f} % | {wall0:.0f} | {wall1:.0f} | "
                    f"{out0} / {out1} |")
    table = ["| test | CPU before (s) | CPU after (s) | CPU change | wall before (s) | "
             "wall after (s) | pytest |", "|---|---|---|---|---|---|---|", *rows]
    text = ("# Cost of single tests before and after\n\n`python " + " ".join(sys.argv) +
            "`\n\n" + "\n".join(table) + "\n")
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as file:
        file.write(text)
    print(text)


if __name__ == "__main__":
    main()
