"""tfnas.allocator: glibc's arena cap, in fresh processes (no TensorFlow)."""

import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tfnas
from tfnas import allocator

ALLOCATOR_FILE = Path(tfnas.__file__).parent / "allocator.py"

# Loads tfnas/allocator.py alone (the package would import TensorFlow), maybe
# caps the arenas, starts threads that each allocate, and prints the number
# of heaps glibc's malloc_info reports (one per arena in use).
_COUNT_ARENAS = textwrap.dedent("""
    import ctypes, importlib.util, sys, threading
    spec = importlib.util.spec_from_file_location("allocator", sys.argv[1])
    allocator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(allocator)
    cap = None if sys.argv[2] == "none" else int(sys.argv[2])
    if cap is not None:
        print(allocator.limit_arenas(cap))
    else:
        print(None)
    ready, finish = threading.Barrier(9), threading.Event()
    def allocate():
        block = bytearray(1 << 20)
        ready.wait()
        finish.wait()
    threads = [threading.Thread(target=allocate) for _ in range(8)]
    for thread in threads:
        thread.start()
    ready.wait()
    libc = ctypes.CDLL(None)
    libc.fopen.restype = ctypes.c_void_p
    stream = libc.fopen(sys.argv[3].encode(), b"w")
    libc.malloc_info(0, ctypes.c_void_p(stream))
    libc.fclose(ctypes.c_void_p(stream))
    finish.set()
    for thread in threads:
        thread.join()
    print(open(sys.argv[3]).read().count("<heap nr="))
""")

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc",
                                reason="the arena cap is glibc's")


def _arenas(tmp_path, cap, environment=None):
    env = {"PATH": "/usr/bin:/bin", **(environment or {})}
    result = subprocess.run(
        [sys.executable, "-c", _COUNT_ARENAS, str(ALLOCATOR_FILE), str(cap),
         str(tmp_path / f"malloc_info_{cap}.xml")],
        capture_output=True, text=True, timeout=60, env=env, check=True)
    returned, heaps = result.stdout.split()
    return returned, int(heaps)


@glibc_only
def test_the_cap_bounds_the_arenas_new_threads_get(tmp_path):
    returned, uncapped = _arenas(tmp_path, "none")
    assert uncapped > 2  # eight allocating threads: glibc gives them arenas of their own
    returned, capped = _arenas(tmp_path, 2)
    assert returned == "2" and capped <= 2


@glibc_only
def test_a_users_own_malloc_arena_max_is_left_alone(tmp_path):
    returned, heaps = _arenas(tmp_path, 2, {"MALLOC_ARENA_MAX": "5"})
    assert returned == "None" and heaps > 2


@pytest.mark.parametrize("arenas", [0, -1, 1.5, True, "2"])
def test_limit_arenas_rejects_a_non_positive_integer(arenas, monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    with pytest.raises(ValueError, match=r"`arenas`.*positive integer.*Received: arenas="):
        allocator.limit_arenas(arenas)
