"""``python -m gauguin``: the ``gauguin`` command."""
import sys

from .cli import main

sys.exit(main())
