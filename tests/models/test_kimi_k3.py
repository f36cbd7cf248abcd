"""Kimi-K3 (model_type kimi_k3 wrapping a kimi_linear text model), against hand counts.

Expected values are derived here from the config's widths, following Moonshot's modeling_kimi_linear.py for K3 (as
vLLM's models/kimi_k3, SGLang's kimi_k3.py and mlx-lm's kimi_k3.py run it) and the checkpoint's tensor listing (names,
shapes, dtypes; SOURCES.json), never from the program's output:
- SiTU: 4 tanh(g / 4) sigmoid(g) x 25 tanh(u / 25), 12 FLOPs and 3 transcendentals an element;
- MLA with q_lora_rank 1536, no rope, and g_proj [96 x 128, d], a sigmoid gate on the attention output;
- KDA with a full-rank output gate g_proj [96 x 128, d] and the bounded decay -5 sigmoid(exp(A_log) (f + dt_bias));
- a latent MoE: the router and one shared SiTU MLP of 6,144 at the full width, routed_expert_down_proj to 3,584,
  16 of 896 experts there, routed_expert_norm on their sum, routed_expert_up_proj back;
- Block AttnRes: each sublayer's input a softmax over the block snapshots and the running sum.
"""

import json
import math

import pytest

from opgraph import OpgraphError, Phase, models
from opgraph.analysis.memory import kv_cache_bytes
from opgraph.core.model import BuildOptions
from opgraph.models import hf_config

K3 = json.loads((models.presets.CONFIG_DIR / "kimi-k3.json").read_text())
T = K3["text_config"]
D, V, L = 7168, 163840, 93
H, HD = 96, 128  # KDA heads and MLA heads alike
P = H * HD
QL, R, NOPE, ROPE, VD = 1536, 512, 128, 64, 128
E, K, DE, DL, DFF = 896, 16, 3072, 3584, 33792
SHARED = 2 * DE
KDA = [i - 1 for i in T["linear_attn_config"]["kda_layers"]]  # 1-based in the config
MLA_LAYERS = [i - 1 for i in T["linear_attn_config"]["full_attn_layers"]]
BLOCK = 12


def load(text=T, **changes):
    return hf_config.from_dict({**K3, "text_config": {**text, **changes}}, name="k3", source="test")


def test_layers_are_69_kda_and_24_mla_the_last_two_mla():
    assert len(KDA) == 69 and len(MLA_LAYERS) == 24 and sorted(KDA + MLA_LAYERS) == list(range(L))
    assert MLA_LAYERS[-2:] == [91, 92]


def hand_params() -> int:
    """The language model's parameters as the checkpoint lists them, at their logical (unpacked) sizes."""
    kda = 3 * P * D + P * D + D * P + 128 * D + P * 128 + H * D  # q, k, v; g_proj; o_proj; f_a, f_b; b_proj
    kda += 3 * P * 4 + 128 + P + HD  # the convs; A_log (stored 128 long), dt_bias, o_norm
    mla = D * QL + QL + QL * H * (NOPE + ROPE) + D * (R + ROPE) + R + R * H * (NOPE + VD) + H * VD * D + D * H * VD
    moe = E * 3 * DE * DL + E * D + E + 2 * DL * D + DL + 3 * SHARED * D
    norms = 2 * D + 4 * D  # the two pre-norms; AttnRes's norm and projection vectors before each sublayer
    return (69 * kda + 24 * mla + 3 * DFF * D + 92 * moe + L * norms
            + 2 * V * D + 3 * D)  # embedding, head; final norm and the head's AttnRes vectors


def test_parameters_by_hand():
    assert hand_params() == 2_779_484_478_208
    # opgraph leaves out what no op reads: layer 0's attention-side AttnRes vectors (its input is the embedding,
    # mixed with nothing) and the 32 values of each KDA layer's A_log beyond its 96 heads (the engines drop them)
    assert models.get("kimi-k3").build(Phase.decode(1, 10)).params() == hand_params() - 2 * D - 69 * (128 - H)


def test_weight_bytes_by_hand():
    experts = 92 * E * 3 * DE * DL
    fp32 = 69 * (3 * P * 4 + H + P + HD) + 92 * E  # convs, A_log (96 read), dt_bias, o_norm; the router's bias
    rest = hand_params() - 2 * D - 69 * (128 - H) - experts - fp32
    mxfp4 = experts // 2 + experts // 32  # e2m1 values and one ue8m0 scale per 32 (compressed-tensors mxfp4)
    model = models.get("kimi-k3").build(Phase.decode(1, 10))
    assert sum(b.count * sum(t.nbytes for t in b.graph.weights()) for b in model.blocks) == mxfp4 + 4 * fp32 + 2 * rest


