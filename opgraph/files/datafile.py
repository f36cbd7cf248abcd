"""Reading the user's data files (TOML or JSON) with errors that name the file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from opgraph.errors import OpgraphError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SUFFIXES = (".toml", ".json")


def read(path: Path, what: str) -> dict:
    """Parse a .toml or .json file into a dict; `what` says what the file should be, for messages."""
    if path.suffix not in SUFFIXES:
        raise OpgraphError(f"{path}: a {what} must be a .toml or .json file")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise OpgraphError(f"{path}: cannot read {what}: {e}") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise OpgraphError(f"{path}: not valid TOML: {e}") from None
    except json.JSONDecodeError as e:
        raise OpgraphError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise OpgraphError(f"{path}: a {what} must be a table/object at the top level")
    return data


def exists(text: str) -> bool:
    """An existing file or folder; a name the system cannot even look up (too long, a NUL) is not one."""
    try:
        return Path(text).exists()
    except (OSError, ValueError):
        return False


def looks_like_path(text: str) -> bool:
    """A command-line value naming a file rather than a built-in: it has a suffix we read or a directory part."""
    return text.endswith(SUFFIXES) or Path(text).parent != Path(".")
