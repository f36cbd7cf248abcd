"""What opgraph ships: the model presets, the GPU specs and the fusion strategies, as records to list."""

from __future__ import annotations

import attrs

from opgraph.core.fusion import FusionPlan
from opgraph.pricing.hardware import Hardware
from opgraph.core.phase import Phase


@attrs.frozen
class ModelEntry:
    name: str
    summary: dict  # shape fields (DecoderConfig.summary)
    params: int
    weight_bytes: int
    source: str


@attrs.frozen
class ModelCatalog:
    entries: tuple[ModelEntry, ...]


@attrs.frozen
class HardwareCatalog:
    specs: tuple[Hardware, ...]


@attrs.frozen
class FusionCatalog:
    plans: tuple[FusionPlan, ...]


def model_catalog(configs) -> ModelCatalog:
    """Each preset config with its exact parameter count and weight bytes (from its built graph)."""
    entries = []
    for c in configs:
        m = c.build(Phase.decode(1, 1))
        entries.append(ModelEntry(c.name, c.summary(), m.params(), m.weight_bytes(), c.source))
    return ModelCatalog(tuple(entries))
