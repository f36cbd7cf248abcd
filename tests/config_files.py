"""A config.json written to a test's folder and loaded as a user's file is (models.get), for the tests that check a
family against its published configs."""

import json

from opgraph import Phase, models
from opgraph.core.model import BuildOptions


def load(tmp_path, config: dict, **change):
    """The model of `config` with the fields in `change` replaced, from tmp_path/config.json."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**config, **change}))
    return models.get(str(path))


def params(tmp_path, config: dict, **change) -> int:
    """Its exact parameter count."""
    return load(tmp_path, config, **change).build(Phase.decode(1, 1)).params()


def layer_graph(cfg, phase, **options):
    """The graph of the first block that is not the embedding and head (one layer of its first kind)."""
    return next(b for b in cfg.build(phase, BuildOptions(**options)).blocks if b.name != "embed_head").graph
