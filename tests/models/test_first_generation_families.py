"""The first open models of four makers, still fine-tuned and served: Alibaba's first Qwen (qwen: QWenLMHeadModel),
Shanghai AI Lab's first InternLM (internlm, which vLLM runs as Llama), Adept's Persimmon-8B (persimmon) and
DeepSeekMoE-16B (deepseek: DeepseekForCausalLM). Each count is derived here by hand from the tensor shapes vLLM 0.11's
qwen.py, llama.py, persimmon.py and deepseek.py build, and checked against the published figure where there is one.
The configs are the published files' fields: Qwen-7B's config.json as stanford-crfm/levanter's test copies it (its
auto_map left out), internlm/internlm-20b's as a tutorial prints it, adept/persimmon-8b-base's as transformers'
PersimmonConfig defaults give it (its published values), and deepseek-moe-16b-base's as two independent copies give
it (Ascend's atb_llm test and a Swift test); the other sizes change only the fields their model cards give."""

import pytest
from config_files import layer_graph, load, params

from opgraph import OpgraphError, Phase

QWEN_7B = {"architectures": ["QWenLMHeadModel"], "attn_dropout_prob": 0.0, "bf16": False, "emb_dropout_prob": 0.0,
           "fp16": False, "fp32": False, "hidden_size": 4096, "intermediate_size": 22016, "initializer_range": 0.02,
           "kv_channels": 128, "layer_norm_epsilon": 1e-06, "max_position_embeddings": 32768, "model_type": "qwen",
           "no_bias": True, "num_attention_heads": 32, "num_hidden_layers": 32, "onnx_safe": None,
           "rotary_emb_base": 10000, "rotary_pct": 1.0, "scale_attn_weights": True, "seq_length": 8192,
           "tie_word_embeddings": False, "tokenizer_class": "QWenTokenizer", "transformers_version": "4.32.0",
           "use_cache": True, "use_dynamic_ntk": True, "use_flash_attn": "auto", "use_logn_attn": True,
           "vocab_size": 151936}
QWEN = {  # size: (hidden, layers, heads, intermediate_size as the config gives it: both SwiGLU branches, vocab)
    "1.8b": (2048, 24, 16, 11008, 151936),
    "7b": (4096, 32, 32, 22016, 151936),
    "14b": (5120, 40, 40, 27392, 152064),
    "72b": (8192, 80, 64, 49152, 152064),
}
# The safetensors index's total_size, bytes of bf16, as third parties quote it (Qwen-7B's eight shards; Qwen-1.8B's
# weight bytes in a serving test's fixture)
QWEN_BYTES = {"7b": 15_442_649_088, "1.8b": 3_673_657_344}