def test_only_the_routed_experts_are_mxfp4():
    model = models.get("kimi-k3").build(Phase.decode(1, 10))
    stored = {t.name: t.dtype for b in model.blocks for t in b.graph.weights()}
    assert {n for n, dt in stored.items() if dt.label == "mxfp4"} == {
        f"block_sparse_moe.experts.{w}_proj.weight" for w in ("gate", "up", "down")}
    for name in ("block_sparse_moe.routed_expert_down_proj.weight", "mlp_res_proj.weight",
                 "self_attention_res_proj.weight", "output_attn_res_proj.weight"):
        assert stored[name].name == "bf16"


def test_active_parameters_are_104b():
    model = models.get("kimi-k3").build(Phase.decode(1, 10))
    skipped = 92 * (E - K) * 3 * DE * DL
    assert round((model.params() - skipped - V * D) / 1e9) == 104  # "104B active" (the input table apart)


def blocks(phase=Phase.decode(2, 1000), **options):
    model = models.get("kimi-k3").build(phase, BuildOptions(**options))
    return {b.name: b for b in model.blocks}


def test_situ_costs_12_flops_an_element_in_every_mlp():
    bs = blocks(Phase.decode(2, 1000))
    moe = next(b.graph for n, b in bs.items() if n.startswith("moe_kda"))
    dense = next(b.graph for n, b in bs.items() if n.startswith("dense"))
    assert moe.ops["experts.act"].flops == 12 * 2 * K * DE
    assert moe.ops["experts.act"].transcendentals == 3 * 2 * K * DE
    assert moe.ops["shared.act"].flops == 12 * 2 * SHARED
    assert dense.ops["act"].flops == 12 * 2 * DFF


def test_latent_moe_norms_the_latent_sum_and_projects_it_back():
    g = next(b.graph for n, b in blocks(tp=8).items() if n.startswith("moe_kda"))
    ops = g.ops
    assert ops["routed_expert_down_proj"].flops == 2 * 2 * D * DL  # whole on every GPU
    assert ops["routed_expert_up_proj"].flops == 2 * 2 * DL * D
    assert ops["routed_expert_norm"].flops == 2 * (4 * DL + 3)
    assert g.tensors["routed_latent"].shape[-1] == DL  # all-reduced in the latent width, then normed
    assert ops["router"].flops == 2 * (2 * D * E + E)  # the full hidden state; the selection bias added


def test_mla_output_gate_and_kda_full_rank_gate():
    bs = blocks(Phase.decode(2, 1000), tp=8)
    mla = next(b.graph for n, b in bs.items() if "_mla_" in n)
    kda = next(b.graph for n, b in bs.items() if "_kda_" in n)
    assert mla.ops["g_proj"].flops == 2 * 2 * D * P // 8  # column-parallel over the heads
    assert mla.ops["gate_sigmoid"].flops == 4 * 2 * P // 8 and mla.ops["gate_mul"].flops == 2 * P // 8
    assert kda.ops["g_proj"].flops == 2 * 2 * D * P // 8 and "g_a_proj" not in kda.ops
    # -5 sigmoid(exp(A_log) (f + dt_bias)): add, multiply, sigmoid (4), times the bound
    assert kda.ops["gate"].flops == 7 * 2 * P // 8 and kda.ops["gate"].transcendentals == 2 * P // 8


