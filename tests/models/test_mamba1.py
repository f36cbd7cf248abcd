"""Mamba-1 models (transformers' mamba, falcon_mamba and jamba; vLLM's mamba.py, jamba.py and mamba_mixer.py),
checked by hand against their published sizes and the structure the reference code builds: in_proj to x | z, the
causal conv and SiLU, x_proj to dt | B | C (one all-reduce of them under tensor parallelism), dt_proj, the selective
scan with its D skip and gate, out_proj; a state of (d_conv - 1) x d_inner + d_inner x d_state a sequence. The
configs hold the fields of state-spaces/mamba-2.8b-hf's, tiiuae/falcon-mamba-7b's and ai21labs/AI21-Jamba-1.5-Mini's
config.json as copies of them give them (Falcon-Mamba's and Jamba's licences are their makers' own, so no preset
ships)."""

import json

import pytest

from opgraph import OpgraphError, Phase, models
from opgraph.analysis.memory import kv_cache_bytes
from opgraph.core.ops import SELECTIVE_PAIR_FLOPS
from opgraph.core.model import BuildOptions

MAMBA_28B = {"architectures": ["MambaForCausalLM"], "bos_token_id": 0, "conv_kernel": 4, "eos_token_id": 0,
             "expand": 2, "fused_add_norm": True, "hidden_act": "silu", "hidden_size": 2560,
             "initializer_range": 0.1, "intermediate_size": 5120, "layer_norm_epsilon": 1e-05, "model_type": "mamba",
             "n_layer": 64, "num_hidden_layers": 64, "pad_token_id": 0, "pad_vocab_size_multiple": 8,
             "rescale_prenorm_residual": False, "residual_in_fp32": True, "rms_norm": True, "state_size": 16,
             "time_step_floor": 0.0001, "time_step_init_scheme": "random", "time_step_max": 0.1,
             "time_step_min": 0.001, "time_step_rank": 160, "time_step_scale": 1.0, "torch_dtype": "float32",
             "use_bias": False, "use_cache": True, "use_conv_bias": True, "vocab_size": 50280}
FALCON_MAMBA_7B = {**{k: v for k, v in MAMBA_28B.items() if k not in ("n_layer", "fused_add_norm", "rms_norm",
                                                                        "pad_vocab_size_multiple")},
                   "architectures": ["FalconMambaForCausalLM"], "model_type": "falcon_mamba", "expand": 16,
                   "hidden_size": 4096, "intermediate_size": 8192, "time_step_rank": 256, "tie_word_embeddings": False,
                   "torch_dtype": "bfloat16", "vocab_size": 65024}
JAMBA_MINI = {"architectures": ["JambaForCausalLM"], "attention_dropout": 0.0, "attn_layer_offset": 4,
              "attn_layer_period": 8, "expert_layer_offset": 1, "expert_layer_period": 2, "hidden_act": "silu",
              "hidden_size": 4096, "intermediate_size": 14336, "mamba_conv_bias": True, "mamba_d_conv": 4,
              "mamba_d_state": 16, "mamba_dt_rank": 256, "mamba_expand": 2, "mamba_proj_bias": False,
              "max_position_embeddings": 262144, "model_type": "jamba", "num_attention_heads": 32, "num_experts": 16,
              "num_experts_per_tok": 2, "num_hidden_layers": 32, "num_key_value_heads": 8, "num_logits_to_keep": 1,
              "rms_norm_eps": 1e-06, "router_aux_loss_coef": 0.001, "sliding_window": None,
              "tie_word_embeddings": False, "torch_dtype": "bfloat16", "use_mamba_kernels": False,
              "vocab_size": 65536}


def load(tmp_path, config: dict, **change):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**config, **change}))
    return models.get(str(path))


def mixer(d, e, r, n, k=4, norms=0):
    """in_proj, the conv and its bias, x_proj, dt_proj and its bias, A_log, D, out_proj, and any norm weights."""
    return 2 * e * d + (k + 1) * e + e * (r + 2 * n) + r * e + e + e * n + e + e * d + norms


