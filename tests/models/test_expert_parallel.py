"""Expert and data parallelism: each GPU's share and the all-to-alls between, derived by hand for Mixtral-8x7B and
DeepSeek-V3; the busiest GPU's load checked against a simulation of uniform routing."""

import json
import random
import statistics

import pytest

from opgraph import Phase, analyze, hardware, models, strategy
from opgraph.core.model import BuildOptions
from opgraph.errors import OpgraphError
from opgraph.models.pieces import busiest_expert_load, expected_max_normal
from userland import opgraph

MIXTRAL = models.get("mixtral-8x7b")  # d 4096, 8 experts of 14336, top 2, 32 layers, bf16
V3 = models.get("deepseek-v3")  # d 7168, 256 routed experts of 2048 + 1 shared, top 8, 58 MoE + 3 dense layers, fp8
H100 = hardware.load("h100-sxm")


def ep(n: int, imbalance: float | None = None) -> BuildOptions:
    return BuildOptions(dp=n, ep=n, expert_imbalance=imbalance)


def moe_block(cost):
    return next(b for b in cost.blocks if any(o.part == "moe" for o in b.ops))


def test_mixtral_at_ep_8_sends_tokens_times_top_k_times_d_model_each_way():
    phase = Phase.decode(32, 1024)
    cost = analyze(MIXTRAL.build(phase, ep(8, imbalance=1.0)), strategy("fused"), H100)  # the mean load
    ops = {o.name: o for o in moe_block(cost).ops}
    buffer = 32 * 2 * 4096 * 2  # tokens x top_k x d_model, bf16
    for name in ("dispatch", "combine_back"):
        assert ops[name].cost.wire_bytes == 7 * buffer // 8  # 7 of every 8 rows go to another GPU
        assert ops[name].cost.comm_s == pytest.approx(ops[name].cost.wire_bytes / 450e9, rel=1e-12)
    # each GPU holds one whole expert and runs its 64 rows (32 tokens x 2 / 8 GPUs x 8 GPUs) through it
    assert ops["experts.gate_proj"].cost.flops == 2 * 64 * 4096 * 14336


def test_mixtral_per_gpu_weights_are_one_whole_expert_plus_everything_else():
    m = MIXTRAL.build(Phase.decode(1, 16), ep(8))
    attention = 2 * (32 * 128 * 4096) + 2 * (8 * 128 * 4096)  # q, o; k, v
    layer = attention + 3 * 14336 * 4096 + 8 * 4096 + 2 * 4096  # one expert, the router, two norms
    head = 2 * 32000 * 4096 + 4096  # embedding, lm_head, final norm: whole on every GPU
    assert m.weight_bytes() == 2 * (32 * layer + head)
    assert m.gpus == 8 and m.whole_weight_bytes == MIXTRAL.build(Phase.decode(1, 16)).weight_bytes()


