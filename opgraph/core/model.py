"""A model for one phase: distinct layer graphs, each with how many times it repeats."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import attrs

from opgraph.core.graph import Graph
from opgraph.core.phase import Phase
from opgraph.core.tensor import Precision, Role
from opgraph.errors import OpgraphError


@attrs.frozen
class BuildOptions:
    """How to build a model beyond its architecture: the knobs a user turns for one analysis, handed to every
    model source's `build(phase, options)`.

    `precision`: storage dtype per tensor role (None: the model's own).
    `causal_skip`: count only the unmasked part of prefill attention products, as a causal
    FlashAttention kernel computes them (default off: the full score matrix, as the reference counts).
    `experts_touched`: routed experts whose weights one step reads in each MoE layer (None: the expected
    number of distinct experts for the step's tokens routed uniformly, E*(1-(1-k/E)^T) rounded up).
    `tp`, `dp`, `ep`, `expert_imbalance`: the parallel plan (the phase's batch is each replica's)."""

    precision: Precision | None = None
    causal_skip: bool = False
    experts_touched: int | None = None
    tp: int = 1  # tensor parallelism: the model is built as one GPU's share of a group of tp GPUs
    dp: int = 1  # data parallelism: replicas of the tp group, each serving its own batch
    ep: int = 1  # expert parallelism: MoE experts over the ep = tp x dp GPUs of the group, or ep groups of tp
    expert_imbalance: float | None = None  # with ep: the busiest GPU's expert rows / the mean (None: uniform routing)
    pp: int = 1  # pipeline parallelism: the layers split into pp stages, one after another
    micro_batches: int | None = None  # with pp: the batch runs as this many micro-batches (None: pp of them)
    pp_layers: tuple[int, ...] | None = None  # with pp: layers per stage (None: as even as can be)
    sp: bool = False  # sequence parallelism (with tp): hidden states between layers split along the tokens


def expert_groups(tp: int, dp: int, ep: int) -> bool:
    """Whether `ep` spreads the experts over ep groups of the tensor-parallel group, each of tp / ep GPUs splitting
    its experts' width (ep dividing tp, 1 < ep < tp, no data parallelism): TensorRT-LLM's moe_tp_size x moe_ep_size
    (tensorrt_llm/mapping.py) and SGLang's --ep-size below --tp-size."""
    return dp == 1 and 1 < ep < tp and tp % ep == 0


def expert_layout(tp: int, dp: int, ep: int) -> bool:
    """Whether opgraph builds this expert layout: no expert parallelism (ep 1), the experts over every GPU of the
    tp x dp group (ep = tp x dp), or over groups of the tensor-parallel group (expert_groups)."""
    return ep == 1 or ep == tp * dp or expert_groups(tp, dp, ep)


def no_experts(ep: int, model: str) -> OpgraphError:
    """The error for --ep on a model without mixture-of-experts layers."""
    return OpgraphError(f"--ep {ep}: {model} has no experts to spread; expert parallelism applies to "
                        f"mixture-of-experts models")


@attrs.frozen
class Block:
    """A graph that occurs `count` times in the model; identical layers are built once and counted."""

    name: str
    count: int
    graph: Graph


@attrs.frozen
class Stage:
    """One pipeline stage: its layers, and how many instances of each of the model's blocks it runs."""

    name: str
    first_layer: int
    layers: int
    counts: tuple[tuple[str, int], ...]  # (block name, instances), blocks of the model's `blocks`


@attrs.frozen
class Model:
    name: str
    phase: Phase
    blocks: tuple[Block, ...] = attrs.field(converter=tuple)
    # What a reader must know to interpret the numbers, e.g. which form of attention this phase uses.
    notes: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    gpus: int = 1  # the blocks are one GPU's share of a parallel group of this many GPUs
    whole_weight_bytes: int | None = None  # with gpus > 1, the unsplit model's weights, if its builder says
    # When the GPUs' shares differ (expert parallelism: the blocks are the busiest GPU's, which sets the step's
    # time), the same step on a GPU with the mean share, so that the group's totals are gpus x its figures: a
    # Model, or a function that builds it (built only when costed: memory and fits never need it).
    mean_gpu: "Model | Callable[[], Model] | None" = None
    parallel: str = ""  # the parallel plan in words, e.g. "tensor parallel over 8 GPUs"
    replicas: int = 1  # batches the group serves at once: data-parallel replicas, each with the phase's batch
    # Pipeline parallelism: the stages, each a share of `blocks` (built at the whole batch: its weights and KV
    # cache), and `micro`, the same blocks built at one micro-batch of batch / micro_batches (their times).
    stages: tuple[Stage, ...] = ()
    micro: "Model | None" = None
    micro_batches: int = 1

    def params(self) -> int:
        """Parameter count: every weight tensor, shared ones (tied embeddings) once per block."""
        return sum(b.count * b.graph.params() for b in self.blocks)

    def weight_bytes(self) -> int:
        """Bytes to store all the weights."""
        return sum(b.count * b.graph.weight_bytes() for b in self.blocks)

    def ops(self) -> Iterator:
        """Every op of every block (each block's ops once, whatever its count)."""
        return (op for b in self.blocks for op in b.graph.ops.values())

    def stage_weights(self, stage: Stage) -> tuple[int, int]:
        """(weight bytes, parameters) one GPU of a pipeline stage holds: its blocks' weights, times its instances,
        and one copy of each weight its blocks read that another stage's block holds (Tensor.borrowed: Zamba2's
        shared blocks, which every stage that runs them loads)."""
        graphs = {b.name: b.graph for b in self.blocks}
        held = {t.name for n, _ in stage.counts for t in graphs[n].weights() if not t.borrowed}
        copies = {t.name: t for n, _ in stage.counts for t in graphs[n].weights()
                  if t.borrowed and t.name not in held}.values()
        return (sum(c * graphs[n].weight_bytes() for n, c in stage.counts) + sum(t.nbytes for t in copies),
                sum(c * graphs[n].params() for n, c in stage.counts) + sum(t.numel for t in copies))


def precision_in_use(model: Model) -> dict[str, str]:
    """The storage types in use per role: matrix weights, activations, KV cache, and recurrent states where a
    model has them."""
    seen: dict[str, set[str]] = {"weights": set(), "activations": set(), "kv_cache": set()}
    for b in model.blocks:
        for t in b.graph.tensors.values():
            if t.role is Role.WEIGHT and len(t.shape) > 1:
                seen["weights"].add(str(t.dtype))
            elif t.role is Role.KV_CACHE:
                seen["kv_cache"].add(str(t.dtype))
            elif t.role is Role.STATE:
                seen.setdefault("state", set()).add(str(t.dtype))
            elif t.role is Role.ACTIVATION:
                seen["activations"].add(str(t.dtype))
    return {role: ", ".join(sorted(names)) for role, names in seen.items() if names}
