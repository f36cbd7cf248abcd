"""Engram: a memory of hashed n-grams added to the residual streams (DeepSeek, "Conditional Memory via Scalable
Lookup", arXiv 2601.07372), as DeepSeek-V4.1 runs it before the layers its config's engram_layer_ids name.

From DeepSeek-V4.1-Flash's reference inference/model.py (Engram, NgramHashState) and vLLM's
vllm/models/deepseek_v41/common/engram.py (ParallelEngramEmbedding): each token's id and the ngram - 1 before it are
hashed into (ngram - 1) x heads rows of a table (one per n-gram size 2 .. ngram and head), fp8 with a ue8m0 scale
per 32 values of a row; the rows, read side by side, are projected by wkv to a key per residual stream and one
value, and each stream adds the value through a gate of its own (ops.engram_gate). The hash depends on token ids
alone, so engines prefetch the rows; it is costed where the layer runs it.

Under tensor parallelism the table splits by its hashed rows' heads, as vLLM's ParallelEngramEmbedding splits it:
each GPU holds and looks up its share of the (ngram - 1) x heads rows, and an all-gather joins the rows before wkv,
which is whole on every GPU; under sequence parallelism (each GPU holding a slice of the tokens) the GPUs look their
heads' rows up for every token and exchange them (all-to-all), each keeping its own tokens' rows. Each head's rows
are a prime count just above the hash's vocabulary (16 million), so a GPU's share of the table is counted as rows x
its heads / all heads, rounded up: within 0.01% of the exact one.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from opgraph.core import checks
from opgraph.core.graph import GraphBuilder
from opgraph.core.phase import Phase
from opgraph.core.tensor import INT32, DType, Tensor
from .parallel import Parallel
from .pieces import proj


def _positive(inst, attribute, value) -> None:
    checks.integer(attribute.name, value)


@attrs.frozen
class Engram:
    """An Engram memory, named as DeepSeek-V4.1's config.json names it: `table_rows` (engram_num_embeddings, this
    layer's), `heads` (engram_n_heads), `head_dim` (engram_head_dim: a row's width), `ngram`
    (engram_max_ngram_size: n-grams of 2 .. ngram tokens), stored as `table_dtype`."""

    table_rows: int = attrs.field(validator=_positive)
    heads: int = attrs.field(validator=_positive)
    head_dim: int = attrs.field(validator=_positive)
    ngram: int = attrs.field(validator=attrs.validators.ge(2))
    table_dtype: DType | None = None

    tag: ClassVar[str] = "memory"

    @property
    def rows(self) -> int:
        """The rows each token reads: one per n-gram size and head."""
        return (self.ngram - 1) * self.heads

    def add_to(self, b: GraphBuilder, x: Tensor, phase: Phase, par: Parallel, streams: int) -> Tensor:
        """The streams x [B, S, streams x d] with the memory added (its ops named engram.*)."""
        local = par.heads(self.rows, "Engram's hashed rows (engram_n_heads x (engram_max_ngram_size - 1))")
        bsz, s = phase.batch, phase.new_tokens  # every token of the step: a GPU looks up its heads' rows of each
        ids = b.input("engram.token_ids", (bsz, s), INT32)
        history = b.state("engram.history", (bsz, self.ngram - 1), INT32) if phase.past else None
        rows, _ = b.ngram_hash("engram.hash", ids, history, ngram=self.ngram, rows=local, out="engram.rows",
                               state_out="engram.history_new", dtype=INT32, state_dtype=INT32)
        table = b.weight("engram.embed.weight", (-(-self.table_rows * local // self.rows), self.head_dim),
                         self.table_dtype)
        got = b.engram_lookup("engram.lookup", rows, table, out="engram.embeddings")
        if par.sp is not None and par.tp > 1:  # each GPU's tokens get every head's rows from the others
            got = b.all_to_all("engram.alltoall", got, group=par.tp, shape=(*x.shape[:-1], self.rows * self.head_dim),
                               out="engram.embeddings_all")
        else:
            got = par.gather_columns(b, "engram.allgather", got, "engram.embeddings_all")
        d = x.shape[-1] // streams
        kv = proj(b, "engram.wkv", got, (streams + 1) * d, out="engram.kv")
        weights = [b.weight(f"engram.{w}", (streams, d), b.precision.act) for w in ("q_weight", "k_weight")]
        return b.engram_gate("engram.gate", x, kv, *weights, streams=streams, out="engram_out")

    def words(self) -> dict[str, str]:
        return {"memory": "engram"}
