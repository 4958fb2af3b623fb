"""Entry point for `python -m graph_emulator`."""

import sys

from .cli import main

sys.exit(main())
