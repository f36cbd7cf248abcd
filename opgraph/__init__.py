"""opgraph: a graph-based operator cost model for transformer inference.

A layer is a DAG of ops with tensor shapes (`core.graph`), a fusion plan decides what reaches memory
(`core.fusion`), the core counts each op's FLOPs and bytes (`core.traffic`), and one pricing step turns them into
roofline and expected times and verdicts on a GPU (`pricing`).
Analyses (`opgraph.analysis`) return frozen records; `opgraph.render.render(record, fmt)` gives their text.
"""

import importlib

# The public names and the module each lives in, imported when first used (PEP 562), so that `import opgraph`
# (and the command line's --version and --help) does not load the engine, networkx and numpy.
_HOMES = {
    "Report": "opgraph.analysis.report", "report": "opgraph.analysis.report",
    "PhaseCost": "opgraph.pricing.cost", "analyze": "opgraph.pricing.cost",
    "size_function": "opgraph.core.sizes", "OpgraphError": "opgraph.errors",
    "FuseRule": "opgraph.core.fusion", "FusionPlan": "opgraph.core.fusion", "apply": "opgraph.core.fusion",
    "Graph": "opgraph.core.graph", "GraphBuilder": "opgraph.core.graph", "LintError": "opgraph.core.graph",
    "lint": "opgraph.core.graph", "Hardware": "opgraph.pricing.hardware", "Block": "opgraph.core.model",
    "Model": "opgraph.core.model", "Phase": "opgraph.core.phase",
    **{name: "opgraph.core.tensor" for name in ("BF16", "FP8", "FP16", "FP32", "INT4", "INT8", "DType", "Precision",
                                                "Role", "Tensor")},
}
_RENAMED = {"strategy": ("opgraph.files.planfile", "load")}
# Subpackages reached as attributes (`from opgraph import models`): the repository's models/ and hardware/ folders.
_PACKAGES = ("models", "hardware", "analysis", "core", "files", "render", "trace", "choices", "runs", "cli",
             "commands", "errors")


def __getattr__(name: str):
    if name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
    elif name in _RENAMED:
        module, attr = _RENAMED[name]
        value = getattr(importlib.import_module(module), attr)
    elif name in _PACKAGES:
        value = importlib.import_module(f"opgraph.{name}")
    else:
        raise AttributeError(f"module 'opgraph' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "BF16", "FP8", "FP16", "FP32", "INT4", "INT8", "Block", "DType", "FuseRule", "FusionPlan", "Graph",
    "GraphBuilder", "Hardware", "LintError", "Model", "OpgraphError", "Phase", "Precision", "PhaseCost", "Report",
    "Role", "Tensor", "analyze", "apply", "lint", "report", "size_function", "strategy",
]