def test_mamba_28b_by_hand(tmp_path):
    d, e, layers, v = 2560, 5120, 64, 50280
    total = v * d + d + layers * (mixer(d, e, 160, 16) + d)  # tied (MambaConfig's default)
    assert round(total / 1e9, 1) == 2.8  # "mamba-2.8b"
    cfg = load(tmp_path, MAMBA_28B)
    assert cfg.build(Phase.decode(1, 1)).params() == total
    (_, g), _ = [(b.count, b.graph) for b in cfg.build(Phase.decode(4, 999)).blocks]
    scan = g.ops["selective_scan"]
    assert scan.fn == "selective_update" and scan.flops == 4 * e * (7 * 16 + 9) and SELECTIVE_PAIR_FLOPS[scan.fn] == 7
    # a state whatever the context: (4 - 1) x 5,120 conv inputs and 5,120 x 16 SSM values, at fp32 here
    assert kv_cache_bytes(g) == 4 * (3 * e + e * 16) * 4
    bf16 = load(tmp_path, MAMBA_28B, torch_dtype="bfloat16", mamba_ssm_cache_dtype="float32")
    assert kv_cache_bytes(bf16.build(Phase.decode(4, 999)).blocks[0].graph) == 4 * (3 * e * 2 + e * 16 * 4)
    prefill = cfg.build(Phase.prefill(1, 100)).blocks[0].graph.ops["selective_scan"]
    assert prefill.fn == "selective_scan" and prefill.flops == 100 * e * (9 * 16 + 9)


def test_falcon_mamba_7b_by_hand_reads_intermediate_size_over_expand(tmp_path):
    d, e, layers, v = 4096, 8192, 64, 65024
    total = 2 * v * d + d + layers * (mixer(d, e, 256, 16) + d)  # untied; the dt, B and C norms have no weights
    assert round(total / 1e9, 2) == 7.27  # Falcon-Mamba-7B's 7.27B
    cfg = load(tmp_path, FALCON_MAMBA_7B)
    assert cfg.build(Phase.decode(1, 1)).params() == total
    g = cfg.build(Phase.decode(1, 9)).blocks[0].graph
    assert {"dt_layernorm", "b_layernorm", "c_layernorm"} <= set(g.ops)


def test_jamba_mini_by_hand_is_the_published_52b_12b_active(tmp_path):
    d, f, e, v = 4096, 14336, 8192, 65536
    mamba = mixer(d, e, 256, 16, norms=256 + 2 * 16)  # weighted dt, B and C norms
    attention = 2 * d * d + 2 * d * 8 * 128
    mlp, moe = 3 * d * f, 16 * 3 * d * f + 16 * d  # 16 experts and their router
    total = 2 * v * d + d + 28 * mamba + 4 * attention + 16 * mlp + 16 * moe + 32 * 2 * d
    active = total - 16 * 14 * 3 * d * f
    assert (round(total / 1e9), round(active / 1e9)) == (52, 12)  # AI21: 52B total, 12B active
    cfg = load(tmp_path, JAMBA_MINI)
    assert cfg.build(Phase.decode(1, 1)).params() == total
    blocks = {b.name: (b.count, b.graph) for b in cfg.build(Phase.decode(2, 999), BuildOptions(tp=2)).blocks}
    assert {k: c for k, (c, _) in blocks.items()} == {"dense_mamba_layer": 12, "moe_mamba_layer": 16,
                                                     "dense_attention_layer": 4, "embed_head": 1}
    g = blocks["moe_mamba_layer"][1]
    # x_proj and out_proj are row-parallel: two all-reduces in the mixer, then the MoE's
    assert [n for n, op in g.ops.items() if op.fn == "all_reduce"][:2] == ["x_allreduce", "out_allreduce"]
    att = blocks["dense_attention_layer"][1]
    assert not [op for op in att.ops.values() if op.fn == "rope"]  # no positions
    assert kv_cache_bytes(att) == 2 * 1000 * 2 * 4 * 128 * 2  # 8 KV heads over 2 GPUs


@pytest.mark.parametrize("config, change, field", [
    (MAMBA_28B, {"rms_norm": False}, "rms_norm"),
    (MAMBA_28B, {"time_step_rank": "big"}, "time_step_rank"),
    (JAMBA_MINI, {"attn_layer_offset": 8}, "attn_layer_offset"),
    (JAMBA_MINI, {"head_dim": 64}, "head_dim"),
])
def test_bad_fields_are_refused_by_name(tmp_path, config, change, field):
    with pytest.raises(OpgraphError, match=repr(field)):
        load(tmp_path, config, **change)
