"""The run journal of a ground-truth table: one JSON line per finished run.

`tfnas table` trains every (architecture, seed) pair once. Each finished run
is appended to the journal (`<table>.runs.jsonl`) by the process that trained
it, under an exclusive file lock, with one `write` followed by `fsync`: worker
processes share the file safely, and a run that was interrupted (a kill, a
full disk) leaves at most a partial last line, which readers skip. The table
itself (CSV) is rewritten atomically from the journal, so the journal is the
one source of truth for resuming.
"""

import fcntl
import json
import os

from tfnas import atomic

COMPLETED = "COMPLETED"
FAILED = "FAILED"


def append(path, record):
    """Appends `record` (a JSON-serializable dict) as one line of `path`."""
    line = json.dumps(record, sort_keys=True).encode() + b"\n"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        with open(path, "a+b") as file:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX)
            try:
                file.seek(0, os.SEEK_END)
                if file.tell():
                    file.seek(-1, os.SEEK_END)
                    if file.read(1) != b"\n":  # a line cut short by a kill
                        line = b"\n" + line
                file.write(line)
                file.flush()
                os.fsync(file.fileno())
            finally:
                fcntl.flock(file.fileno(), fcntl.LOCK_UN)
    except OSError as error:
        atomic.raise_if_disk_full(error, path)
        raise


def read(path):
    """The records of `path` in order, first record per (arch, seed) only.

    Lines that are not complete JSON objects (a write cut short by a kill)
    are skipped: their run is simply trained again.
    """
    if not os.path.exists(path):
        return []
    records, seen = [], set()
    with open(path, "rb") as file:
        for line in file:
            try:
                record = json.loads(line)
                pair = (record["arch"], record["seed"])
            except (ValueError, KeyError, TypeError):
                continue
            if pair not in seen:
                seen.add(pair)
                records.append(record)
    return records
