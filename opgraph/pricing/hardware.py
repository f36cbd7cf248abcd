"""A GPU as the roofline sees it: peak rates and memory bandwidth. The specs themselves are data files
in the top-level `hardware` package."""

from __future__ import annotations

import attrs

from opgraph.errors import OpgraphError
from opgraph.core.tensor import DType
from opgraph.pricing.timing import ROOFLINE, TimeModel

TERA = 10**12
GIGA = 10**9


@attrs.frozen
class Interconnect:
    """How GPUs talk: per GPU and per direction, inside a node and across nodes, with each figure's source."""

    name: str
    link_bandwidth: float  # bytes/s to another GPU of the same node
    gpus_per_node: int
    network_bandwidth: float  # bytes/s to a GPU in another node
    step_latency_s: float  # fixed cost of one step of a collective (the alpha of an alpha-beta model)
    source: str = ""

    def bandwidth(self, group: int) -> float:
        """The bandwidth a ring over `group` GPUs runs at: its slowest hop, across nodes when it spans them."""
        return self.link_bandwidth if group <= self.gpus_per_node else self.network_bandwidth


@attrs.frozen
class Hardware:
    name: str
    display_name: str
    matrix_flops: dict[str, float]  # dense matrix-unit peak, FLOP/s (OP/s for int types), per input dtype name
    vector_flops: float  # non-tensor-core FP32 FLOP/s: norms, softmax, elementwise
    bandwidth: float  # bytes/s
    capacity: float  # bytes
    source: str
    # Share of a block's collective time hidden under its other kernels (0: they run one after another, as
    # a single stream does; 1: fully overlapped, as a second micro-batch or a fused GEMM-collective can)
    comm_overlap: float = 0.0
    # The time model (opgraph.pricing.timing): a calibration, or the spec's defaults; without one, the expected time
    # is the roofline (and a collective's latency per step).
    timing: TimeModel = ROOFLINE
    interconnect: Interconnect | None = None  # None: the spec says nothing of links between GPUs
    sms: int | None = None  # streaming multiprocessors: the GEMM tiles that run at once (calibrate's wave model)
    vendor: str = ""  # the chip's maker ("nvidia", "amd"; "" where its spec does not say): which engines run on it

    def __attrs_post_init__(self) -> None:
        if not 0.0 <= self.comm_overlap <= 1.0:
            raise OpgraphError(f"hardware {self.name!r}: comm_overlap must be between 0.0 (none) and 1.0 (all), "
                               f"got {self.comm_overlap}")

    def matrix_rate(self, dt: DType) -> float:
        """Peak for matmuls whose operands are `dt`; a clear error when the chip has no such path.
        fp32 matmuls on a chip without an fp32 matrix path (and without opting into TF32) run as
        FMAs on the vector units, so they get the vector rate."""
        if dt.name in self.matrix_flops:
            return self.matrix_flops[dt.name]
        if dt.name == "fp32":
            return self.vector_flops
        raise OpgraphError(f"hardware {self.name!r} has no matrix rate for {dt.name} "
                           f"(it has: {', '.join(self.matrix_flops)}); pick a dtype it supports (--dtype, where "
                           f"the model does not fix the op's format) or another --hardware")

    def multiplies(self, name: str) -> bool:
        """Whether the chip has matrix units for operands of type `name` (a DType.name)."""
        return name in self.matrix_flops

    def ridge(self, dt: DType) -> float:
        """FLOP/byte above which a matmul in `dt` is compute-bound."""
        return self.matrix_rate(dt) / self.bandwidth
