"""`python -m fastbp`: the command line (see fastbp/cli.py)."""

import sys

from fastbp.cli import main

sys.exit(main())
