"""Falcon-H1 (model_type falcon_h1): a parallel hybrid, attention and a Mamba-2 mixer side by side on the same normed
input, both added to the residual, then a SwiGLU MLP. One layer's parameters against the checkpoint's tensors, the
FLOPs of the muP multipliers and of the branch sum derived by hand from the reference code's shapes
(transformers' modeling_falcon_h1.py, vLLM's falcon_h1.py), and the layer's cache: the attention's KV cache and the
Mamba states together."""

import pytest

from opgraph import OpgraphError, Phase
from opgraph.analysis.memory import kv_cache_bytes
from opgraph.core.model import BuildOptions
from opgraph.models import hf_config
from opgraph.models.parts import Attention, Branches, Mamba2

# The shapes of tiiuae/Falcon-H1-0.5B's config.json as Megatron-Bridge's test fixture FALCON_H1_500M_CONFIG copies
# them (tests/unit_tests/models/falcon_h1/test_falconh1_bridge.py); the same as transformers' FalconH1 doc table
# (0.5B: 36 layers, d 1024, 8 attention heads, 2 KV, 24 Mamba heads, head widths 64 / 64, d_state 128).
H1_05B = {
    "model_type": "falcon_h1", "hidden_size": 1024, "num_attention_heads": 8, "num_key_value_heads": 2,
    "head_dim": 64, "intermediate_size": 2048, "num_hidden_layers": 36, "vocab_size": 32784,
    "mamba_d_ssm": 1536, "mamba_n_heads": 24, "mamba_d_head": 64, "mamba_n_groups": 1, "mamba_d_state": 128,
    "mamba_d_conv": 4, "mamba_expand": 2, "mamba_chunk_size": 128, "mamba_conv_bias": True,
    "mamba_proj_bias": False, "projectors_bias": False, "mamba_rms_norm": False, "mamba_norm_before_gate": False,
    "attention_bias": False, "mlp_bias": False, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "rope_theta": 100000000000.0, "embedding_multiplier": 5.656854249492381, "lm_head_multiplier": 0.0390625,
    "key_multiplier": 0.39062499999999994, "attention_in_multiplier": 1.0, "attention_out_multiplier": 0.9375,
    "ssm_in_multiplier": 1.25, "ssm_out_multiplier": 0.23570226039551587,
    "ssm_multipliers": [0.3535533905932738, 0.25, 0.3535533905932738, 0.5, 0.3535533905932738],
    "mlp_multipliers": [0.8838834764831844, 0.5859375],
}
D, HEADS, KV, HD, FFN, VOCAB = 1024, 8, 2, 64, 2048, 32784
MH, MP, N, G, K = 24, 64, 128, 1, 4  # Mamba heads, head width, d_state, groups, conv width
D_SSM = MH * MP
CONV_DIM = D_SSM + 2 * G * N


def load(data=H1_05B, **changes):
    return hf_config.from_dict({**data, **changes}, name="falcon-h1", source="test")


def layer_graph(cfg, phase, **options):
    model = cfg.build(phase, BuildOptions(**options))
    (block,) = [blk for blk in model.blocks if blk.name != "embed_head"]
    return model, block


def test_one_layer_parameters_equal_the_checkpoint_tensors():
    # model.layers.N.* of the checkpoint, from the reference modules' shapes.
    tensors = {
        "input_layernorm.weight": D,
        "self_attn.q_proj.weight": HEADS * HD * D, "self_attn.k_proj.weight": KV * HD * D,
        "self_attn.v_proj.weight": KV * HD * D, "self_attn.o_proj.weight": D * HEADS * HD,
        # in_proj: [2*d_ssm + 2*G*N + heads, d] = z | x B C | dt
        "mamba.in_proj.weight": (2 * D_SSM + 2 * G * N + MH) * D,
        "mamba.conv1d.weight": CONV_DIM * 1 * K, "mamba.conv1d.bias": CONV_DIM,
        "mamba.dt_bias": MH, "mamba.A_log": MH, "mamba.D": MH,
        # no mamba.norm.weight: mamba_rms_norm is false
        "mamba.out_proj.weight": D * D_SSM,
        "pre_ff_layernorm.weight": D,
        "feed_forward.gate_proj.weight": FFN * D, "feed_forward.up_proj.weight": FFN * D,
        "feed_forward.down_proj.weight": D * FFN,
    }
    _, block = layer_graph(load(), Phase.decode(1, 8))
    names = {w.name.split("[")[0] for w in block.graph.weights()}
    assert names == set(tensors)
    assert block.graph.params() == sum(tensors.values()) == 12_618_568
    model = load().build(Phase.decode(1, 8))
    # 36 layers, the embedding and the untied head, the final norm
    assert model.params() == 36 * 12_618_568 + 2 * VOCAB * D + D


