"""Tensor parallelism (Megatron): one GPU's share of the weights and work, and the all-reduces between, derived by
hand for Llama-3-70B at TP 8 on H100 SXM."""

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opgraph import Phase, analyze, choices, hardware, models, strategy
from opgraph.core.model import BuildOptions
from opgraph.errors import OpgraphError
from opgraph.models import LlamaConfig
from userland import opgraph

LLAMA70 = models.get("llama-3-70b")  # d 8192, 64 heads, 8 KV heads of 128, FFN 28672, 80 layers, vocab 128256
H100 = hardware.load("h100-sxm")
D, HD, FFN, VOCAB, LAYERS = 8192, 128, 28672, 128256, 80


def test_per_gpu_weights_are_an_eighth_of_each_sharded_matrix_plus_the_replicated_norms():
    m = LLAMA70.build(Phase.decode(1, 16), BuildOptions(tp=8))
    layer = 2 * (8 * HD * D) + 2 * (1 * HD * D) + 3 * (FFN // 8 * D) + 2 * D  # q, o; k, v; gate, up, down; 2 norms
    head = 2 * (VOCAB // 8 * D) + D  # vocab-parallel embedding and lm_head; the final norm whole
    assert m.weight_bytes() == 2 * (LAYERS * layer + head)  # bf16
    assert m.gpus == 8


@pytest.mark.parametrize("phase", [Phase.decode(32, 1024), Phase.prefill(4, 512)], ids=["decode", "prefill"])
def test_two_all_reduces_per_layer_of_the_hidden_states(phase):
    cost = analyze(LLAMA70.build(phase, BuildOptions(tp=8)), strategy("fused"), H100)
    layer = cost.blocks[0]
    reduces = [o for o in layer.ops if o.fn == "all_reduce"]
    buffer = phase.tokens * D * 2  # B x S x d_model, bf16
    assert [o.name for o in reduces] == ["o_allreduce", "down_allreduce"]
    for o in reduces:
        assert o.cost.wire_bytes == 2 * 7 * buffer // 8  # a ring moves 2(n-1)/n of the buffer per GPU
        assert o.cost.comm_s == pytest.approx(o.cost.wire_bytes / 450e9, rel=1e-12)


def test_the_group_does_the_single_gpu_work():
    """Matrix FLOPs of a layer: eight GPUs' shares add up to one GPU's whole layer (no work is replicated when the
    KV heads split evenly)."""
    phase = Phase.prefill(2, 256)
    whole = analyze(LLAMA70.build(phase), strategy("unfused"), H100).blocks[0]
    share = analyze(LLAMA70.build(phase, BuildOptions(tp=8)), strategy("unfused"), H100).blocks[0]
    matmul = lambda block: sum(o.cost.flops for o in block.ops if o.kind == "matmul")  # noqa: E731
    assert 8 * matmul(share) == matmul(whole)


def test_tp_one_is_todays_report():
    phase = Phase.decode(16, 2048)
    a = analyze(LLAMA70.build(phase), strategy("fused"), H100)
    b = analyze(LLAMA70.build(phase, BuildOptions(tp=1)), strategy("fused"), H100)
    assert (a.totals.flops, a.totals.bytes, a.totals.time_s, a.totals.expected_s) == \
           (b.totals.flops, b.totals.bytes, b.totals.time_s, b.totals.expected_s)


def test_kv_heads_are_replicated_when_tp_exceeds_them():
    m = models.get("llama-3-8b").build(Phase.decode(1, 1024), BuildOptions(tp=16))  # 8 KV heads over 16 GPUs
    k = m.blocks[0].graph.ops["k_proj"].inputs[1]
    assert k.shape == (HD, 4096)  # one KV head per GPU
    assert any("stored 2 times across the group" in n for n in m.notes)


def test_mixtral_experts_are_sliced_and_the_router_is_whole():
    """Mixtral 8x7B at TP 8: d 4096, 32 heads and 8 KV heads of 128, 8 experts of width 14336, vocab 32000."""
    m = models.get("mixtral-8x7b").build(Phase.decode(1, 16), BuildOptions(tp=8))
    d = 4096
    attention = 2 * (4 * HD * d) + 2 * (1 * HD * d)  # q, o: 4 heads; k, v: 1 KV head
    experts = 8 * 3 * (14336 // 8) * d  # every expert's 1/8 slice of gate, up and down
    layer = attention + experts + 8 * d + 2 * d  # + the router, whole, + two norms
    assert m.weight_bytes() == 2 * (32 * layer + 2 * (32000 // 8) * d + d)
    assert [op.name for op in m.blocks[0].graph.ops.values() if op.kind == "collective"] == ["o_allreduce",
                                                                                             "moe_allreduce"]


def test_mla_splits_its_heads_and_keeps_the_latent_cache_whole():
    v3 = models.get("deepseek-v3")  # 128 heads; latent 512 + rope 64 per token
    whole = v3.build(Phase.decode(4, 1024))
    share = v3.build(Phase.decode(4, 1024), BuildOptions(tp=8))
    cache = lambda m: m.blocks[0].graph.tensors["latent_cache"].shape  # noqa: E731
    assert cache(share) == cache(whole) == (4, 1024, 576)
    assert share.blocks[0].graph.ops["qk"].outputs[0].shape[1] == 128 // 8
    assert any("the KV cache is not split" in n for n in share.notes)


@pytest.mark.parametrize("name, tp, says", [
    ("llama-3-8b", 3, "--tp 3 does not divide the attention heads (32)"),
    ("qwen2-7b", 14, "--tp 14 is not a multiple of the 4 KV heads"),  # 28 heads split, 4 KV heads cannot
    ("mixtral-8x7b", 3, "--tp 3 does not divide the attention heads (32)"),
    ("deepseek-v2-lite", 32, "--tp 32 does not divide the attention heads (16)"),
])
def test_splits_that_do_not_work_are_errors(name, tp, says):
    with pytest.raises(OpgraphError, match=re.escape(says)):
        models.get(name).build(Phase.decode(1, 1), BuildOptions(tp=tp))


def test_a_group_across_nodes_runs_its_all_reduces_at_the_network_bandwidth():
    """Llama-3.1-405B (d_model 16,384) at TP 16 over two 8-GPU H100 nodes: the ring's slowest hop is the
    50 GB/s-per-GPU network (400 Gb/s InfiniBand), not NVLink."""
    phase = Phase.decode(32, 1024)
    cost = analyze(models.get("llama-3.1-405b").build(phase, BuildOptions(tp=16)), strategy("fused"), H100)
    reduce = next(o for o in cost.blocks[0].ops if o.fn == "all_reduce")
    buffer = 32 * 16384 * 2
    assert reduce.cost.wire_bytes == 2 * 15 * buffer // 16
    assert reduce.cost.comm_s == pytest.approx(2 * 15 * buffer / 16 / 50e9, rel=1e-12)


@pytest.mark.parametrize("tp, across, says", [
    (16, False, "--tp 16 spans 2 nodes of 8 h100-sxm GPUs"),
    (9, False, "--tp 9 spans 2 nodes of 8 h100-sxm GPUs"),
    (8, True, "--across-nodes: --tp 8 fits in one node of 8 h100-sxm GPUs"),
    (1, True, "--across-nodes: --tp 1 fits in one GPU"),
])
def test_a_group_that_spans_nodes_must_say_so(tp, across, says):
    with pytest.raises(OpgraphError, match=re.escape(says)):
        choices.group_fits(H100, tp, across)


def test_groups_within_a_node_or_declared_across_nodes_pass():
    assert choices.group_fits(H100, 8) is H100
    assert choices.group_fits(H100, 16, across_nodes=True) is H100


def test_the_command_line_refuses_a_group_across_nodes_and_names_the_flag():
    r = opgraph("report", "llama-3.1-405b", "--tp", "16", "--phase", "decode")
    assert r.returncode != 0 and "add --across-nodes" in r.stderr and "Traceback" not in r.stderr
    r = opgraph("report", "llama-3.1-405b", "--tp", "16", "--across-nodes", "--phase", "decode")
    assert r.returncode == 0
    assert "the group of 16 spans 2 nodes, so its collectives cross the network's 50.0 GB/s" in r.stdout


@st.composite
def split_configs(draw):
    """A Llama-style model and a TP degree that splits it: heads and FFN divisible, KV heads either split or
    replicated, the vocabulary anything (padded)."""
    tp = draw(st.sampled_from([2, 4, 8]))
    kv = draw(st.sampled_from([k for k in (1, 2, 4, 8, 16) if k % tp == 0 or tp % k == 0]))
    heads = max(kv, tp) * draw(st.integers(1, 3))
    head_dim = draw(st.sampled_from([8, 16, 64]))
    cfg = LlamaConfig("random", d_model=heads * head_dim, n_heads=heads, n_kv_heads=kv, head_dim=head_dim,
                      d_ffn=tp * draw(st.integers(1, 40)), n_layers=draw(st.integers(1, 4)),
                      vocab_size=draw(st.integers(1, 5000)), tie_embeddings=draw(st.booleans()))
    return cfg, tp


@settings(max_examples=40, deadline=None)
@given(split_configs(), st.one_of(st.builds(Phase.prefill, st.integers(1, 4), st.integers(1, 32)),
                                  st.builds(Phase.decode, st.integers(1, 4), st.integers(1, 128))))
def test_the_group_holds_the_model_plus_what_it_replicates_and_pads(case, phase):
    """Across the group: every parameter of the model once, plus (tp - 1) copies of the norms, the copies of
    k_proj and v_proj when tp exceeds the KV heads, and the vocabulary's padding rows; the matmul FLOPs likewise
    gain only the replicated k/v projections and the padded logits."""
    cfg, tp = case
    d, hd, kv, L = cfg.d_model, cfg.head_dim, cfg.n_kv_heads, cfg.n_layers
    whole, share = cfg.build(phase), cfg.build(phase, BuildOptions(tp=tp))
    copies = tp - kv if kv < tp else 0  # KV heads held beyond the model's
    pad = -(-cfg.vocab_size // tp) * tp - cfg.vocab_size
    tables = 1 if cfg.tie_embeddings else 2
    extra = (tp - 1) * (2 * L + 1) * d + L * 2 * copies * hd * d + tables * pad * d
    assert tp * share.params() == whole.params() + extra
    matmul = lambda m: sum(b.count * o.flops for b in m.blocks for o in b.graph.ops.values()  # noqa: E731
                           if o.kind == "matmul")
    logits_rows = phase.batch  # prefill's head reads only each sequence's last position
    extra_flops = L * 2 * phase.tokens * d * 2 * copies * hd + 2 * logits_rows * d * pad
    assert tp * matmul(share) == matmul(whole) + extra_flops


def test_the_group_reports_its_copies_beyond_the_model():
    """Llama-3-8B at TP 16: each GPU keeps every norm whole (15 extra copies of 32 x 2 x 4,096 + 4,096 values)
    and one of the 8 KV heads, so k_proj and v_proj are stored 16 times where the model has 8 heads' worth."""
    cost = analyze(models.get("llama-3-8b").build(Phase.decode(1, 1024), BuildOptions(tp=16)), strategy("fused"), H100)
    norms = 15 * (32 * 2 * 4096 + 4096) * 2
    kv_copies = 32 * 2 * (16 - 8) * HD * 4096 * 2
    assert cost.whole_weight_bytes == 16_060_522_496  # Llama-3-8B's 8,030,261,248 parameters in bf16
    assert 16 * cost.weight_bytes - cost.whole_weight_bytes == norms + kv_copies
    r = opgraph("report", "llama-3-8b", "--tp", "16", "--across-nodes", "--phase", "decode", "--format", "json")
    group = json.loads(r.stdout)["phases"]["decode"]["group"]
    assert group["copied_weight_bytes"] == norms + kv_copies and group["model_weight_bytes"] == 16_060_522_496


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_communication_overlap_hides_that_share_of_the_smaller_of_comm_and_compute(share):
    """--comm-overlap F: a layer's total is the sum of its ops' times minus F x min(its collectives' time, the
    rest), in the roofline and the expected time alike; the op rows keep their own times."""
    import attrs
    phase = Phase.decode(32, 1024)
    model = LLAMA70.build(phase, BuildOptions(tp=8))
    plain = analyze(model, strategy("fused"), H100).blocks[0]
    hidden = analyze(model, strategy("fused"), attrs.evolve(H100, comm_overlap=share)).blocks[0]
    for field in ("time_s", "expected_s"):
        comm = sum(getattr(o.cost, field) for o in plain.ops if o.kind == "collective")
        total = getattr(plain.totals, field)
        assert comm > 0
        assert getattr(hidden.totals, field) == pytest.approx(total - share * min(comm, total - comm), rel=1e-12)
    assert [o.cost for o in hidden.ops] == [o.cost for o in plain.ops]


@pytest.mark.parametrize("phase, slice_", [(Phase.decode(32, 1024), (4, 1)), (Phase.prefill(2, 512), (2, 64))],
                         ids=["decode", "prefill"])
def test_sequence_parallelism_splits_the_tokens_between_layers(phase, slice_):
    """--sp at TP 8 (Megatron-SP): the hidden states between layers are one GPU's eighth of the tokens (a decode
    step's sequences, a prompt's positions); each all-reduce becomes a reduce-scatter (7/8 of the whole buffer on
    the wire) and an all-gather (7 slices received); norms and residual adds run on the slice."""
    plain = {o.name: o.cost for o in analyze(LLAMA70.build(phase, BuildOptions(tp=8)), strategy("fused"), H100).blocks[0].ops}
    cost = analyze(LLAMA70.build(phase, BuildOptions(tp=8, sp=True)), strategy("fused"), H100)
    ops = {o.name: o for o in cost.blocks[0].ops}
    whole = phase.tokens * D * 2  # B x S x d_model, bf16
    piece = slice_[0] * slice_[1] * D * 2
    assert piece * 8 == whole
    for gather, scatter in (("attn_allgather", "o_reducescatter"), ("mlp_allgather", "down_reducescatter")):
        assert ops[gather].cost.wire_bytes == 7 * piece
        assert ops[scatter].cost.wire_bytes == 7 * whole // 8
    assert sum(o.cost.wire_bytes for o in ops.values()) == sum(c.wire_bytes for c in plain.values())  # = 2 all-reduces
    for name in ("input_layernorm", "post_attention_layernorm", "attn_residual", "mlp_residual"):
        assert ops[name].cost.flops * 8 == plain[name].flops
    matmul = lambda costs: sum(c.flops for n, c in costs.items() if n.endswith("proj"))  # noqa: E731
    assert matmul({n: o.cost for n, o in ops.items()}) == matmul(plain)


def test_sequence_parallelism_needs_tp_and_tokens_that_split():
    assert "add --tp N" in opgraph("report", "--sp").stderr
    r = opgraph("report", "llama-3-70b", "--tp", "8", "--sp", "--phase", "decode", "--batch", "12")
    assert r.returncode == 2 and "the batch (12) does not split into 8 equal slices" in r.stderr
    r = opgraph("report", "llama-3-70b", "--tp", "8", "--sp", "--phase", "prefill", "--batch", "8", "--seq-len", "100")
    assert r.returncode == 2 and "the seq_len (100) does not split into 8" in r.stderr and "give a --seq-len" in r.stderr


def test_a_sweep_takes_sequence_parallelism_at_sizes_that_split_and_a_search_from_one_refuses_it():
    """A sweep's points are the user's sizes (it once probed the model at one sequence and one token, which --sp
    cannot split, whatever sizes were given); a crossover searches sizes from 1 up, so it refuses --sp by name."""
    args = ("llama-3-70b", "--tp", "8", "--sp", "--phase", "prefill", "--batch", "8", "--format", "json")
    swept = opgraph("sweep", *args, "--seq-len", "1024,2048")
    assert swept.returncode == 0, swept.stderr
    points = json.loads(swept.stdout)["points"]
    alone = json.loads(opgraph("report", *args, "--seq-len", "2048").stdout)["phases"]["prefill"]["model"]
    assert points[-1]["expected_s"] == pytest.approx(alone["expected_s"], rel=1e-9)
    for command in (("crossover",), ("plot", "sweep", "--out", "x.png")):
        r = opgraph(*command, "llama-3-70b", "--tp", "8", "--sp")
        assert r.returncode == 2 and "searches batch sizes and prompt lengths from 1 up" in r.stderr, r.stderr
