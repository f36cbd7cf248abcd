"""Hardware specs as data: one TOML file per GPU in `specs/`, or a user's own file.

A spec file (all rates dense, i.e. without 2:4 sparsity):

    name = "my-gpu"
    display_name = "My GPU 80GB"
    memory_bandwidth_GB_per_s = 3350     # decimal GB/s
    memory_capacity_GB = 80                # as datasheets count memory: binary, 80 x 2**30 bytes
    vector_TFLOP_per_s = 66.9            # FP32 non-tensor-core rate: norms, softmax, elementwise
    source = "where every figure comes from"
    kernel_launch_us = 4                 # optional: the expected time's fixed cost per kernel where no calibration
    overlap = 1.0                        # gives one (default 0), and its compute/memory overlap (1.0 = max, 0.0 = sum)
    sms = 132                            # optional: streaming multiprocessors (GEMM tiles that run at once)
    vendor = "nvidia"                    # optional: the chip's maker, nvidia or amd (which engines run on it)
    [matrix_TFLOP_per_s]                 # matrix-unit peak per operand dtype (TOPS for int types)
    bf16 = 989
    fp8 = 1979
    [interconnect]                       # optional: links between GPUs, per GPU and per direction
    name = "NVLink 4"
    link_GB_per_s = 450                  # to a GPU of the same node
    gpus_per_node = 8
    network_GB_per_s = 50                # to a GPU of another node
    step_latency_us = 0.7                # per step of a collective
    source = "where each figure comes from"
"""

from __future__ import annotations

from pathlib import Path

import attrs

from opgraph.core import checks
from opgraph.files import datafile
from opgraph.errors import OpgraphError
from opgraph.pricing.hardware import GIGA, TERA, Hardware, Interconnect
from opgraph.pricing.timing import ClassTiming, TimeModel
from opgraph.core.tensor import COMPUTE_DTYPES
from .calibration import parse as parse_calibration
from .calibration import shipped

SPECS = Path(__file__).parent / "specs"
DEFAULT = "h100-sxm"
MATRIX_DTYPES = COMPUTE_DTYPES
# Optional time-model knobs; without them the time is the pure roofline.
_OPTIONAL = ("kernel_launch_us", "overlap", "sms", "vendor", "interconnect")
VENDORS = ("nvidia", "amd")  # a spec's vendor: which engines run on it (TensorRT-LLM on nvidia only: serve.trtllm)
_LINK = {"name": str, "link_GB_per_s": (int, float), "gpus_per_node": int, "network_GB_per_s": (int, float),
         "step_latency_us": (int, float), "source": str}
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


def load(name_or_path: str, calibration: str | None = None) -> Hardware:
    """A shipped spec by name (`h100-sxm`) or a spec file by path (anything ending in .toml), with its time
    model: the shipped calibration for that GPU name (calibrations/<name>.toml), with the `calibration` file's
    tables over it class by class (its classes from it, the rest from the shipped file); where neither exists, the
    spec's own defaults (kernel_launch_us, overlap), else the roofline."""
    hw = datafile.named_or_file(name_or_path, names(), SPECS, parse, what="hardware", file="a .toml spec file")
    home = shipped(hw.name)
    timing = parse_calibration(home) if home is not None else None
    if calibration is not None:
        mine = parse_calibration(Path(calibration))
        timing = mine if timing is None else mine.merged(timing, calibration, f"shipped {home.name}")
    return attrs.evolve(hw, timing=timing) if timing is not None else hw


# No GPU comes near these: a larger or smaller figure is a typo or a unit mistake (TFLOP/s, GB/s and GB are
# decimal). The floor (1 GFLOP/s, 1 MB/s, 1 MB) keeps every time and throughput a finite, printable number.
PHYSICAL_MAX = 10**6
PHYSICAL_MIN = 1e-3


def _number(where: str, key: str, value: object) -> float:
    checks.number(f"{where}: {key}", value, above=0, maximum=PHYSICAL_MAX)
    if value < PHYSICAL_MIN:
        raise OpgraphError(f"{where}: {key} must be at least {PHYSICAL_MIN:g} (no GPU or link is that slow or "
                           f"small: a unit mistake?), got {value:g}")
    return float(value)


