"""``python -m fast_app_demo``: the ``demo`` command."""

import sys

from fast_app_demo.cli import main

sys.exit(main())
