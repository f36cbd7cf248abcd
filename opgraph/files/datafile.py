"""Reading the user's data files (TOML or JSON) with errors that name the file."""

from __future__ import annotations

import csv
import gzip
import io
import json
import stat
import sys
from pathlib import Path

from opgraph.errors import OpgraphError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SUFFIXES = (".toml", ".json")
MAX_BYTES = 16 * 2**20  # a config, spec or plan is a few KB; a file this large is something else


def read(path: Path, what: str, *, syntax: str | None = None) -> dict:
    """Parse a .toml or .json file into a dict (`syntax` "json" reads any name as JSON); `what` says what the
    file should be, for messages. Every failure is one OpgraphError naming the file."""
    syntax = syntax or {".toml": "toml", ".json": "json"}.get(path.suffix)
    if syntax is None:
        raise OpgraphError(f"{path}: a {what} must be a .toml or .json file")
    if is_folder(path):
        raise OpgraphError(f"{path} is a folder; give the {what} file itself")
    regular(path, what)
    try:
        raw = path.read_bytes() if path.stat().st_size <= MAX_BYTES else None
        if raw is None:
            raise OpgraphError(f"{path}: {path.stat().st_size:,} bytes is too large for a {what} (the most is "
                               f"{MAX_BYTES:,})")
        text = raw.decode("utf-8-sig")  # a byte-order mark, as some editors save, is not part of the text
    except FileNotFoundError:
        raise OpgraphError(f"{what} file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise OpgraphError(f"{path}: cannot read {what}: {e}") from None
    try:
        data = tomllib.loads(text) if syntax == "toml" else json.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise OpgraphError(f"{path}: not valid TOML: {e}") from None
    except json.JSONDecodeError as e:
        raise OpgraphError(f"{path}: not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}") from None
    except RecursionError:
        raise OpgraphError(f"{path}: nested too deeply to be a {what}") from None
    except ValueError as e:  # e.g. an integer of thousands of digits
        raise OpgraphError(f"{path}: not a valid {what}: {e}") from None
    if not isinstance(data, dict):
        raise OpgraphError(f"{path}: a {what} must be a table/object at the top level")
    return data


def regular(path: Path, what: str) -> None:
    """Refuse what is there but is not a regular file: a FIFO or a device would block or never end."""
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError):
        return  # reading says what is wrong (missing, a name too long ...)
    if not stat.S_ISREG(mode):
        raise OpgraphError(f"{path}: not a regular file (a pipe or a device?); a {what} must be a file")


def shorten(text: str, most: int = 60) -> str:
    """A name as an error message shows it: cut short when it is long."""
    return text if len(text) <= most else text[:most - 3] + "..."


def is_folder(path: Path) -> bool:
    """A folder; a name the system cannot look up is not one."""
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def exists(text: str) -> bool:
    """An existing file or folder; a name the system cannot even look up (too long, a NUL) is not one."""
    try:
        return Path(text).exists()
    except (OSError, ValueError):
        return False


def named_or_file(name_or_path: str, shipped: list[str], folder: Path, parse, *, what: str, file: str):
    """A shipped file by its name (`folder/NAME.toml`), or the user's own file by its path: `parse(path)`.
    A text that is neither a shipped name nor path-like is an unknown name, whatever its length."""
    if looks_like_path(name_or_path):
        return parse(Path(name_or_path))
    if name_or_path not in shipped:
        raise OpgraphError(f"unknown {what} {shorten(name_or_path)!r}; valid: {', '.join(shipped)} (or a path to "
                           f"{file})")
    return parse(folder / f"{name_or_path}.toml")


def looks_like_path(text: str) -> bool:
    """A command-line value naming a file rather than a built-in: it has a suffix we read or a directory part."""
    return text.endswith(SUFFIXES) or Path(text).parent != Path(".")


def csv_rows(path: str | Path, what: str) -> csv.DictReader:
    """A CSV file (or .csv.gz, through gzip) as a DictReader over its header; a missing, unreadable or folder path is
    an OpgraphError naming it and `what` it should be."""
    path = Path(path)
    if is_folder(path):
        raise OpgraphError(f"{path} is a folder; give the {what} file itself")
    regular(path, what)
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8-sig")
    except FileNotFoundError:
        raise OpgraphError(f"{what} {str(path)!r} does not exist") from None
    except (OSError, EOFError, UnicodeDecodeError, ValueError) as e:
        raise OpgraphError(f"{path}: cannot read the {what}: {e}") from None
    return csv.DictReader(io.StringIO(text))
