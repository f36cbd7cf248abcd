"""`python -m opgraph` is the `opgraph` command."""

import sys

from opgraph.cli import main

sys.exit(main())
