"""One pricing step: a kernel costs the same in `validate` (a measured row, rebuilt) as in `report` (the same kernel
inside a model), to the last bit, for every measured class; and `sweep` and `crossover` give the report's times and
verdicts at every point, collectives included.

Each case names a kernel of a real model under a fusion plan and the measured row that times that kernel, with its
shape from the model's config by hand (Llama-3-8B: hidden 4,096, 32 heads, 8 KV heads of 128, MLP 14,336, vocab
128,256; GPT-2: hidden 768; Nemotron-H-8B: hidden 4,096, MLP 21,504; Mixtral-8x7B: top-2 of 8 experts, hidden 4,096,
expert width 14,336; DeepSeek-V3: 128 heads, kv_lora_rank 512, qk_rope_head_dim 64).
The test first checks that the two are the same kernel (FLOPs, bytes, wire bytes), then that their times agree.
"""

import attrs
import numpy as np
import pytest

from opgraph import BF16, FP8, Block, GraphBuilder, Model, Phase, Precision, analyze, hardware, models, strategy
from opgraph.analysis.crossover import crossovers
from opgraph.analysis.sweep import Sweeper
from opgraph.analysis.validate import expected_times, features, validate
from opgraph.core.fusion import FusionPlan
from opgraph.files.measurements import Measurement
from opgraph.models import BuildOptions
from opgraph.pricing.kinds import ROWS, time_class
from opgraph.pricing.timing import ROOFLINE

H100 = hardware.load("h100-sxm")
UNFUSED, FLASH = strategy("unfused"), strategy("flash")


def grouped(*ops):
    """The unfused plan with `ops` fused into one kernel."""
    return attrs.evolve(UNFUSED, name="grouped", groups=[ops])


LLAMA = "llama-3-8b"
DECODE, PREFILL = Phase.decode(32, 1024), Phase.prefill(2, 512)
CASES = [  # (model, build options, phase, plan, block, kernel, measured class, dtype, shape)
    (LLAMA, {}, DECODE, UNFUSED, "layer", "q_proj", "gemm", "bf16", {"m": 32, "n": 4096, "k": 4096}),
    (LLAMA, {}, PREFILL, UNFUSED, "layer", "gate_proj", "gemm", "bf16", {"m": 1024, "n": 14336, "k": 4096}),
    (LLAMA, {"precision": Precision.uniform(FP8)}, DECODE, UNFUSED, "layer", "down_proj", "gemm", "fp8",
     {"m": 32, "n": 4096, "k": 14336}),
    (LLAMA, {"causal_skip": True}, PREFILL, FLASH, "layer", "qk", "prefill_attention", "bf16",
     {"batch": 2, "seq_len": 512, "heads": 32, "kv_heads": 8, "head_dim": 128}),
    (LLAMA, {}, DECODE, FLASH, "layer", "qk", "decode_attention", "bf16",
     {"batch": 32, "context": 1024, "heads": 32, "kv_heads": 8, "head_dim": 128}),
    (LLAMA, {}, DECODE, UNFUSED, "layer", "input_layernorm", "rms_norm", "bf16", {"tokens": 32, "hidden": 4096}),
    (LLAMA, {}, PREFILL, grouped("attn_residual", "post_attention_layernorm"), "layer", "attn_residual",
     "add_rms_norm", "bf16", {"tokens": 1024, "hidden": 4096}),
    (LLAMA, {}, DECODE, grouped("act", "mul"), "layer", "act", "silu_mul", "bf16", {"tokens": 32, "hidden": 14336}),
    ("rotary", {}, PREFILL, UNFUSED, "layer", "rope", "rope", "bf16",
     {"tokens": 1024, "heads": 32, "kv_heads": 8, "head_dim": 128}),
    (LLAMA, {}, PREFILL, UNFUSED, "embed_head", "embedding", "embedding", "bf16",
     {"tokens": 1024, "vocab": 128256, "hidden": 4096}),
    ("gpt2", {}, DECODE, UNFUSED, "layer", "input_layernorm", "layer_norm", "bf16", {"tokens": 32, "hidden": 768}),
    ("nemotron-h-8b", {}, DECODE, UNFUSED, "dense_layer", "act", "relu2", "bf16", {"tokens": 32, "hidden": 21504}),
    (LLAMA, {"tp": 8}, DECODE, UNFUSED, "layer", "o_allreduce", "all_reduce", "bf16",
     {"gpus": 8, "elements": 32 * 4096}),
    ("mixtral-8x7b", {"ep": 8, "dp": 8, "expert_imbalance": 1.0}, DECODE, UNFUSED, "layer", "dispatch", "ep_dispatch",
     "bf16", {"gpus": 8, "tokens": 32, "top_k": 2, "hidden": 4096}),
    ("mixtral-8x7b", {"ep": 8, "dp": 8, "expert_imbalance": 1.0}, DECODE, UNFUSED, "layer", "combine_back",
     "ep_combine", "bf16", {"gpus": 8, "tokens": 32, "top_k": 2, "hidden": 4096}),
    # DeepSeek-V3's absorbed MLA at TP 8: 128 heads / 8 a GPU over the 512 + 64 latent entries
    ("deepseek-v3", {"tp": 8}, DECODE, FLASH, "moe_layer", "qk", "mla_decode_attention", "bf16",
     {"batch": 32, "context": 1024, "heads": 16, "kv_lora_rank": 512, "rope_dim": 64}),
    # vLLM's fused-MoE call: 32 tokens x top-2 touch all 8 experts, as the balanced row does
    ("mixtral-8x7b", {}, DECODE, strategy("vllm"), "layer", "experts.gate_proj", "moe", "bf16",
     {"tokens": 32, "hidden": 4096, "inter": 14336, "top_k": 2, "experts": 8}),
]
TIME_MODELS = {"the shipped calibration": H100, "no calibration": attrs.evolve(H100, timing=ROOFLINE),
               "--launch-us 7 --overlap 0.3": attrs.evolve(H100, timing=H100.timing.overridden("x", latency_s=7e-6,
                                                                                                overlap=0.3))}


