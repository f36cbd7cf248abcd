"""Architecture builders and named presets. Every config turns into an opgraph Model for a phase with
`build(phase, options)`; `get` takes a preset name or the path of a Hugging Face config.json."""

from __future__ import annotations

from pathlib import Path

from . import hf_config, pieces
from .decoder import MLA, DecoderConfig, LayerKind, MoE
from .llama import LlamaConfig
from .options import BuildOptions
from .presets import PRESETS
from opgraph.errors import OpgraphError

DEFAULT = "llama-3-8b"

__all__ = ["DEFAULT", "MLA", "BuildOptions", "DecoderConfig", "LayerKind", "LlamaConfig", "MoE", "PRESETS", "get",
           "hf_config", "load", "names", "pieces"]

load = hf_config.load


def names() -> list[str]:
    return sorted(PRESETS)


def get(name: str):
    """A preset config by name, or a Hugging Face config.json (a path ending in .json, an existing file, or a
    checkpoint directory holding config.json) loaded from disk; its `build(phase)` gives the Model."""
    if name in PRESETS:
        return PRESETS[name]
    path = Path(name)
    if name.endswith(".json") or path.is_file() or (path / "config.json").is_file():
        return hf_config.load(path)
    raise OpgraphError(f"unknown model {name!r}; valid: {', '.join(names())}, or the path of a Hugging Face "
                       f"config.json")