def qwen_by_hand(d, layers, heads, ffn, vocab):
    """c_attn [3d, d] with its bias, c_proj [d, d], w1 and w2 [ffn/2, d] and the MLP's c_proj [d, ffn/2], two RMSNorm
    scales; the final norm; wte and lm_head apart."""
    layer = 3 * d * d + 3 * d + d * d + 3 * d * (ffn // 2) + 2 * d
    return layers * layer + d + 2 * vocab * d


@pytest.mark.parametrize("size", QWEN)
def test_qwen_counts(tmp_path, size):
    d, layers, heads, ffn, vocab = QWEN[size]
    total = qwen_by_hand(d, layers, heads, ffn, vocab)
    assert params(tmp_path, QWEN_7B, hidden_size=d, num_hidden_layers=layers, num_attention_heads=heads,
                  intermediate_size=ffn, vocab_size=vocab, kv_channels=d // heads) == total
    if size in QWEN_BYTES:
        assert 2 * total == QWEN_BYTES[size]


def test_qwen_mlp_branches_are_half_the_configs_width(tmp_path):
    g = layer_graph(load(tmp_path, QWEN_7B), Phase.decode(2, 16))
    gate = g.ops["gate_proj"]
    assert gate.flops == 2 * 2 * 4096 * 11008  # one branch: 22,016 / 2 wide
    assert g.ops["q_proj"].flops == 2 * 2 * 4096 * 4096 + 2 * 4096  # biased
    assert "o_proj" in g.ops and g.ops["o_proj"].flops == 2 * 2 * 4096 * 4096  # c_proj: no bias


def test_qwen_context_is_seq_length_and_the_unrun_scalings_are_noted(tmp_path):
    cfg = load(tmp_path, QWEN_7B)
    assert cfg.context_window == 8192  # min(seq_length, max_position_embeddings), as vLLM takes it
    assert any("use_logn_attn" in n and "not run by vLLM" in n for n in cfg.notes)
    assert any("use_dynamic_ntk" in n for n in cfg.notes)


@pytest.mark.parametrize("change, field", [
    ({"kv_channels": 64}, "kv_channels"),
    ({"rotary_pct": 0.5}, "rotary_pct"),
    ({"no_bias": False}, "no_bias"),
    ({"intermediate_size": 22015}, "intermediate_size"),
])
def test_qwen_refuses_what_vllm_would_not_build(tmp_path, change, field):
    with pytest.raises(OpgraphError, match=field):
        load(tmp_path, QWEN_7B, **change)


INTERNLM_20B = {"architectures": ["InternLMForCausalLM"],
                "auto_map": {"AutoConfig": "configuration_internlm.InternLMConfig",
                             "AutoModel": "modeling_internlm.InternLMForCausalLM",
                             "AutoModelForCausalLM": "modeling_internlm.InternLMForCausalLM"},
                "bias": False, "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 5120,
                "initializer_range": 0.02, "intermediate_size": 13824, "max_position_embeddings": 4096,
                "model_type": "internlm", "num_attention_heads": 40, "num_hidden_layers": 60, "num_key_value_heads": 40,
                "pad_token_id": 2, "pretraining_tp": 1, "rms_norm_eps": 1e-06, "tie_word_embeddings": False,
                "torch_dtype": "bfloat16", "transformers_version": "4.33.1", "use_cache": True, "vocab_size": 103168,
                "rotary": {"base": 10000, "type": "dynamic"}}


def internlm_by_hand(d, layers, ffn, vocab, bias):
    layer = 4 * d * d + (4 * d if bias else 0) + 3 * d * ffn + 2 * d
    return layers * layer + d + 2 * vocab * d


def test_internlm_counts(tmp_path):
    assert params(tmp_path, INTERNLM_20B) == internlm_by_hand(5120, 60, 13824, 103168, False) == 20_088_714_240
    # InternLM-7B: InternLMConfig's defaults (bias true: q, k, v and o biased, as vLLM's llama.py reads `bias`)
    seven = {k: v for k, v in INTERNLM_20B.items() if k not in ("bias", "num_key_value_heads")}
    assert params(tmp_path, seven, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                  num_attention_heads=32) == internlm_by_hand(4096, 32, 11008, 103168, True) == 7_321_948_160


def test_internlm_rotary_must_be_an_object(tmp_path):
    with pytest.raises(OpgraphError, match="rotary"):
        load(tmp_path, INTERNLM_20B, rotary="dynamic")


PERSIMMON_8B = {"architectures": ["PersimmonForCausalLM"], "model_type": "persimmon", "hidden_size": 4096,
                "intermediate_size": 16384, "num_hidden_layers": 36, "num_attention_heads": 64,
                "num_key_value_heads": 64, "hidden_act": "relu2", "hidden_dropout": 0.6, "attention_dropout": 0.0,
                "layer_norm_eps": 1e-5, "max_position_embeddings": 16384, "qk_layernorm": True, "rope_theta": 25000.0,
                "rope_scaling": None, "tie_word_embeddings": False, "torch_dtype": "bfloat16", "vocab_size": 262144,
                "bos_token_id": 71013, "eos_token_id": 71013}


def test_persimmon_count(tmp_path):
    d, ffn, head_dim = 4096, 16384, 64
    layer = (3 * d * d + 3 * d) + (d * d + d) + 2 * 2 * head_dim + (d * ffn + ffn) + (ffn * d + d) + 2 * 2 * d
    total = 36 * layer + 2 * d + 2 * 262144 * d
    assert params(tmp_path, PERSIMMON_8B) == total == 9_397_175_296  # Adept: "fewer than 10 billion"


def test_persimmon_layer(tmp_path):
    g = layer_graph(load(tmp_path, PERSIMMON_8B), Phase.decode(1, 8))
    assert g.ops["act"].fn == "relu2" and g.ops["act"].flops == 2 * 16384  # relu(x)^2: compare, multiply
    assert [w.shape for w in g.ops["q_norm"].inputs[1:]] == [(64,), (64,)]  # one scale and shift the heads share
    whole = layer_graph(load(tmp_path, PERSIMMON_8B, partial_rotary_factor=1.0), Phase.decode(1, 8))
    assert 2 * g.ops["rope_q"].flops == whole.ops["rope_q"].flops  # 32 of each head's 64 dims rotated


@pytest.mark.parametrize("change, field", [({"tie_word_embeddings": True}, "tie_word_embeddings"),
                                           ({"num_key_value_heads": 8}, "num_key_value_heads")])
def test_persimmon_refuses_what_vllm_does_not_build(tmp_path, change, field):
    with pytest.raises(OpgraphError, match=field):
        load(tmp_path, PERSIMMON_8B, **change)


DEEPSEEK_MOE_16B = {"architectures": ["DeepseekForCausalLM"], "model_type": "deepseek", "vocab_size": 102400,
                    "hidden_size": 2048, "intermediate_size": 10944, "moe_intermediate_size": 1408,
                    "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 16,
                    "n_routed_experts": 64, "n_shared_experts": 2, "num_experts_per_tok": 6, "moe_layer_freq": 1,
                    "first_k_dense_replace": 1, "norm_topk_prob": False, "scoring_func": "softmax",
                    "aux_loss_alpha": 0.001, "seq_aux": True, "hidden_act": "silu", "rms_norm_eps": 1e-6,
                    "rope_theta": 10000, "rope_scaling": None, "max_position_embeddings": 4096,
                    "bos_token_id": 100000, "eos_token_id": 100001, "attention_bias": False,
                    "tie_word_embeddings": False, "torch_dtype": "bfloat16"}


def test_deepseek_moe_count(tmp_path):
    d, e = 2048, 1408
    attention = 4 * d * d
    dense = attention + 3 * d * 10944 + 2 * d
    moe = attention + d * 64 + 64 * 3 * d * e + 3 * d * 2 * e + 2 * d  # router, 64 experts, two shared as one MLP
    total = dense + 27 * moe + d + 2 * 102400 * d
    assert params(tmp_path, DEEPSEEK_MOE_16B) == total == 16_375_728_128
    assert round(total / 1e9, 1) == 16.4  # the DeepSeek-MoE paper's and README's "16.4B"


def test_deepseek_moe_runs_six_of_64_experts_not_renormalized(tmp_path):
    cfg = load(tmp_path, DEEPSEEK_MOE_16B)
    assert cfg.mla is None and cfg.n_kv_heads == 16
    assert cfg.moe.experts == 64 and cfg.moe.top_k == 6 and not cfg.moe.renormalize and cfg.moe.first_dense == 1


@pytest.mark.parametrize("change, field", [({"scoring_func": "sigmoid"}, "scoring_func"),
                                           ({"routed_scaling_factor": 2.5}, "routed_scaling_factor"),
                                           ({"topk_method": "noaux_tc"}, "topk_method")])
def test_deepseek_moe_refuses_routing_vllm_does_not_run(tmp_path, change, field):
    with pytest.raises(OpgraphError, match=field):
        load(tmp_path, DEEPSEEK_MOE_16B, **change)