def test_every_measured_class_has_a_case():
    assert {case[6] for case in CASES} == set(ROWS)


def rotary(phase):
    """A user's layer whose q and k come out of one fused projection and are rotated by one rope op, as vLLM's
    rotary kernel rotates both in one launch (Llama's graphs rotate them apart: two kernels)."""
    b = GraphBuilder(Precision.uniform(BF16), name="layer")
    x = b.input("x", (phase.batch, phase.new_tokens, 4096))
    qk = b.linear("qk_proj", x, b.weight("w", ((32 + 8) * 128, 4096)))
    b.rope("rope", qk, head_dim=128)
    return Model("rotary", phase, [Block("layer", 32, b.build())])


def _kernel(case, hw):
    name, options, phase, plan, block, kernel = case[:6]
    model = rotary(phase) if name == "rotary" else models.get(name).build(phase, BuildOptions(**options))
    cost = analyze(model, plan, hw)
    b = next(b for b in cost.blocks if b.name == block)
    ops = [o for o in b.ops if o.kernel == kernel]
    assert ops, f"{name}: no kernel {kernel!r} in block {block!r}"
    return b, ops


@pytest.mark.parametrize("model", TIME_MODELS)
@pytest.mark.parametrize("case", CASES, ids=[f"{c[6]}-{c[7]}-{c[5]}" for c in CASES])
def test_validate_prices_a_row_exactly_as_report_prices_its_kernel(case, model):
    hw = TIME_MODELS[model]
    block, ops = _kernel(case, hw)
    kind, dtype, shape = case[6:]
    row = Measurement(kind, dtype, shape, 1e-5)
    v = validate([row], hw)
    f = features([row], hw)
    # the same kernel: the row rebuilds what the model runs
    assert sum(o.cost.flops for o in ops) == _totals(row, hw).flops
    assert sum(o.cost.bytes for o in ops) == _totals(row, hw).bytes
    assert sum(o.cost.wire_bytes for o in ops) == _totals(row, hw).wire_bytes
    # and the same times, to the last bit
    assert float(v.expected_s[0]) == block.kernel_s[case[5]]
    assert float(v.roofline_s[0]) == sum(o.cost.time_s for o in ops)
    # calibrate fits its parameters under that same formula: replayed over arrays it gives the report's time
    times, _ = expected_times(hw.timing, [time_class(kind, dtype)], f)
    assert float(times[0]) == block.kernel_s[case[5]]


def _totals(row, hw):
    from opgraph.analysis.validate import ONE_KERNEL, kernel
    return analyze(kernel(row.kind, row.dtype, **row.shape), ONE_KERNEL, hw).totals


SWEPT = [("llama-3-8b", {"tp": 8}, "decode"), ("llama-3-8b", {}, "prefill"),
         ("mixtral-8x7b", {"ep": 8, "dp": 8}, "decode"), ("nemotron-h-8b", {"tp": 2}, "decode")]


@pytest.mark.parametrize("name, options, phase", SWEPT)
def test_sweep_gives_the_reports_times_and_verdict_at_every_point(name, options, phase):
    """Model verdicts weigh the links too (a sweep once judged compute against memory alone)."""
    build = lambda ph: models.get(name).build(ph, BuildOptions(**options))  # noqa: E731
    plan = strategy("fused")
    batches, lengths = np.array([1, 1, 8, 64, 512, 3]), np.array([128, 4096, 1, 2048, 64, 100_000])
    grid = Sweeper(build, plan, H100, phase).grid(batches, lengths)
    for i, (b, n) in enumerate(zip(batches.tolist(), lengths.tolist())):
        t = analyze(build(Phase.of(phase, b, n)), plan, H100).totals
        assert float(grid.time_s[i]) == t.time_s and float(grid.expected_s[i]) == t.expected_s
        assert grid.bound[i] == t.bound
        point = Sweeper(build, plan, H100, phase).point(b, n)
        assert (point.model_time_s, point.expected_s, point.bound) == (t.time_s, t.expected_s, t.bound)


@pytest.mark.parametrize("name, options, phase", SWEPT[:3])
def test_crossover_turns_where_the_report_turns_compute_bound(name, options, phase):
    """At each crossover n the report calls the op (or block) compute-bound and at n - 1 not; ops fused away
    entirely have no crossover of their own."""
    build = lambda ph: models.get(name).build(ph, BuildOptions(**options))  # noqa: E731
    plan, fixed = strategy("fused"), 256
    found = crossovers(build, plan, H100, phase, fixed)

    def verdicts(n):
        cost = analyze(build(Phase.along(phase, n, fixed)), plan, H100)
        out = {b.name: b.totals.bound for b in cost.blocks}
        out.update({f"{b.name}.{o.name}": o.bound if o.fused else o.cost.bound for b in cost.blocks for o in b.ops})
        return out

    at_one = verdicts(1)
    assert not any(x.label in at_one and at_one[x.label] == "fused" for x in found)
    assert {label for label, v in at_one.items() if v == "fused"}, "the fused plan fuses some ops away entirely"
    for x in found:
        if x.at is None:
            continue
        assert verdicts(x.at)[x.label] == "compute", x
        if x.at > 1:
            assert verdicts(x.at - 1)[x.label] != "compute", x
