"""One parallel layout, handed to every layer part: how the heads, columns and experts of one layer split over
a group of GPUs, and which collectives join them (Megatron's ModelParallelConfig, as one value).

Every part asks this object for its share (`heads`, `kv_heads`, `columns`, `experts`) and for the collectives that
complete it (`reduce`, `gather`), so no part takes tp= or ep= of its own and the splitting rules have one home.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from opgraph.core.graph import GraphBuilder
from opgraph.core.phase import Phase
from opgraph.core.tensor import Tensor
from opgraph.errors import OpgraphError


def shard(name: str, size: int, tp: int) -> int:
    """`size` split over `tp` GPUs (Megatron tensor parallelism): an error naming the sizes when it does not split."""
    if size % tp:
        raise OpgraphError(f"--tp {tp} does not divide {name} ({size}); tensor parallelism splits it evenly")
    return size // tp


@attrs.frozen
class Parallel:
    """`tp`: tensor parallel GPUs (heads and columns split over them); `ep`: expert parallel GPUs (whole experts
    spread over them; over the tp group when tp = ep, over ep groups of tp / ep GPUs each splitting its experts' width
    when ep divides tp, else over data-parallel GPUs); `sp`: with sequence
    parallelism, the dim of [batch, positions, d] the hidden states between layers are split along (positions in
    prefill, sequences in decode), None without it."""

    tp: int = 1
    ep: int = 1
    sp: int | None = None
    # The row-parallel layers leave their partial sums for the caller to reduce once (vLLM's reduce_results=False:
    # Falcon's attention and MLP, summed before one all-reduce); `reduce` is then nothing.
    partial: bool = False

    SINGLE: ClassVar["Parallel"]  # one GPU (set below)

    @classmethod
    def of(cls, phase: Phase, tp: int = 1, ep: int = 1, sp: bool = False) -> "Parallel":
        """The layout for one phase: sequence parallelism splits a prompt's positions, or a decode step's
        sequences."""
        if sp and tp < 2:
            raise OpgraphError("--sp splits the tokens over a tensor-parallel group; add --tp N (N >= 2)")
        return cls(tp, ep, (1 if phase.name == "prefill" else 0) if sp else None)

    # -- shares --------------------------------------------------------------------------------------
    def columns(self, name: str, size: int) -> int:
        """One GPU's share of a column-parallel width (an FFN, an SSM's inner width)."""
        return shard(name, size, self.tp)

    @property
    def expert_split(self) -> int:
        """GPUs each routed expert's width splits over: tp without expert parallelism; tp / ep with the experts
        spread over ep groups of a tensor-parallel group (TensorRT-LLM's moe_tp_size x moe_ep_size = tp_size in
        tensorrt_llm/mapping.py; SGLang's moe_tp_size = tp_size // ep_size in sglang/srt/distributed/
        parallel_state.py); 1 over data-parallel GPUs."""
        if self.ep == 1:
            return self.tp
        return self.tp // self.ep if self.tp > self.ep else 1

    def expert_columns(self, size: int) -> int:
        """One GPU's share of a routed expert's width (its intermediate size)."""
        split = self.expert_split
        if self.ep > 1 and split > 1 and size % split:
            raise OpgraphError(f"--tp {self.tp} --ep {self.ep}: each expert's width ({size}) does not split over the "
                               f"{split} GPUs of an expert group (tp / ep); give an --ep that leaves a split "
                               f"dividing it")
        return shard("the expert width", size, split)

    def heads(self, size: int, name: str = "the attention heads") -> int:
        """Query heads (or SSM heads) one GPU holds."""
        return shard(name, size, self.tp)

    def kv_heads(self, kv_heads: int) -> int:
        """KV heads each GPU holds: kv_heads / tp, or one (replicated on tp / kv_heads GPUs) when tp exceeds them."""
        if kv_heads >= self.tp:
            return shard("the KV heads", kv_heads, self.tp)
        if self.tp % kv_heads:
            raise OpgraphError(f"--tp {self.tp} is not a multiple of the {kv_heads} KV heads, so they cannot be "
                               f"replicated evenly")
        return 1

    def tokens(self, phase: Phase) -> tuple[int, int]:
        """(batch, positions) of the hidden states one GPU holds between layers: all the step's tokens, or its
        slice under sequence parallelism."""
        if self.sp is None:
            return phase.batch, phase.new_tokens
        size = (phase.batch, phase.new_tokens)[self.sp]
        if size % self.tp:
            what, flag = (("seq_len", "--seq-len"), ("batch", "--batch"))[self.sp == 0]
            raise OpgraphError(f"--sp with --tp {self.tp}: the {what} ({size}) does not split into {self.tp} equal "
                               f"slices of tokens; give a {flag} divisible by {self.tp}")
        return (phase.batch // self.tp, phase.new_tokens) if self.sp == 0 else (phase.batch, phase.new_tokens // self.tp)

    # -- collectives ---------------------------------------------------------------------------------
    def reduce(self, b: GraphBuilder, name: str, x: Tensor, out: str) -> Tensor:
        """The all-reduce that completes a row-parallel layer's partial sums (nothing on one GPU); with sequence
        parallelism, a reduce-scatter to the token slices instead. Nothing where `partial` leaves it to the
        caller."""
        if self.tp == 1 or self.partial:
            return x
        if self.sp is not None:
            return b.reduce_scatter(name.replace("allreduce", "reducescatter"), x, group=self.tp, dim=self.sp, out=out)
        return b.all_reduce(name, x, group=self.tp, out=out)

    def reduce_whole(self, b: GraphBuilder, name: str, x: Tensor, out: str) -> Tensor:
        """The all-reduce of a row-parallel layer inside a part, whose sums every GPU needs for all its tokens
        (Mamba-1's x_proj): an all-reduce even under sequence parallelism; nothing on one GPU."""
        return b.all_reduce(name, x, group=self.tp, out=out) if self.tp > 1 else x

    def gather(self, b: GraphBuilder, name: str, x: Tensor, out: str) -> Tensor:
        """Sequence parallelism: the whole tokens back from each GPU's slice, before a column-parallel layer."""
        return b.all_gather(name, x, group=self.tp, dim=self.sp, out=out) if self.sp is not None and self.tp > 1 else x

    def gather_columns(self, b: GraphBuilder, name: str, x: Tensor, out: str) -> Tensor:
        """A column-parallel layer's outputs made whole on every GPU (gather_output=True: each GPU's columns
        all-gathered); nothing on one GPU."""
        return b.all_gather(name, x, group=self.tp, out=out) if self.tp > 1 else x

    def out(self, name: str, partial: str) -> str:
        """The name of a row-parallel layer's output: `partial` (its partial sums) under tp, else `name`."""
        return partial if self.tp > 1 else name


Parallel.SINGLE = Parallel()
