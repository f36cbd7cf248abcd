"""Architecture builders and named presets. Every builder turns a config into an opgraph Model for a phase."""

from __future__ import annotations

from models.llama import LlamaConfig
from models.options import BuildOptions
from models.presets import PRESETS
from opgraph.errors import OpgraphError

DEFAULT = "llama-3-8b"

__all__ = ["DEFAULT", "BuildOptions", "LlamaConfig", "PRESETS", "get", "names"]


def names() -> list[str]:
    return sorted(PRESETS)


def get(name: str):
    """A preset config by name; its `build(phase)` gives the Model."""
    try:
        return PRESETS[name]
    except KeyError:
        raise OpgraphError(f"unknown model {name!r}; valid: {', '.join(names())}") from None
