"""``python -m powerprune``: the command line, from whichever checkout is on sys.path."""

import sys

from .cli import main

sys.exit(main())
