"""Real processes in tests: bounded polls, the chief's state, fresh interpreters."""

import json
import os
import subprocess
import sys
import time


def oracle_state(project_dir):
    """The project's `oracle.json`, or None while it is missing or mid-write."""
    try:
        with open(os.path.join(project_dir, "oracle.json")) as file:
            return json.load(file)
    except (OSError, ValueError):
        return None


def wait_for(condition, what, timeout, interval=0.1, details=None):
    """Polls `condition` until it returns a true value, which is returned.

    Raises:
        AssertionError: after `timeout` seconds, naming `what` and adding
            `details()` (e.g. the processes' output) when given.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    extra = details() if details is not None else ""
    raise AssertionError(f"timed out waiting for {what}" + (f"\n{extra}" if extra else ""))


def run_fresh_python(code, timeout):
    """Runs `code` in a fresh interpreter; fails the test with its stderr."""
    # Exit without the final garbage collections (see tfnas/__main__.py).
    code += "\nimport gc\ngc.freeze()\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stderr[-2000:]
