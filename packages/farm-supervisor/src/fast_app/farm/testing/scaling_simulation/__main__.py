"""``python -m fast_app.farm.testing.scaling_simulation``: run the scenarios, print the tables."""

import sys

from fast_app.farm.testing.scaling_simulation._cli import main

if __name__ == "__main__":
    sys.exit(main())
