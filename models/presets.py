"""Named model configurations: each is its checkpoint's own config.json, shipped in models/configs/ and read
by the same loader as a user's file, with where it was copied from (configs/SOURCES.json: the file's source, the
Hugging Face checkpoint, the published parameter count and how faithful the copy is)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from . import hf_config

CONFIG_DIR = Path(__file__).parent / "configs"
CATALOG = json.loads((CONFIG_DIR / "SOURCES.json").read_text(encoding="utf-8"))


def _source(entry: dict) -> str:
    where = entry["config_source"]
    return where if where.startswith("huggingface.co") else f"{entry['hf_repo']} config.json, as copied in {where}"


# preset name -> where its configs/<name>.json comes from.
SOURCES = {name: _source(entry) for name, entry in CATALOG.items()}



class _Presets(Mapping):
    """The presets by name, each read from its file the first time it is asked for (not at import: one file each)."""

    def __init__(self) -> None:
        self._loaded: dict = {}

    def __getitem__(self, name: str):
        if name not in SOURCES:
            raise KeyError(name)
        if name not in self._loaded:
            self._loaded[name] = hf_config.load(CONFIG_DIR / f"{name}.json", name=name, source=SOURCES[name])
        return self._loaded[name]

    def __iter__(self):
        return iter(SOURCES)

    def __len__(self) -> int:
        return len(SOURCES)


PRESETS = _Presets()
