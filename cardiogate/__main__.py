"""``python -m cardiogate`` is the ``cardiogate`` command."""

import sys

from cardiogate.app.cli import main

sys.exit(main())
