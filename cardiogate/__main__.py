"""``python -m cardiogate`` is the ``cardiogate`` command."""

import sys

from cardiogate.cli import main

sys.exit(main())
