"""Measure whole decode steps of a Llama-style model on a GPU, against opgraph's expected step time (issue 10's
serving-step target: Llama-3-8B decode steps, batch 8-128, context 1k-4k, bf16, within 10% of measurement).

    python3 benchmarks/measure_steps.py [--model llama-3-8b] [--batch 8,32,128] [--context 1024,4096] [--out FILE]

The step is built in torch from the preset's shapes with random bf16 weights (timing does not depend on their
values) and run as a serving engine runs a decode step: captured once in a CUDA graph, then replayed, so no host
launch work is in the time (the median of --repeats replays of --calls steps each). Its kernels are, one for one,
those of opgraph's `flash` plan (`opgraph report --fusion flash`): per layer the RMSNorm, q, k and v projections,
rope on q, rope on k (storing the new key and value in the KV cache), FlashAttention over the cache
(scaled_dot_product_attention), o_proj, the residual add, the RMSNorm, gate and up projections, SiLU, the multiply,
down_proj and the residual add; then the final norm and lm_head on every sequence's token. Norms and rope run
through torch.compile (one kernel each); the rest are torch's own kernels. Each (batch, context) is compared with
`analyze(model, flash, gpu).totals.expected_s` for the same step on the matching shipped spec (h100-sxm or h200).

Only Llama-style presets (RMSNorm, rotary positions on every dim, gated SiLU MLP, no biases, no MoE, MLA or sliding
window) can be built; any other is refused. Steps whose weights and KV cache do not fit the GPU's free memory are
skipped and said so. `--device cpu --tiny` runs a two-layer, narrow version of the same code without a GPU (how
this script is checked where there is none; its times mean nothing).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time

from opgraph import Phase, analyze, hardware, models, strategy
from opgraph.analysis import bench


def layer_shapes(cfg, tiny: bool) -> dict:
    """The step's sizes from a preset (a narrow two-layer copy with --tiny); a clear exit for a non-Llama preset."""
    unsupported = [why for why, bad in (("MoE", cfg.moe), ("MLA", cfg.mla), ("a sliding window", cfg.sliding_window),
                                        ("biases", cfg.qkv_bias or cfg.o_bias or cfg.mlp_bias or cfg.norm_bias),
                                        ("partial rotary", cfg.rotary_dim not in (None, cfg.head_dim)))
                   if bad]
    unsupported += [f"{field} {value}" for field, value, want in (("norm", cfg.norm, "rmsnorm"),
                                                                  ("positions", cfg.positions, "rope"),
                                                                  ("mlp", cfg.mlp, "swiglu")) if value != want]
    if unsupported:
        sys.exit(f"measure_steps: {cfg.name} is not a Llama-style model ({', '.join(unsupported)}); "
                 f"this script builds RMSNorm, rope and gated-SiLU decoders only")
    s = dict(d=cfg.d_model, heads=cfg.n_heads, kv=cfg.n_kv_heads, hd=cfg.head_dim, ffn=cfg.d_ffn, layers=cfg.n_layers,
             vocab=cfg.vocab_size)
    if tiny:
        s.update(d=64, heads=4, kv=2, hd=16, ffn=128, layers=2, vocab=256)
    return s


def build_step(torch, s: dict, batch: int, context: int, device: str):
    """(step, buffers): a zero-argument decode step over a KV cache of `context` tokens, and what it writes."""
    dt = torch.bfloat16 if device == "cuda" else torch.float32
    F = torch.nn.functional
    d, heads, kv, hd, ffn, vocab = s["d"], s["heads"], s["kv"], s["hd"], s["ffn"], s["vocab"]

    def w(*shape):
        return (torch.randn(*shape, device=device, dtype=torch.float32) * 0.02).to(dt)

    layers = [dict(n1=w(d) + 1, q=w(heads * hd, d), k=w(kv * hd, d), v=w(kv * hd, d), o=w(d, heads * hd), n2=w(d) + 1,
                   g=w(ffn, d), u=w(ffn, d), down=w(d, ffn),
                   kc=torch.zeros(batch, kv, context + 1, hd, device=device, dtype=dt),
                   vc=torch.zeros(batch, kv, context + 1, hd, device=device, dtype=dt)) for _ in range(s["layers"])]
    emb, head, nf = w(vocab, d), w(vocab, d), w(d) + 1
    inv = 1.0 / (500000.0 ** (torch.arange(0, hd, 2, device=device, dtype=torch.float32) / hd))
    angle = torch.cat([context * inv, context * inv])  # the new token's position: `context` tokens are cached
    cos, sin = angle.cos().to(dt), angle.sin().to(dt)
    ids = torch.randint(0, vocab, (batch,), device=device)

    @torch.compile(dynamic=False)
    def rms(x, g):
        return F.rms_norm(x, (d,), g, 1e-5)

    def rotate(x):  # x [batch, heads, hd]: Llama's rotate_half convention
        half = x.shape[-1] // 2
        return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin

    @torch.compile(dynamic=False)
    def rope_q(q):
        return rotate(q.view(batch, heads, hd))

    @torch.compile(dynamic=False)
    def rope_k_store(k, v, kc, vc):  # the new key, rotated, and the new value go straight into the cache
        kc[:, :, context] = rotate(k.view(batch, kv, hd))
        vc[:, :, context] = v.view(batch, kv, hd)

    def step():
        x = F.embedding(ids, emb)
        for p in layers:
            h = rms(x, p["n1"])
            q, k, v = F.linear(h, p["q"]), F.linear(h, p["k"]), F.linear(h, p["v"])
            q = rope_q(q)
            rope_k_store(k, v, p["kc"], p["vc"])
            attn = F.scaled_dot_product_attention(q.unsqueeze(2), p["kc"], p["vc"], enable_gqa=heads != kv)
            x = x + F.linear(attn.reshape(batch, heads * hd), p["o"])
            h = rms(x, p["n2"])
            x = x + F.linear(F.silu(F.linear(h, p["g"])) * F.linear(h, p["u"]), p["down"])
        return F.linear(rms(x, nf), head)

    return step


