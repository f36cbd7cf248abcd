"""MLA decode attention: multi-head latent attention with the up-projections absorbed, one query per sequence.

DeepSeek-V2/V3's and Kimi-K2's decode (DeepSeek-V2 paper, section 2.1.2; vLLM's and SGLang's MLA backends): every
query head of the GPU scores the one cached latent entry ([latent | rope key], kv_lora_rank + rope_dim wide) and takes
its values from the same entries' first kv_lora_rank dims. A kernel of its own (FlashMLA, FlashInfer's MLA, the
FlashAttention-3 MLA path): one key head shared by all the GPU's query heads (16 at TP 8, 128 with data-parallel
attention), where FlashAttention's GQA kernels, which the decode_attention class is fitted on, share one among 4-8.
Measured MLA kernels (aiconfigurator-core's SGLang and TensorRT-LLM tables) run 128 heads on an H200 at half the time
that class gives them at large batches, and a single sequence 30% slower (docs/measured-times.md). A kernel is this
class when its value product reads the very tensors its scores read (the latent is both key and value), the scores
reading at most an indexer's selection besides (DeepSeek-V4's window and compressed entries, one 512-wide key-value
head, run by FlashMLA's sparse kernels in vLLM and SGLang); a calibration without its table prices it as decode
attention.

A measured row: batch sequences, `heads` query heads on the GPU, one query each over context+1 cached entries of
kv_lora_rank + rope_dim.
"""

from __future__ import annotations

from opgraph.pricing.kinds import KERNEL_PARAMS, PER_ROW, KernelClass, Row
from opgraph.pricing.kinds.attention import DECODE_ATTENTION, attention_rows, decoding

MLA_DECODE_ATTENTION = "mla_decode_attention"


def _latent(ops) -> bool:
    """Decode attention whose values are its keys' own tensors (the absorbed latent; DeepSeek-V4's one key-value
    head, K = V), the scores reading besides them at most the selection of an indexer (FlashMLA's sparse kernels
    take the indices themselves)."""
    scores = next((op for op in ops if op.fn == "qk"), None)
    values = next((op for op in ops if op.fn == "av"), None)
    if scores is None or values is None or decoding(ops) is not True:
        return False
    keys, rest = scores.inputs[1:len(values.inputs)], scores.inputs[len(values.inputs):]
    return ([t.name for t in keys] == [t.name for t in values.inputs[1:]]
            and all(t.dtype.name.startswith("int") for t in rest))


def _build(b, s: dict) -> list:
    """The absorbed decode of one layer's attention (models/pieces.py, mla_attention): scores over [latent | rope
    key], softmax, values from the latent."""
    batch, heads, r, rope = s["batch"], s["heads"], s["kv_lora_rank"], s["rope_dim"]
    q = b.input("q_full", (batch, 1, heads * (r + rope)))
    keys = [b.cache("latent_cache", (batch, s["context"], r + rope)), b.input("latent_entry", (batch, 1, r + rope))]
    kw = dict(heads=heads, kv_heads=1, causal=True)
    scores = b.attention_scores("qk", q, keys, head_dim=r + rope, out="scores", **kw)
    probs = b.softmax("softmax", scores, causal=True, out="probs")
    b.attention_values("av", probs, keys, head_dim=r, value_width=r + rope, out="attn_latent", **kw)
    return []


CLASSES = (KernelClass(MLA_DECODE_ATTENTION, lambda op: False, 29, claims=_latent, group="attention",
                       kinds=frozenset({"softmax"}), features=attention_rows, rows=(
                           Row("mla_decode_attention", ("batch", "context", "heads", "kv_lora_rank", "rope_dim"),
                               "one new token per sequence over context+1 latent entries", _build),),
                       fitted=(*KERNEL_PARAMS, PER_ROW), special=True, fallback=DECODE_ATTENTION,
                       about="MLA over the latent cache, one query per sequence (absorbed)"),)