@pytest.mark.parametrize("phase", [Phase.prefill(2, 16), Phase.decode(3, 40)], ids=["prefill", "decode"])
def test_multiplier_and_branch_sum_flops_by_hand(phase):
    _, block = layer_graph(load(), phase)
    ops = block.graph.ops
    t = phase.tokens
    by_hand = {
        "attention_in_scale": t * D,  # hidden_states * attention_in_multiplier
        "mamba_in_scale": t * D,  # hidden_states * ssm_in_multiplier
        "k_scale": t * KV * HD,  # k * key_multiplier, before rope
        "mup_z": t * D_SSM, "mup_xBC": t * CONV_DIM, "mup_dt": t * MH,  # in_proj output * mup_vector
        "attention_out_scale": t * D,  # attn_hidden * attn_out_multiplier
        "mamba_out_scale": t * D,  # ssm_hidden * ssm_out_multiplier
        "branch_sum": t * D,  # the two branches added
        "gate_scale": t * FFN,  # gate_proj(x) * gate_multiplier
        "out_scale": t * D,  # down_proj(.) * down_multiplier
        "gate_act": 4 * t * D_SSM, "gate_mul": t * D_SSM,  # no gated norm: y * silu(z)
    }
    assert {k: ops[k].flops for k in by_hand} == by_hand
    assert "gated_norm" not in ops
    # the mixers' ops keep part "attention" (crossover reads it); the MLP's are "mlp"
    mixer_ops = [o for name, o in ops.items() if name not in ("pre_ff_layernorm", "gate_proj", "up_proj", "gate_scale",
                                                               "act", "mul", "down_proj", "out_scale", "mlp_residual")]
    assert {o.part for o in mixer_ops} == {"attention"}
    embed_head = {blk.name: blk for blk in load().build(phase).blocks}["embed_head"].graph.ops
    assert embed_head["embed_scale"].flops == t * D  # embeddings * embedding_multiplier
    assert embed_head["logit_scale"].flops == phase.batch * VOCAB  # the last position's logits * lm_head_multiplier


def test_lm_head_multiplier_of_one_is_not_run():
    embed_head = {blk.name: blk for blk in load(lm_head_multiplier=1.0).build(Phase.decode(2, 8)).blocks}["embed_head"]
    assert "logit_scale" not in embed_head.graph.ops


def test_layer_cache_is_the_attention_kv_plus_the_mamba_states():
    for phase in (Phase.decode(3, 40), Phase.decode(3, 400), Phase.prefill(2, 16)):
        _, block = layer_graph(load(), phase)
        b, bf16 = phase.batch, 2
        kv = 2 * b * (phase.past + phase.new_tokens) * KV * HD * bf16  # K and V, cached and new
        conv_state = b * (K - 1) * CONV_DIM * bf16
        ssm_state = b * MH * MP * N * bf16
        assert kv_cache_bytes(block.graph) == kv + conv_state + ssm_state


def test_tensor_parallel_reduces_each_branch_as_vllm_does():
    _, block = layer_graph(load(), Phase.decode(4, 64), tp=2)
    ops = block.graph.ops
    t = 4
    # each branch's row-parallel output is all-reduced on its own (o_proj and out_proj reduce their results)
    assert {"o_allreduce", "out_allreduce", "down_allreduce"} <= set(ops)
    assert ops["k_scale"].flops == t * (KV // 2) * HD
    # this GPU's heads' share of z, x, dt; B and C whole (one group, replicated)
    assert ops["mup_xBC"].flops == t * (D_SSM // 2 + 2 * G * N)
    assert ops["mup_z"].flops == t * D_SSM // 2 and ops["mup_dt"].flops == t * MH // 2
    # the scales after an all-reduce and the sum run on every GPU's whole hidden states
    assert ops["branch_sum"].flops == ops["attention_out_scale"].flops == ops["out_scale"].flops == t * D
    assert ops["gate_scale"].flops == t * FFN // 2


def test_words_name_the_side_by_side_mixer():
    cfg = load()
    (layer,) = cfg.layers.distinct()
    assert layer.words()["mixer"] == "attention+mamba"
    assert [type(p) for p in layer.parts()][:2] == [Attention, Mamba2]
    assert cfg.parts(Attention) and cfg.parts(Mamba2)


def test_gated_norm_and_inner_width_options():
    _, block = layer_graph(load(mamba_rms_norm=True, projectors_bias=True), Phase.decode(1, 8))
    names = {w.name for w in block.graph.weights()}
    assert {"mamba.norm.weight", "mamba.out_proj.bias"} <= names and "mamba.in_proj.bias[z]" not in names
    assert "gated_norm" in block.graph.ops and "gate_mul" not in block.graph.ops
    # mamba_d_head "auto": mamba_d_ssm / mamba_n_heads
    assert load(mamba_d_head="auto").n_layers == 36
    with pytest.raises(OpgraphError, match="'mamba_n_heads' x 'mamba_d_head'"):
        load(mamba_d_ssm=2048)
    with pytest.raises(OpgraphError, match="ssm_multipliers"):
        load(ssm_multipliers=[1.0, 1.0])


def test_branches_need_distinct_mixers():
    a = Attention(4, 2, 16)
    with pytest.raises(OpgraphError, match="two or more"):
        Branches((a,))
    with pytest.raises(OpgraphError, match="different kind"):
        Branches((a, a))
    with pytest.raises(OpgraphError, match="one flag per branch"):
        Branches((a, Mamba2(8, 16, 8)), in_scale=(True,))


def test_other_families_refuse_falcon_fields():
    with pytest.raises(OpgraphError, match="'key_multiplier'"):
        hf_config.from_dict({"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4,
                             "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100,
                             "key_multiplier": 0.5}, name="x", source="x")
