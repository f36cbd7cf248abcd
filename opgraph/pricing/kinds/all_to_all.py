"""All-to-alls: expert-parallel dispatch and combine (and plain all-to-alls), every GPU sending a part to each other.

Priced like a collective (a fixed cost, the achieved share of the links, a cost per step) but fitted apart: DeepEP's
kernels are not a ring. A calibration without this class prices all-to-alls by its `collective` table. A measured
row sends `tokens` tokens of `hidden` values per GPU to their `top_k` experts' GPUs over `gpus` GPUs (dispatch), or
brings the tokens x top_k expert outputs back (combine), at the mean load of uniform routing: each GPU receives
tokens x top_k rows (opgraph.core.ops.ep_dispatch).
"""

from __future__ import annotations

from opgraph.pricing.kinds import KernelClass, Row
from opgraph.pricing.kinds.collective import COLLECTIVE, LINK_PARAMS

ALL_TO_ALL = "all_to_all"
FNS = frozenset({"all_to_all", "ep_dispatch", "ep_combine"})


def _dispatch(b, s: dict) -> list:
    tokens, top_k = s["tokens"], s["top_k"]
    b.ep_dispatch("ep_dispatch", b.input("x", (tokens, s["hidden"])), group=s["gpus"], top_k=top_k,
                  rows=tokens * top_k, out="y")
    return []


def _combine(b, s: dict) -> list:
    tokens, top_k = s["tokens"], s["top_k"]
    b.ep_combine("ep_combine", b.input("y", (tokens * top_k, s["hidden"])), group=s["gpus"], top_k=top_k,
                 tokens=(tokens,), out="out")
    return []


COLUMNS = ("gpus", "tokens", "top_k", "hidden")
CLASSES = (KernelClass(
    ALL_TO_ALL, lambda op: op.fn in FNS, order=10, kinds=frozenset({"collective"}), fitted=LINK_PARAMS, fallback=COLLECTIVE,
    rows=(Row("ep_dispatch", COLUMNS, "each GPU sends each of its `tokens` tokens, `hidden` values of dtype, to the "
              "GPUs of its `top_k` experts (DeepEP's dispatch); dtype is the type on the wire", _dispatch),
          Row("ep_combine", COLUMNS, "the dispatch's inverse: each GPU's tokens x top_k expert outputs go back to "
              "their tokens' GPUs (DeepEP's combine)", _combine)),
    about="expert-parallel dispatch and combine"),)
