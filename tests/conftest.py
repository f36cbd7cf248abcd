"""Tests are grouped by the layer they test (core, analysis, render, models, files, project); the helpers at
this level (userland.py: run opgraph as a user does) are importable from every group."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