def _interconnect(where: str, raw) -> Interconnect:
    if not isinstance(raw, dict):
        raise OpgraphError(f"{where}: interconnect must be a table ([interconnect])")
    unknown, missing = set(raw) - set(_LINK), set(_LINK) - set(raw)
    if unknown or missing:
        raise OpgraphError(f"{where}: [interconnect] " + (f"unknown field(s) {', '.join(sorted(unknown))}" if unknown
                           else f"missing field(s) {', '.join(sorted(missing))}") + f"; fields: {', '.join(_LINK)}")
    for key in ("name", "source"):
        if not isinstance(raw[key], str):
            raise OpgraphError(f"{where}: [interconnect] {key} must be a string")
    return Interconnect(
        raw["name"], _number(where, "interconnect.link_GB_per_s", raw["link_GB_per_s"]) * GIGA,
        checks.integer(f"{where}: interconnect.gpus_per_node", raw["gpus_per_node"], maximum=1024),
        _number(where, "interconnect.network_GB_per_s", raw["network_GB_per_s"]) * GIGA,
        checks.number(f"{where}: interconnect.step_latency_us", raw["step_latency_us"], minimum=0, maximum=10**6) * 1e-6,
        raw["source"])


def parse(path: Path) -> Hardware:
    """Read and validate one spec file; errors name the file and the field."""
    where = str(path)
    data = datafile.read(path, "hardware spec")
    for key, typ in _REQUIRED.items():
        if key not in data:
            raise OpgraphError(f"{where}: missing field {key!r} (required: {', '.join(_REQUIRED)})")
        if not isinstance(data[key], typ):
            raise OpgraphError(f"{where}: field {key!r} has the wrong type ({type(data[key]).__name__})")
    unknown = set(data) - set(_REQUIRED) - set(_OPTIONAL)
    if unknown:
        raise OpgraphError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}; "
                           f"valid: {', '.join([*_REQUIRED, *_OPTIONAL])}")
    knobs, defaults = {}, {}
    if "kernel_launch_us" in data:
        defaults["latency_s"] = checks.number(f"{where}: kernel_launch_us", data["kernel_launch_us"], minimum=0,
                                              maximum=10**6) * 1e-6
    if "overlap" in data:
        defaults["overlap"] = checks.number(f"{where}: overlap (0.0 = sum, 1.0 = max)", data["overlap"], minimum=0,
                                            maximum=1)
    if defaults:  # the expected time's parameters where no calibration gives them
        knobs["timing"] = TimeModel(f"{data['name']} spec defaults", {"default": ClassTiming(**defaults)},
                                    source=f"{where}: {', '.join(k for k in ('kernel_launch_us', 'overlap') if k in data)}")
    if "sms" in data:
        knobs["sms"] = checks.integer(f"{where}: sms", data["sms"], maximum=100_000)
    if "vendor" in data:
        knobs["vendor"] = checks.choice(f"{where}: vendor", data["vendor"], VENDORS)
    matrix = {}
    for dt, rate in data["matrix_TFLOP_per_s"].items():
        if dt not in MATRIX_DTYPES:
            raise OpgraphError(f"{where}: matrix_TFLOP_per_s.{dt}: unknown dtype; valid: {', '.join(MATRIX_DTYPES)}")
        matrix[dt] = _number(where, f"matrix_TFLOP_per_s.{dt}", rate) * TERA
    if not matrix:
        raise OpgraphError(f"{where}: matrix_TFLOP_per_s is empty; give at least one of {', '.join(MATRIX_DTYPES)}")
    if "interconnect" in data:
        knobs["interconnect"] = _interconnect(where, data["interconnect"])
    return Hardware(
        name=data["name"],
        display_name=data["display_name"],
        matrix_flops=matrix,
        vector_flops=_number(where, "vector_TFLOP_per_s", data["vector_TFLOP_per_s"]) * TERA,
        bandwidth=_number(where, "memory_bandwidth_GB_per_s", data["memory_bandwidth_GB_per_s"]) * GIGA,
        capacity=_number(where, "memory_capacity_GB", data["memory_capacity_GB"]) * 2**30,
        source=data["source"],
        **knobs,
    )
