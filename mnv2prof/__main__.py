"""`python -m mnv2prof` runs the same command line as the `mnv2prof` script."""

import sys

from mnv2prof.cli import main

sys.exit(main())