def step_bytes(s: dict, batch: int, context: int) -> int:
    """Weights and KV cache at 2 bytes a value: what the GPU must hold."""
    per_layer = s["d"] * s["hd"] * (2 * s["heads"] + 2 * s["kv"]) + 3 * s["d"] * s["ffn"]  # q, o, k, v; gate, up, down
    weights = s["layers"] * per_layer + 2 * s["vocab"] * s["d"]  # and the embedding and lm_head
    return 2 * (weights + 2 * s["layers"] * batch * s["kv"] * (context + 1) * s["hd"])


def measure(torch, step, device: str, calls: int, repeats: int) -> tuple[float, str]:
    """(seconds per step, how): CUDA-graph replays on a GPU (opgraph bench's timing), plain calls on the CPU."""
    for _ in range(3):
        step()  # compiles, then warms up
    if device != "cuda":
        t = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(calls):
                step()
            t.append((time.perf_counter() - t0) / calls)
        return statistics.median(t), "CPU calls (times mean nothing)"
    return bench.timed(torch, step, calls=calls, repeats=repeats)


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="llama-3-8b")
    ap.add_argument("--batch", type=ints, default=[8, 32, 128])
    ap.add_argument("--context", type=ints, default=[1024, 4096])
    ap.add_argument("--calls", type=int, default=5, help="steps captured per replay (default: 5)")
    ap.add_argument("--repeats", type=int, default=5, help="replays timed, the median kept (default: 5)")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--tiny", action="store_true", help="a two-layer narrow model (to check the script on a CPU)")
    ap.add_argument("--out", help="CSV of the measured steps")
    a = ap.parse_args(argv)
    import torch
    cfg = models.get(a.model)
    s = layer_shapes(cfg, a.tiny)
    gpu, name = "", "CPU"
    if a.device == "cuda":
        name = torch.cuda.get_device_name()
        gpu = "h200" if "H200" in name else "h100-sxm" if "H100" in name else ""
    hw = hardware.load(gpu) if gpu else None
    rows = []
    for batch in a.batch:
        for context in a.context:
            need = step_bytes(s, batch, context)
            if a.device == "cuda" and need > torch.cuda.mem_get_info()[0] * 0.9:
                print(f"batch {batch}, context {context}: skipped, {need / 1e9:.1f} GB of weights and KV cache do "
                      f"not fit the GPU's free memory")
                continue
            step = build_step(torch, s, batch, context, a.device)
            seconds, how = measure(torch, step, a.device, a.calls, a.repeats)
            row = {"model": a.model, "gpu": name, "batch": batch, "context": context,
                   "step_us": round(seconds * 1e6, 2), "how": how}
            line = f"batch {batch}, context {context}: measured {seconds * 1e3:.3f} ms ({how})"
            if hw and not a.tiny:
                cost = analyze(cfg.build(Phase.decode(batch, context)), strategy("flash"), hw).totals
                row.update(expected_us=round(cost.expected_s * 1e6, 2), roofline_us=round(cost.time_s * 1e6, 2))
                line += (f"; opgraph flash on {gpu}: expected {cost.expected_s * 1e3:.3f} ms "
                         f"({(cost.expected_s - seconds) / seconds:+.1%}), roofline {cost.time_s * 1e3:.3f} ms "
                         f"({(cost.time_s - seconds) / seconds:+.1%})")
            print(line, flush=True)
            rows.append(row)
            del step
            if a.device == "cuda":
                torch.cuda.empty_cache()
    if a.out and rows:
        with open(a.out, "w", newline="") as f:
            out = csv.DictWriter(f, list(dict.fromkeys(k for r in rows for k in r)))
            out.writeheader()
            out.writerows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
