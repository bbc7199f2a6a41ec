"""One search per project: an exclusive lock on the project directory.

A local search and a distributed search's chief hold `tfnas_lock.json` in
the project directory locked with `fcntl.flock` while they run. The kernel
releases a flock when its process dies, however it dies (SIGKILL, a power
cut of a network client aside), so a lock left behind by a dead search is
taken over by the next one without any pid-file guesswork. The file also
records the holder (pid, host, start time), for the message that refuses a
second search. Workers share their chief's project and take no lock.
"""

import datetime
import fcntl
import functools
import json
import os
import socket
import time

LOCK_FILE = "tfnas_lock.json"


class ProjectInUseError(OSError):
    """Another search holds the project's lock."""

    def __str__(self):
        return self.args[0]


def _describe_holder(path):
    try:
        with open(path) as file:
            holder = json.load(file)
        started = datetime.datetime.fromtimestamp(
            holder["started_at"], datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"pid {holder['pid']} on host {holder['host']}, started {started}"
    except (OSError, ValueError, KeyError, TypeError, OverflowError):
        # The holder has locked the file but not yet written who it is.
        return "a process that has just started"


class ProjectLock:
    """An exclusive, non-blocking lock on a project directory.

    Re-entrant for its owner: a search that calls another locked method
    (e.g. `OneShotTuner.search` calling `NASTuner.search`) holds it once.

    Args:
        project_dir: The project directory; it must exist.
    """

    def __init__(self, project_dir):
        self.path = os.path.join(os.fspath(project_dir), LOCK_FILE)
        self._fd = None
        self._depth = 0

    def acquire(self):
        """Takes the lock, or raises `ProjectInUseError` naming its holder."""
        if self._depth:
            self._depth += 1
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            project_dir = os.path.dirname(self.path)
            raise ProjectInUseError(
                f"the project {project_dir} is in use by another search "
                f"({_describe_holder(self.path)}; lock file {self.path}). Wait for it "
                "to finish or stop it; a lock left by a process that died is taken "
                "over automatically. To run a separate search, pass another "
                "project name.") from None
        except OSError as error:
            os.close(fd)
            raise OSError(
                f"cannot lock {self.path}: its file system does not support file "
                f"locks ({error.strerror}). Put the project on a local disk or a "
                "network file system with locks (e.g. NFSv4), or pass another "
                "directory.") from error
        try:
            holder = {"pid": os.getpid(), "host": socket.gethostname(),
                      "started_at": time.time()}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(holder).encode(), 0)
        except OSError as error:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            from tfnas import atomic

            atomic.raise_if_disk_full(error, self.path)
            raise
        self._fd = fd
        self._depth = 1

    def release(self):
        """Releases the lock (the file stays: deleting it would let two
        processes lock two different files of the same name)."""
        if not self._depth:
            return
        self._depth -= 1
        if self._depth:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass  # the content is informative only
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    @property
    def held(self):
        return self._depth > 0

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc_info):
        self.release()


def exclusive(search):
    """Decorates a tuner's `search` to hold its project's lock while it runs.

    A worker of a distributed search (`tuner.role == "worker"`) takes no
    lock: it shares the chief's project directory.
    """

    @functools.wraps(search)
    def locked_search(tuner, *args, **kwargs):
        if getattr(tuner, "role", None) == "worker":
            return search(tuner, *args, **kwargs)
        lock = tuner.__dict__.get("_project_lock")
        if lock is None:
            lock = tuner._project_lock = ProjectLock(tuner.project_dir)
        with lock:
            return search(tuner, *args, **kwargs)

    return locked_search


def check_free(project_dir):
    """Raises `ProjectInUseError` at once if another search holds the lock of
    `project_dir` (lets a command refuse before loading data); holds nothing."""
    if os.path.exists(os.path.join(os.fspath(project_dir), LOCK_FILE)):
        with ProjectLock(project_dir):
            pass
