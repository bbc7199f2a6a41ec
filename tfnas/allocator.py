"""The C library's memory allocator: the one place tfnas tunes it.

TensorFlow's CPU tensors and graphs live on glibc's heap. Two of glibc's
habits cost a NAS process memory without changing anything it computes:

- each thread that allocates while another holds the heap's lock gets an
  arena of its own, up to 8 per core, and TensorFlow's thread pools touch
  many; freed memory stays in the arena that held it, so the process's
  resident memory is the sum of every arena's high-water mark;
- freed pages are kept for reuse rather than returned to the system.

`limit_arenas` caps the arenas (glibc's `M_ARENA_MAX`, the same as the
`MALLOC_ARENA_MAX` environment variable) and must run before TensorFlow
starts its thread pools; `release_free_memory` hands freed pages back.
Both do nothing where the C library is not glibc.
"""

import ctypes
import ctypes.util
import gc
import os

# glibc's mallopt parameter number for the arena cap (malloc.h: M_ARENA_MAX).
_M_ARENA_MAX = -8


def _libc_function(name):
    """A function of the C library, or None where it has none (not glibc)."""
    library = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(library), name) if library else None
    except (OSError, AttributeError):
        return None


def limit_arenas(arenas=None):
    """Caps glibc's malloc arenas for the threads started from now on.

    Leaves the allocator alone when the user set `MALLOC_ARENA_MAX`
    themselves (glibc read it at start-up).

    Args:
        arenas: The cap, a positive integer. Defaults to the number of
            cores (at least 2): one arena per core that can run at once.

    Returns:
        The cap set, or None when nothing was set.
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return None
    if arenas is None:
        arenas = max(2, os.cpu_count() or 1)
    if isinstance(arenas, bool) or not isinstance(arenas, int) or arenas < 1:
        raise ValueError("Received an invalid value for `arenas`, expected a positive "
                         f"integer. Received: arenas={arenas!r}")
    mallopt = _libc_function("mallopt")
    if mallopt is None or not mallopt(_M_ARENA_MAX, arenas):
        return None
    return arenas


def release_free_memory():
    """Collects garbage and returns the allocator's free pages to the
    system; returns whether the C library could (glibc)."""
    gc.collect()
    trim = _libc_function("malloc_trim")
    if trim is None:
        return False
    trim(0)
    return True
