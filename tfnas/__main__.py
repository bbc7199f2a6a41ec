"""`python -m tfnas` runs the command-line interface."""

import sys

from tfnas.cli import main

sys.exit(main())
