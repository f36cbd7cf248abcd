"""`opgraph models`, `opgraph hardware`, `opgraph fusions`: what ships, listed."""

from __future__ import annotations

import attrs

from opgraph.analysis.catalog import FusionCatalog, HardwareCatalog, ModelCatalog
from opgraph.pricing.hardware import Hardware
from opgraph.render import renderer
from opgraph.render.text import lines, sig, table, to_json


@renderer(ModelCatalog, "json")
def models_json(c: ModelCatalog, fmt: str) -> str:
    return to_json([{"name": e.name, **e.summary, "params": e.params, "weight_bytes": e.weight_bytes,
                     "source": e.source} for e in c.entries])


def architecture(summary: dict) -> str:
    """What sets a model apart, in a few words, from its summary fields."""
    ratios = summary.get("compress_ratios", ())
    words = ["MLA" if summary.get("attention") == "mla" else
             "compressed attention" + (f" ({', '.join(f'{r}:1' for r in ratios)})" if ratios else "")
             if summary.get("attention") == "compressed" else
             "MHA" if summary.get("kv_heads") == summary["heads"] else "GQA"]
    if "window" in summary:
        words.append(f"window {summary['window']}")
    if "chunk" in summary:
        words.append(f"chunks of {summary['chunk']}")
    kinds = summary.get("layer_kinds", {})
    if len(kinds) > 1:  # a model that mixes layer kinds: which, and how many of each
        words.append(" + ".join(f"{n} {name.removesuffix('_layer').replace('_', ' ')}" for name, n in kinds.items()))
    if "experts" in summary:
        shared = f" +{summary['shared_experts']} shared" if summary.get("shared_experts") else ""
        zero = f" (+{summary['zero_experts']} zero-computation)" if summary.get("zero_experts") else ""
        words.append(f"MoE {summary['experts']}{zero} top-{summary['top_k']}{shared}")
    if summary.get("streams"):
        words.append(f"{summary['streams']} hyper-connection streams")
    if summary.get("attn_res_snapshots"):
        words.append(f"Block AttnRes ({summary['attn_res_snapshots']} block snapshots)")
    if summary.get("tied_embeddings"):
        words.append("tied")
    if summary.get("weight_dtype"):
        words.append(f"{summary['weight_dtype']} weights")
    if summary.get("mtp_layers"):  # shipped, not run by next-token inference: what `serve --draft mtp` runs
        words.append(f"{summary['mtp_layers']} MTP layer{'s' if summary['mtp_layers'] > 1 else ''}")
    return ", ".join(words)


@renderer(ModelCatalog, "table")
def models_text(c: ModelCatalog, fmt: str) -> str:
    shown = ("layers", "d_model", "heads", "kv_heads", "head_dim", "d_ffn", "vocab")
    rows = [[e.name, *(e.summary.get(k, "-") for k in shown), architecture(e.summary), f"{e.params:,}",
             sig(e.weight_bytes / 1e9)] for e in c.entries]
    return lines(table(rows, ["model", *(k.replace("_", " ") for k in shown), "architecture", "params",
                              "weights GB"], fmt))


def main_rate(h: Hardware) -> tuple[str, float]:
    """The bf16 rate, or fp16 on chips without bf16 (V100): the reference table's column."""
    for dt in ("bf16", "fp16"):
        if dt in h.matrix_flops:
            return dt, h.matrix_flops[dt]
    dt = next(iter(h.matrix_flops))
    return dt, h.matrix_flops[dt]


@renderer(HardwareCatalog, "json")
def hardware_json(c: HardwareCatalog, fmt: str) -> str:
    return to_json([{"name": h.name, "display_name": h.display_name, "vendor": h.vendor or None,
                     "matrix_flops_per_s": h.matrix_flops,
                     "vector_flops_per_s": h.vector_flops, "bandwidth_bytes_per_s": h.bandwidth,
                     "capacity_bytes": int(h.capacity), "ridge_flops_per_byte": main_rate(h)[1] / h.bandwidth,
                     "sms": h.sms, "source": h.source} for h in c.specs])


@renderer(HardwareCatalog, "table")
def hardware_text(c: HardwareCatalog, fmt: str) -> str:
    rows = []
    for h in c.specs:
        dt, rate = main_rate(h)
        fp8 = h.matrix_flops.get("fp8")
        rows.append([h.name, h.display_name, f"{sig(rate / 1e12)} ({dt})", "-" if fp8 is None else sig(fp8 / 1e12),
                     sig(h.vector_flops / 1e12), f"{h.bandwidth / 1e9:,.0f}", f"{h.capacity / 2**30:,.0f}",
                     f"{rate / h.bandwidth:.0f}", "-" if h.sms is None else h.sms])
    return lines(table(rows, ["name", "GPU", "matrix TFLOP/s", "fp8 TFLOP/s", "vector TFLOP/s", "memory GB/s",
                              "memory GiB", "ridge FLOP/B", "SMs"], fmt,
                       colalign=("left", "left", "right", "right", "right", "right", "right", "right", "right")))


@renderer(FusionCatalog, "json")
def fusions_json(c: FusionCatalog, fmt: str) -> str:
    return to_json([{"name": p.name, "description": p.description,
                     "rules": [{k: v for k, v in attrs.asdict(r).items() if v not in (None, False)} for r in p.rules],
                     "groups": [list(g) for g in p.groups]} for p in c.plans])


@renderer(FusionCatalog, "table")
def fusions_text(c: FusionCatalog, fmt: str) -> str:
    rows = [[p.name, p.description, "\n".join(f"- {'never: ' if r.never else ''}{r.name}" for r in p.rules) or "-"]
            for p in c.plans]
    return lines(table(rows, ["strategy", "what it does", "rules"], fmt, maxcolwidths=[None, 50, 60]))
