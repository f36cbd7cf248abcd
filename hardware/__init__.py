"""Hardware specs as data: one TOML file per GPU in `specs/`, or a user's own file.

A spec file (all rates dense, i.e. without 2:4 sparsity):

    name = "my-gpu"
    display_name = "My GPU 80GB"
    memory_bandwidth_GB_per_s = 3350     # decimal GB/s
    memory_capacity_GB = 80
    vector_TFLOP_per_s = 66.9            # FP32 non-tensor-core rate: norms, softmax, elementwise
    source = "where every figure comes from"
    [matrix_TFLOP_per_s]                 # matrix-unit peak per operand dtype (TOPS for int types)
    bf16 = 989
    fp8 = 1979
"""

from __future__ import annotations

import sys
from pathlib import Path

from opgraph.errors import OpgraphError
from opgraph.hardware import GIGA, TERA, Hardware

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SPECS = Path(__file__).parent / "specs"
DEFAULT = "h100-sxm"
MATRIX_DTYPES = ("fp64", "tf32", "fp32", "bf16", "fp16", "fp8", "int8", "int4")
_REQUIRED = {
    "name": str,
    "display_name": str,
    "memory_bandwidth_GB_per_s": (int, float),
    "memory_capacity_GB": (int, float),
    "vector_TFLOP_per_s": (int, float),
    "source": str,
    "matrix_TFLOP_per_s": dict,
}


def names() -> list[str]:
    """The shipped specs, by name."""
    return sorted(p.stem for p in SPECS.glob("*.toml"))


def load(name_or_path: str) -> Hardware:
    """A shipped spec by name (`h100-sxm`) or a spec file by path (anything ending in .toml)."""
    path = Path(name_or_path)
    if name_or_path.endswith(".toml") or path.parent != Path("."):
        if not path.is_file():
            raise OpgraphError(f"hardware spec file {name_or_path!r} does not exist")
    else:
        path = SPECS / f"{name_or_path}.toml"
        if not path.is_file():
            raise OpgraphError(f"unknown hardware {name_or_path!r}; valid: {', '.join(names())} "
                               f"(or a path to a .toml spec file)")
    return parse(path)


def _number(where: str, key: str, value: object) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise OpgraphError(f"{where}: {key} must be a positive number, got {value!r}")
    return float(value)


def parse(path: Path) -> Hardware:
    """Read and validate one spec file; errors name the file and the field."""
    where = str(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise OpgraphError(f"{where}: cannot read hardware spec: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise OpgraphError(f"{where}: not valid TOML: {e}") from None
    for key, typ in _REQUIRED.items():
        if key not in data:
            raise OpgraphError(f"{where}: missing field {key!r} (required: {', '.join(_REQUIRED)})")
        if not isinstance(data[key], typ):
            raise OpgraphError(f"{where}: field {key!r} has the wrong type ({type(data[key]).__name__})")
    unknown = set(data) - set(_REQUIRED)
    if unknown:
        raise OpgraphError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}; valid: {', '.join(_REQUIRED)}")
    matrix = {}
    for dt, rate in data["matrix_TFLOP_per_s"].items():
        if dt not in MATRIX_DTYPES:
            raise OpgraphError(f"{where}: matrix_TFLOP_per_s.{dt}: unknown dtype; valid: {', '.join(MATRIX_DTYPES)}")
        matrix[dt] = _number(where, f"matrix_TFLOP_per_s.{dt}", rate) * TERA
    if not matrix:
        raise OpgraphError(f"{where}: matrix_TFLOP_per_s is empty; give at least one of {', '.join(MATRIX_DTYPES)}")
    return Hardware(
        name=data["name"],
        display_name=data["display_name"],
        matrix_flops=matrix,
        vector_flops=_number(where, "vector_TFLOP_per_s", data["vector_TFLOP_per_s"]) * TERA,
        bandwidth=_number(where, "memory_bandwidth_GB_per_s", data["memory_bandwidth_GB_per_s"]) * GIGA,
        capacity=_number(where, "memory_capacity_GB", data["memory_capacity_GB"]) * GIGA,
        source=data["source"],
    )
