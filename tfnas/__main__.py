"""`python -m tfnas` runs the command-line interface."""

import gc
import sys

from tfnas.cli import main

code = main()
# Everything is written and closed by now. The interpreter's final garbage
# collections over TensorFlow's millions of objects take seconds (about
# 5 s on a busy 2-core machine, at every exit): skip them.
gc.freeze()
sys.exit(code)
