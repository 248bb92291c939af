"""``python -m powerprune.cli``, as it worked when the CLI was one module (``python -m powerprune`` too)."""

import sys

from . import main

sys.exit(main())
