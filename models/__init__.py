"""Architecture builders and named presets. Every config turns into an opgraph Model for a phase with
`build(phase, options)`; `get` takes a preset name or the path of a Hugging Face config.json."""

from __future__ import annotations

from pathlib import Path

from . import hf_config, parts, pieces
from .decoder import DecoderConfig
from .llama import LlamaConfig
from .parallel import Parallel
from .parts import MLA, MLP, Attention, Keys, LatentAttention, Layer, MoE, Sublayer
from .stack import Stack
from opgraph.core.model import BuildOptions
from .presets import PRESETS
from opgraph.errors import OpgraphError
from opgraph.files import datafile, usermodel

DEFAULT = "llama-3-8b"

__all__ = ["DEFAULT", "MLA", "MLP", "Attention", "BuildOptions", "DecoderConfig", "Keys", "LatentAttention", "Layer",
           "LlamaConfig", "MoE", "PRESETS", "Parallel", "Stack", "Sublayer", "get", "hf_config", "load", "names",
           "parts", "pieces"]

load = hf_config.load


def names() -> list[str]:
    return sorted(PRESETS)


def get(name: str):
    """A model source by what the user typed: a preset name; `file.py:NAME` or `package.module:NAME` (a function
    build(phase, options) -> Model, or an object with that method; see opgraph.files.usermodel); or a Hugging
    Face config.json (a path ending in .json, an existing file, or a checkpoint directory holding config.json)
    loaded from disk. Its `build(phase, options)` gives the Model."""
    if name in PRESETS:
        return PRESETS[name]
    if usermodel.looks_like_reference(name):
        return usermodel.load(name)
    if name.endswith(".json") or datafile.exists(name) or datafile.exists(str(Path(name) / "config.json")):
        return hf_config.load(Path(name))
    shown = name if len(name) <= 80 else name[:77] + "..."
    raise OpgraphError(f"unknown model {shown!r}; presets: {', '.join(names())}; or the path of a Hugging Face "
                       f"config.json, or file.py:NAME for a model written in Python")
