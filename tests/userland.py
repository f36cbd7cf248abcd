"""Run opgraph as a user does: the installed package, from a folder that is not this checkout (a checkout's
own opgraph/ folder would shadow the installed package, which alone holds opgraph.models and
opgraph.hardware)."""

import subprocess
import sys
import tempfile
from pathlib import Path

NEUTRAL = tempfile.gettempdir()


SCRIPT = Path(sys.executable).parent / "opgraph"  # the installed console script, as a user's shell runs it


def opgraph(*args, cwd=None):
    """`opgraph ARGS...` in a subprocess: (returncode, stdout, stderr) as a CompletedProcess. The console script
    does not put its working folder on sys.path, so it may run anywhere, this checkout included."""
    command = [str(SCRIPT)] if SCRIPT.is_file() else [sys.executable, "-m", "opgraph"]
    return subprocess.run([*command, *args], capture_output=True, text=True, cwd=cwd or NEUTRAL)


def python(code: str, cwd=None):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd or NEUTRAL)