def test_deepseek_v3_at_ep_16_holds_16_routed_experts_per_layer():
    m = V3.build(Phase.decode(1, 16), ep(16))
    whole = V3.build(Phase.decode(1, 16))
    # gate, up, down of one expert, fp8: one byte each, plus one fp32 scale per 128 x 128 block of each matrix
    # (the checkpoint's weight_scale_inv, [ceil(N/128), ceil(K/128)])
    routed = 3 * 2048 * 7168 + 3 * (2048 // 128) * (7168 // 128) * 4
    # the only weights that split are the routed experts: 58 layers x 240 experts fewer per GPU
    assert whole.weight_bytes() - m.weight_bytes() == 58 * (256 - 16) * routed


def test_the_group_does_the_single_gpu_work_of_all_its_batches():
    """Sixteen GPUs with batch 4 each, at the mean expert load, count exactly the FLOPs of one GPU with batch 64:
    attention per sequence, experts per token x top_k, router and shared experts per token."""
    for phase, whole_phase in ((Phase.decode(4, 512), Phase.decode(64, 512)),
                               (Phase.prefill(1, 256), Phase.prefill(16, 256))):
        group = analyze(V3.build(phase, ep(16)), strategy("unfused"), H100)
        single = analyze(V3.build(whole_phase), strategy("unfused"), H100)
        assert group.group.flops == single.totals.flops
        assert group.totals.flops > single.totals.flops / 16  # the busiest GPU does more than its share


def test_the_busiest_gpu_sets_the_step_and_the_imbalance_knob_scales_its_rows():
    phase = Phase.decode(32, 1024)
    rows = lambda options: next(o for o in moe_block(analyze(V3.build(phase, options), strategy("fused"), H100)).ops  # noqa: E731
                                if o.name == "experts.gate_proj").cost.flops // (2 * 7168 * 2048)
    assert rows(ep(16, imbalance=1.0)) == 32 * 8
    assert rows(ep(16, imbalance=1.5)) == 384
    assert rows(ep(16)) == busiest_expert_load(256, 8, 16, 32) > 256


def test_expected_max_of_normals_against_known_values():
    assert expected_max_normal(1) == pytest.approx(0, abs=1e-9)
    assert expected_max_normal(2) == pytest.approx(1 / 3.141592653589793 ** 0.5, rel=1e-9)
    assert expected_max_normal(16) == pytest.approx(1.7659913931, rel=1e-6)  # tables of normal order statistics


@pytest.mark.parametrize("experts, top_k, gpus, tokens", [(256, 8, 16, 32), (8, 2, 8, 64), (64, 6, 8, 16)])
def test_busiest_load_matches_a_simulation_of_uniform_routing(experts, top_k, gpus, tokens):
    """Route every token of every GPU to top_k distinct experts at random, many times; the mean of the busiest
    GPU's rows is within 5% of the formula (a normal approximation, so not exact)."""
    rng = random.Random(7)
    local = experts // gpus
    busiest = []
    for _ in range(300):
        load = [0] * gpus
        for _ in range(gpus * tokens):
            for e in rng.sample(range(experts), top_k):
                load[e // local] += 1
        busiest.append(max(load))
    assert busiest_expert_load(experts, top_k, gpus, tokens) == pytest.approx(statistics.mean(busiest), rel=0.05)


def test_data_parallel_replicas_report_one_gpu_and_the_group():
    phase = Phase.decode(16, 2048)
    llama = models.get("llama-3-8b")
    from opgraph import choices
    one = analyze(llama.build(phase), strategy("fused"), H100)
    four = analyze(choices.builder(llama, BuildOptions(dp=4))(phase), strategy("fused"), H100)
    assert (four.totals.flops, four.totals.expected_s) == (one.totals.flops, one.totals.expected_s)
    assert four.gpus == 4 and four.group.flops == 4 * one.totals.flops and four.link_group == 1
    assert four.whole_weight_bytes == one.weight_bytes


def test_the_command_line_reports_per_gpu_and_group_with_ep():
    r = opgraph("report", "mixtral-8x7b", "--phase", "decode", "--dp", "8", "--ep", "8", "--format", "json")
    assert r.returncode == 0, r.stderr
    p = json.loads(r.stdout)["phases"]["decode"]
    assert p["gpus"] == 8 and p["group"]["gpus"] == 8
    assert p["group"]["expected_tokens_per_s"] == pytest.approx(8 * 32 / p["model"]["expected_s"], rel=1e-9)
    assert p["group"]["weight_bytes"] == 8 * p["model"]["weight_bytes"]


@pytest.mark.parametrize("args, says", [
    (["llama-3-8b", "--dp", "2", "--ep", "2"], "has no experts"),
    (["llama-3-8b", "--ep", "8"], "--ep 8: llama-3-8b has no experts"),  # before the layout it would need
    (["mixtral-8x7b", "--dp", "2", "--ep", "4"], "--ep 4 must equal --tp x --dp"),
    (["mixtral-8x7b", "--tp", "2", "--dp", "2", "--ep", "4"], "not both"),
    # expert groups: ep must divide tp, without dp
    (["mixtral-8x7b", "--tp", "4", "--ep", "3"], "give --ep 2/4 with --tp 4"),
    (["mixtral-8x7b", "--tp", "4", "--dp", "2", "--ep", "2"], "divide --tp without --dp"),
    (["mixtral-8x7b", "--dp", "16", "--ep", "16", "--across-nodes"], "exceeds the 8 routed experts"),
    (["deepseek-v3", "--dp", "12", "--ep", "12", "--across-nodes"], "does not divide the 256 routed experts"),
    (["mixtral-8x7b", "--expert-imbalance", "1.5"], "applies with --ep"),
    (["mixtral-8x7b", "--dp", "8", "--ep", "8", "--expert-imbalance", "0.5"], "--expert-imbalance"),
    (["deepseek-v3", "--dp", "16", "--ep", "16"], "--across-nodes"),
    (["mixtral-8x7b", "--dp", "8", "--ep", "8", "--experts-touched", "2"], "from 1 to the 1 it holds"),
])
def test_bad_parallel_options_are_one_line_errors(args, says):
    r = opgraph("report", *args)
    assert r.returncode != 0
    assert says in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_ep_dispatch_across_nodes_sends_only_the_off_node_share_over_the_network():
    cost = analyze(V3.build(Phase.decode(8, 1024), ep(16, imbalance=1.0)), strategy("fused"), H100)
    dispatch = next(o for o in moe_block(cost).ops if o.name == "dispatch")
    moved = 8 * 8 * 7168 * 2  # tokens x top_k x d_model, bf16 activations
    per_peer = moved // 16
    # 7 peers in the node over NVLink, 8 in the other node over the 50 GB/s network, side by side
    expected = max(7 * per_peer / 450e9, 8 * per_peer / 50e9)
    assert dispatch.cost.comm_s == pytest.approx(expected, rel=1e-9)
    with pytest.raises(OpgraphError, match="does not divide"):
        V3.build(Phase.decode(1, 1), ep(24))


def test_experts_over_a_tensor_parallel_group_keep_its_all_reduce_and_add_no_all_to_all():
    """--tp 8 --ep 8 (vLLM's expert parallelism): every GPU has every token after attention, holds one of
    Mixtral's 8 experts whole, runs the rows routed to it, and the MoE output is all-reduced as under TP."""
    phase = Phase.decode(32, 1024)
    cost = analyze(MIXTRAL.build(phase, BuildOptions(tp=8, ep=8, expert_imbalance=1.0)), strategy("fused"), H100)
    ops = {o.name: o for o in moe_block(cost).ops}
    assert {o.fn for o in ops.values() if o.kind == "collective"} == {"all_reduce"}
    assert ops["experts.gate_proj"].cost.flops == 2 * (32 * 2 // 8) * 4096 * 14336  # the mean: 8 rows
    tp = analyze(MIXTRAL.build(phase, BuildOptions(tp=8)), strategy("fused"), H100)
    assert cost.weight_bytes == tp.weight_bytes  # one whole expert = an eighth of each of eight
    # at the mean load the group does TP's work, except that TP weighs every token's 2 expert outputs on all 8
    # GPUs (2 x 32 x 2 x 4096 FLOPs each, on partial sums) where each EP GPU weighs only its own rows
    assert tp.group.flops - cost.group.flops == 32 * 7 * (2 * 32 * 2 * 4096)


@pytest.mark.parametrize("experts, top_k, gpus, tokens", [(8, 2, 8, 32), (256, 8, 8, 64)])
def test_busiest_load_of_a_shared_batch_matches_a_simulation(experts, top_k, gpus, tokens):
    """Every GPU of the group has the same `tokens`; the busiest GPU's rows against 300 random routings."""
    rng = random.Random(3)
    local = experts // gpus
    busiest = []
    for _ in range(300):
        load = [0] * gpus
        for _ in range(tokens):
            for e in rng.sample(range(experts), top_k):
                load[e // local] += 1
        busiest.append(max(load))
    got = busiest_expert_load(experts, top_k, gpus, tokens, 0.0, True)  # size functions take no keywords
    assert got == pytest.approx(statistics.mean(busiest), rel=0.1)


def test_deepseek_v3_at_ep_8_sends_tokens_times_top_k_times_d_model():
    """Eight GPUs of one node, 16 sequences each, at the mean load: each dispatch and combine moves 7/8 of
    16 x 8 x 7,168 bf16 values over NVLink, in 7 pairwise steps."""
    cost = analyze(V3.build(Phase.decode(16, 2048), ep(8, imbalance=1.0)), strategy("fused"), H100)
    ops = {o.name: o for o in moe_block(cost).ops}
    moved = 16 * 8 * 7168 * 2
    for name in ("dispatch", "combine_back"):
        assert ops[name].cost.wire_bytes == 7 * moved // 8
        assert ops[name].cost.comm_s == pytest.approx(7 * moved / 8 / 450e9, rel=1e-12)
    assert ops["experts.gate_proj"].cost.flops == 2 * (16 * 8) * 7168 * 2048  # its 32 experts' mean rows


def test_experts_over_groups_of_a_tensor_parallel_group_split_their_width_within_each_group():
    """--tp 4 --ep 2 (TensorRT-LLM's moe_tp_size 2 x moe_ep_size 2; SGLang's --tp-size 4 --ep-size 2): Mixtral's 8
    experts spread over 2 groups of 2 GPUs, each GPU holding its group's 4 experts at half their width and running
    every row routed to them; the MoE output all-reduced over the 4 as under TP, no all-to-all."""
    phase = Phase.decode(32, 1024)
    cost = analyze(MIXTRAL.build(phase, BuildOptions(tp=4, ep=2, expert_imbalance=1.0)), strategy("fused"), H100)
    ops = {o.name: o for o in moe_block(cost).ops}
    assert {o.fn for o in ops.values() if o.kind == "collective"} == {"all_reduce"}
    assert ops["moe_allreduce"].cost.wire_bytes == 2 * 3 * (32 * 4096 * 2) // 4  # a ring over the 4 GPUs
    # the mean load of a group: 32 tokens x top 2 / 2 groups = 32 rows, through 14,336 / 2 columns
    assert ops["experts.gate_proj"].cost.flops == 2 * 32 * (14336 // 2) * 4096
    # the same per-GPU expert work as --tp 4 alone (all 64 rows through a quarter of the width)
    assert ops["experts.gate_proj"].cost.flops == 2 * 64 * (14336 // 4) * 4096
    attention = 2 * (8 * 128 * 4096) + 2 * (2 * 128 * 4096)  # q, o: 8 of 32 heads; k, v: 2 of 8 KV heads
    layer = attention + 4 * 3 * (14336 // 2) * 4096 + 8 * 4096 + 2 * 4096  # 4 half experts, the router, two norms
    head = 2 * (32000 // 4) * 4096 + 4096  # vocab-parallel embedding and lm_head, the final norm
    model = MIXTRAL.build(phase, BuildOptions(tp=4, ep=2))
    assert model.weight_bytes() == 2 * (32 * layer + head)
    assert model.gpus == 4 and model.parallel == "tensor parallel over 4 GPUs, experts over 2 groups of 2"
    # the notes say so, and no longer that the experts are split without expert parallelism
    assert any("each GPU holds 1/2 of the width of its group's 4 of the 8 routed experts" in n for n in model.notes)
    for ep_ in (2, 4):
        notes = MIXTRAL.build(phase, BuildOptions(tp=4, ep=ep_)).notes
        assert not any("without expert parallelism" in n for n in notes), ep_
    assert any("without expert parallelism" in n for n in MIXTRAL.build(phase, BuildOptions(tp=4)).notes)


def test_vllm_does_not_serve_expert_groups_and_trtllm_does():
    args = ("qwen3-30b-a3b", "--tp", "4", "--ep", "2", "--concurrency", "4", "--prompt", "256", "--output", "32")
    r = opgraph("serve", *args, "--engine", "vllm")
    assert r.returncode != 0 and "vllm spreads the experts over the whole group" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = opgraph("serve", *args, "--engine", "trtllm", "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["tpot_s"] > 0


def test_an_experts_width_splits_over_its_group_or_says_why_not():
    from opgraph.models.parallel import Parallel
    # tp alone splits every expert; ep = tp spreads them whole; ep over dp GPUs (tp 1) too; ep below tp in groups
    assert [Parallel(4, 1).expert_split, Parallel(4, 4).expert_split, Parallel(1, 4).expert_split,
            Parallel(8, 2).expert_split] == [4, 1, 1, 4]
    assert Parallel(8, 2).expert_columns(14336) == 14336 // 4
    with pytest.raises(OpgraphError, match=r"--tp 8 --ep 2: each expert's width \(6\) does not split over the 4 GPUs"):
        Parallel(8, 2).expert_columns(6)