def mixes() -> list[int]:
    """The sources each AttnRes mix reads, over the model: layer l's attention input mixes the ceil(l / 12) snapshots
    written before it and the running sum (layer 0's input is the embedding), its FFN input the l // 12 + 1 written
    by then and the sum, and the head's input all 8 and the last block's sum."""
    attention = [math.ceil(l / BLOCK) + 1 for l in range(1, L)]
    ffn = [l // BLOCK + 2 for l in range(L)]
    return attention + ffn + [math.ceil(L / BLOCK) + 1]


def test_attn_res_flops_summed_over_every_mix():
    assert len(mixes()) == 92 + 93 + 1 and sum(mixes()) == 1002 and mixes()[-1] == 9
    per_token = sum((6 * n - 1) * D + 9 * n for n in mixes())
    assert per_token == 41_769_786
    model = models.get("kimi-k3").build(Phase.decode(3, 100))
    counted = sum(b.count * o.flops for b in model.blocks for name, o in b.graph.ops.items() if name.endswith("_mix"))
    assert counted == 3 * per_token


def test_attn_res_reads_the_snapshots_and_writes_one_at_each_boundary():
    model = models.get("kimi-k3").build(Phase.decode(1, 100))
    read = written = 0
    for b in model.blocks:
        for t in b.graph.tensors.values():
            if t.name.endswith("_blocks"):
                read += b.count * t.numel
        written += b.count * sum(b.graph.tensors[t].numel for t in b.graph.outputs if t.endswith("block_snapshot"))
    assert read == D * sum(n - 1 for n in mixes())  # 816 snapshot rows a token
    assert written == D * len(range(0, L, BLOCK))  # the embedding and the sums at layers 12, 24, ..., 84


def test_cache_per_sequence():
    context = 4000
    model = models.get("kimi-k3").build(Phase.decode(1, context))
    cached = sum(b.count * kv_cache_bytes(b.graph) for b in model.blocks)
    kda = H * HD * HD * 4 + 3 * 3 * P * 2  # the fp32 state; three conv states of the last 3 inputs, bf16
    assert cached == 69 * kda + 24 * (context + 1) * (R + ROPE) * 2


@pytest.mark.parametrize("pp, starts", [(2, [47]), (4, [24, 47, 70])])
def test_a_pipeline_hand_over_carries_the_snapshots_the_next_stage_reads(pp, starts):
    # vLLM's kimi_k3 intermediate tensors: the running sum and [tokens, ceil(first / 12), d], first the next stage's
    # first layer (a snapshot is written at each layer 0, 12, 24, ... before it)
    model = models.get("kimi-k3").build(Phase.decode(4, 100), BuildOptions(tp=8, pp=pp))
    assert [s.first_layer for s in model.stages[1:]] == starts
    sends = {b.name: b for b in model.blocks if b.name.startswith("send")}
    sent = [sends[s.counts[-1][0]].graph.tensors["hidden"] for s in model.stages[:-1]]
    assert [t.shape for t in sent] == [(4, 1, D * (1 + math.ceil(first / BLOCK))) for first in starts]


@pytest.mark.parametrize("name", ["kimi-k3", "nemotron-3-super-120b-a12b"])
def test_a_latent_moe_runs_under_sequence_parallelism(name):
    # the routed latent sum and the shared MLP each reduce-scatter over the tokens, then add
    for phase in (Phase.prefill(1, 64), Phase.decode(16, 100)):
        model = models.get(name).build(phase, BuildOptions(tp=8, sp=True))
        g = next(b.graph for b in model.blocks if "moe" in b.name)
        add = g.ops["shared_add"]
        assert add.inputs[0].shape == add.inputs[1].shape == add.outputs[0].shape


def test_situ_needs_its_soft_cap_of_up():
    with pytest.raises(OpgraphError, match="activation_situ_linear_beta"):
        load(activation_situ_linear_beta=None)


def test_a_positive_gate_lower_bound_is_refused():
    lin = {**T["linear_attn_config"], "gate_lower_bound": 5.0}
    with pytest.raises(OpgraphError, match="gate_lower_bound"):
        load(linear_attn_config=lin)


def test_mxfp4_pack_quantized_needs_groups_of_32():
    q = json.loads(json.dumps(T["quantization_config"]))
    q["config_groups"]["group_0"]["weights"]["group_size"] = 16
    with pytest.raises(OpgraphError, match="mxfp4-pack-quantized needs"):
        load(quantization_config=q)


def test_without_attn_res_or_the_gates_it_is_kimi_linear():
    plain = load(attn_res_block_size=None, mla_use_output_gate=False,
                 linear_attn_config={**T["linear_attn_config"], "use_full_rank_gate": False})
    g = plain.build(Phase.decode(1, 10))
    names = {n for b in g.blocks for n in b.graph.ops}
    assert not {n for n in names if "res_mix" in n or n == "gate_mul"} and "g_a_proj" in names
    assert plain.res_blocks == 0


def test_the_catalog_groups_layers_by_kind_not_by_their_mixes():
    summary = models.get("kimi-k3").summary()
    assert summary["layer_kinds"] == {"dense_kda_layer": 1, "moe_kda_layer": 68, "moe_mla_layer": 24}
    assert summary["attn_res_snapshots"] == len(range(0, L, BLOCK))
