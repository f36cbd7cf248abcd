"""Invariants over random Llama-style shapes and phases (hypothesis)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from opgraph import hardware
from opgraph.models import LlamaConfig
from opgraph import FP16, Phase, analyze, strategy
from opgraph.core.tensor import FP32

H100 = hardware.load("h100-sxm")


@st.composite
def configs(draw):
    kv = draw(st.integers(1, 4))
    heads = kv * draw(st.integers(1, 4))
    head_dim = draw(st.sampled_from([8, 16, 64]))
    return LlamaConfig("random", d_model=heads * head_dim * draw(st.integers(1, 2)), n_heads=heads, n_kv_heads=kv,
                       head_dim=head_dim, d_ffn=draw(st.integers(1, 300)), n_layers=draw(st.integers(1, 4)),
                       vocab_size=draw(st.integers(1, 5000)), tie_embeddings=draw(st.booleans()))


phases = st.one_of(
    st.builds(Phase.prefill, st.integers(1, 8), st.integers(1, 64)),
    st.builds(Phase.decode, st.integers(1, 8), st.integers(1, 256)),
)


@settings(max_examples=60, deadline=None)
@given(configs(), phases)
def test_fusion_changes_bytes_never_flops(cfg, phase):
    model = cfg.build(phase)
    res = {p: analyze(model, strategy(p), H100) for p in ("unfused", "flash", "fused", "megakernel")}
    assert len({r.totals.flops for r in res.values()}) == 1
    b = {p: r.totals.bytes for p, r in res.items()}
    assert b["megakernel"] <= b["fused"] <= b["flash"] <= b["unfused"]
    # Each plan reads every weight exactly once (no kernel here shares a weight with another).
    assert len({r.totals.traffic.weight_bytes for r in res.values()}) == 1
    # The cache and the new K/V are always read/written; only re-reading the new K/V can be fused away.
    kv = {p: r.totals.traffic.kv_cache_bytes for p, r in res.items()}
    assert kv["megakernel"] == kv["fused"] <= kv["flash"] <= kv["unfused"]
    new_kv = 2 * phase.batch * phase.new_tokens * cfg.n_kv_heads * cfg.head_dim * 2 * cfg.n_layers
    assert kv["fused"] == new_kv + 2 * phase.batch * phase.past * cfg.n_kv_heads * cfg.head_dim * 2 * cfg.n_layers


@settings(max_examples=40, deadline=None)
@given(configs(), phases)
def test_op_rows_sum_to_block_and_blocks_to_model(cfg, phase):
    r = analyze(cfg.build(phase), strategy("fused"), H100)
    for b in r.blocks:
        assert sum(o.cost.flops for o in b.ops) == b.totals.flops
        assert sum(o.cost.traffic.bytes for o in b.ops) == b.totals.bytes
    assert sum(b.count * b.totals.flops for b in r.blocks) == r.totals.flops
    assert sum(b.count * b.totals.bytes for b in r.blocks) == r.totals.bytes


@settings(max_examples=30, deadline=None)
@given(configs(), phases, st.sampled_from(["unfused", "flash", "fused", "megakernel"]))
def test_weight_bytes_scale_with_dtype(cfg, phase, plan):
    import attrs
    half = analyze(attrs.evolve(cfg, dtype=FP16).build(phase), strategy(plan), H100)
    full = analyze(attrs.evolve(cfg, dtype=FP32).build(phase), strategy(plan), H100)
    assert full.weight_bytes == 2 * half.weight_bytes
    assert full.totals.traffic.weight_bytes == 2 * half.totals.traffic.weight_bytes
    assert full.params == half.params


@settings(max_examples=30, deadline=None)
@given(configs(), phases, st.sampled_from(["unfused", "flash", "fused", "megakernel"]))
def test_kv_bytes_scale_with_kv_dtype_only(cfg, phase, plan):
    from opgraph.models import BuildOptions
    from opgraph import BF16, FP8, Precision
    base = analyze(cfg.build(phase, BuildOptions(Precision.uniform(BF16))), strategy(plan), H100)
    fp8_kv = analyze(cfg.build(phase, BuildOptions(Precision(weight=BF16, act=BF16, kv=FP8))), strategy(plan), H100)
    assert 2 * fp8_kv.totals.traffic.kv_cache_bytes == base.totals.traffic.kv_cache_bytes
    assert fp8_kv.totals.traffic.weight_bytes == base.totals.traffic.weight_bytes
    assert fp8_kv.totals.traffic.activation_bytes == base.totals.traffic.activation_bytes
    assert fp8_kv.totals.flops == base.totals.flops


@settings(max_examples=30, deadline=None)
@given(configs(), phases, st.sampled_from(["unfused", "flash", "fused", "megakernel"]))
def test_weight_bytes_do_not_depend_on_the_plan_and_scale_with_weight_dtype(cfg, phase, plan):
    from opgraph.models import BuildOptions
    from opgraph import BF16, INT8, Precision
    model = cfg.build(phase)
    assert analyze(model, strategy(plan), H100).totals.traffic.weight_bytes == \
        analyze(model, strategy("unfused"), H100).totals.traffic.weight_bytes
    # int8 matrices (no group scales; the tables too, when asked) are half of bf16; vectors (norm scales) stay bf16.
    int8 = analyze(cfg.build(phase, BuildOptions(Precision(weight=INT8, act=BF16, kv=BF16, tables=INT8))),
                   strategy(plan), H100)
    bf16 = analyze(cfg.build(phase, BuildOptions(Precision.uniform(BF16))), strategy(plan), H100)
    vectors = sum(b.count * sum(t.nbytes for t in b.graph.weights() if len(t.shape) == 1) for b in model.blocks)
    assert 2 * (int8.weight_bytes - vectors) == bf16.weight_bytes - vectors
