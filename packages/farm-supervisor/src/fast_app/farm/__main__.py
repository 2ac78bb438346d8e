"""``python -m fast_app.farm`` is the ``fast-app`` command."""

import sys

from fast_app.farm.cli import main

sys.exit(main())
