"""``python -m fast_app.farm.template``: the worker template (the supervisor starts it)."""

import sys

from fast_app.farm.template._server import main

sys.exit(main())
