"""Run opgraph as a user does: the installed package, from a folder that is not this checkout (a checkout's
own opgraph/ folder would shadow the installed package, which alone holds opgraph.models and
opgraph.hardware)."""

import subprocess
import sys
import tempfile

NEUTRAL = tempfile.gettempdir()


def opgraph(*args, cwd=None):
    """`opgraph ARGS...` in a subprocess: (returncode, stdout, stderr) as a CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "opgraph", *args], capture_output=True, text=True,
                          cwd=cwd or NEUTRAL)


def python(code: str, cwd=None):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd or NEUTRAL)
