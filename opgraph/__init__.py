"""opgraph: a graph-based operator cost model for transformer inference.

A layer is a DAG of ops with tensor shapes (`core.graph`), a fusion plan decides what reaches memory
(`core.fusion`), and a traversal turns graph + plan + hardware into per-op roofline records (`core.cost`).
Analyses (`opgraph.analysis`) return frozen records; `opgraph.render.render(record, fmt)` gives their text.
"""

from opgraph.analysis.report import Report, report
from opgraph.core.cost import PhaseCost, analyze
from opgraph.core.sizes import size_function
from opgraph.errors import OpgraphError
from opgraph.core.fusion import FuseRule, FusionPlan, apply
from opgraph.files.planfile import load as strategy
from opgraph.core.graph import Graph, GraphBuilder, LintError, lint
from opgraph.core.hardware import Hardware
from opgraph.core.model import Block, Model
from opgraph.core.phase import Phase
from opgraph.core.tensor import BF16, FP8, FP16, FP32, INT4, INT8, DType, Precision, Role, Tensor

__all__ = [
    "BF16", "FP8", "FP16", "FP32", "INT4", "INT8", "Block", "DType", "FuseRule", "FusionPlan", "Graph",
    "GraphBuilder", "Hardware", "LintError", "Model", "OpgraphError", "Phase", "Precision", "PhaseCost", "Report",
    "Role", "Tensor", "analyze", "apply", "lint", "report", "size_function", "strategy",
]
