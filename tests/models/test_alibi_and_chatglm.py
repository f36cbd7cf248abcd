"""BigScience's BLOOM (bloom), MosaicML's MPT (mpt) and the 13B Baichuans (baichuan), whose attention takes ALiBi
biases instead of positions, and Zhipu's GLM-4-9B in its two formats (glm: transformers' GlmForCausalLM; chatglm:
the first remote-code ChatGLMModel, also ChatGLM3-6B). Counts are derived here by hand from the tensor shapes of the
reference code (transformers' modeling_bloom.py, modeling_mpt.py and modeling_glm.py, ChatGLM's modeling_chatglm.py,
vLLM's bloom.py, mpt.py, baichuan.py, glm.py and chatglm.py) and checked against the published ones where those are exact."""

import pytest
from config_files import layer_graph, load, params

from opgraph import OpgraphError, Phase



# -- BLOOM ----------------------------------------------------------------------------------------------------------

# bigscience/bloom-560m (transformers' printout of its config.json in a README: the file's fields)
BLOOM_560M = {"apply_residual_connection_post_layernorm": False, "architectures": ["BloomForCausalLM"],
              "attention_dropout": 0.0, "attention_softmax_in_fp32": True, "bias_dropout_fusion": True,
              "bos_token_id": 1, "eos_token_id": 2, "hidden_dropout": 0.0, "hidden_size": 1024,
              "initializer_range": 0.02, "layer_norm_epsilon": 1e-05, "masked_softmax_fusion": True,
              "model_type": "bloom", "n_head": 16, "n_inner": None, "n_layer": 24, "offset_alibi": 100,
              "pad_token_id": 3, "pretraining_tp": 1, "skip_bias_add": True, "skip_bias_add_qkv": False,
              "slow_but_exact": False, "transformers_version": "4.26.0", "unk_token_id": 0, "use_cache": True,
              "vocab_size": 250880}
BLOOM = {  # (hidden, layers, heads): the model cards' "Total parameters" (the BLOOM paper's table)
    "560m": ((1024, 24, 16), 559_214_592), "1b7": ((2048, 24, 16), 1_722_408_960),
    "3b": ((2560, 30, 32), 3_002_557_440), "7b1": ((4096, 30, 32), 7_069_016_064),
    "176b": ((14336, 70, 112), 176_247_271_424),
}


@pytest.mark.parametrize("size", BLOOM)
def test_bloom_counts_are_the_model_cards(tmp_path, size):
    (d, layers, heads), published = BLOOM[size]
    # per layer: two LayerNorms, a biased query_key_value and dense, a biased 4d MLP; the tied table, its LayerNorm
    # and the final one
    layer = 2 * 2 * d + (3 * d * d + 3 * d) + (d * d + d) + (4 * d * d + 4 * d) + (4 * d * d + d)
    assert 250880 * d + 2 * 2 * d + layers * layer == published
    assert params(tmp_path, BLOOM_560M, hidden_size=d, n_layer=layers, n_head=heads) == published


def test_alibi_adds_two_flops_a_score_and_reads_a_slope_a_head(tmp_path):
    cfg = load(tmp_path, BLOOM_560M)
    assert any("VLLM_FLASH_ATTN_VERSION=2" in n for n in cfg.notes)
    g = layer_graph(cfg, Phase.decode(2, 99))
    softmax = g.ops["softmax"]
    scores = 2 * 16 * 100  # two sequences, 16 heads, 99 cached keys and the new one
    assert softmax.flops == (5 + 2) * scores  # softmax's 5, and the slope's multiply and add
    slopes = next(t for t in softmax.inputs if t.name.endswith("alibi_slopes"))
    assert slopes.shape == (16,) and slopes.nbytes == 16 * 4  # fp32, no weight of the checkpoint's
    assert "rope_q" not in g.ops
    # under --tp 2 each GPU reads its own heads' slopes
    g2 = layer_graph(cfg, Phase.decode(2, 99), tp=2)
    assert next(t for t in g2.ops["softmax"].inputs if t.name.endswith("alibi_slopes")).shape == (8,)
    # the embeddings' LayerNorm, with a scale and a shift
    head = cfg.embed_head(Phase.decode(2, 99))
    assert head.ops["embed_norm"].flops == 2 * (7 * 1024 + 4)


def test_bloom_notes_an_n_inner_no_engine_reads(tmp_path):
    cfg = load(tmp_path, BLOOM_560M, n_inner=8192)
    assert any("n_inner (8,192) is read by neither" in n for n in cfg.notes)
    assert cfg.build(Phase.decode(1, 1)).params() == 559_214_592  # the MLP stays 4 x hidden


# -- MPT ------------------------------------------------------------------------------------------------------------

# mosaicml/mpt-7b-instruct's config.json (the same layer as mpt-7b), as a TVM/MLC document quotes it
MPT_7B = {"architectures": ["MPTForCausalLM"],
          "attn_config": {"alibi": True, "alibi_bias_max": 8, "attn_impl": "torch", "attn_pdrop": 0,
                          "attn_type": "multihead_attention", "attn_uses_sequence_id": False, "clip_qkv": None,
                          "prefix_lm": False, "qk_ln": False, "softmax_scale": None},
          "auto_map": {"AutoConfig": "configuration_mpt.MPTConfig"}, "d_model": 4096, "emb_pdrop": 0,
          "embedding_fraction": 1.0, "expansion_ratio": 4,
          "init_config": {"init_std": 0.02, "name": "kaiming_normal_"}, "init_device": "cpu",
          "learned_pos_emb": True, "logit_scale": None, "max_seq_len": 2048, "model_type": "mpt", "n_heads": 32,
          "n_layers": 32, "no_bias": True, "norm_type": "low_precision_layernorm", "resid_pdrop": 0,
          "tokenizer_name": "EleutherAI/gpt-neox-20b", "torch_dtype": "bfloat16", "transformers_version": "4.28.1",
          "use_cache": False, "verbose": 0, "vocab_size": 50432}
MPT_30B = {**MPT_7B, "d_model": 7168, "n_heads": 64, "n_layers": 48, "max_seq_len": 8192}


@pytest.mark.parametrize("config, d, layers, total", [(MPT_7B, 4096, 32, 6_649_286_656),
                                                      (MPT_30B, 7168, 48, 29_957_200_896)])
def test_mpt_counts(tmp_path, config, d, layers, total):
    # no biases; the two LayerNorms' scales; Wqkv, out_proj and a 4d MLP; the tied table and the final norm. Only
    # rounded sizes are published ("6.7B", "30B"), so the hand count is the check
    assert 50432 * d + layers * (12 * d * d + 2 * d) + d == total
    assert params(tmp_path, config) == total
    assert not [n for n in load(tmp_path, config).notes if "not read" in n]  # every attn_config key is known


def test_mpt_refuses_what_vllm_does_not_build(tmp_path):
    for change, says in [({"attn_config": {"alibi": False}}, "'attn_config.alibi' is false"),
                         ({"attn_config": {"alibi": True, "kv_n_heads": 8}}, "'attn_config.kv_n_heads' is not"),
                         ({"attn_config": {"alibi": True, "qk_ln": True}}, "'attn_config.qk_ln' is true"),
                         ({"ffn_config": {"ffn_type": "mptglu"}}, "'ffn_config.ffn_type' is 'mptglu'"),
                         ({"tie_word_embeddings": False}, "'tie_word_embeddings' is false")]:
        with pytest.raises(OpgraphError, match=says):
            load(tmp_path, MPT_7B, **change)


def test_mpt_biases_where_no_bias_is_false_and_its_clip_note(tmp_path):
    d = 4096
    cfg = load(tmp_path, MPT_7B, no_bias=False, attn_config={**MPT_7B["attn_config"], "clip_qkv": 6.0})
    # every linear's bias, and the norms' shifts: 3d + d + 4d + d a layer, d more for the final norm
    assert cfg.build(Phase.decode(1, 1)).params() == 6_649_286_656 + 32 * (3 * d + d + 4 * d + d + 2 * d) + d
    assert any("clip_qkv 6.0" in n for n in cfg.notes)


# -- Baichuan ---------------------------------------------------------------------------------------------------------

# a Baichuan2-7B fine-tune's config.json (TongGu-7B, as transformers logs it loading)
BAICHUAN2_7B = {"_from_model_config": True, "architectures": ["BaichuanForCausalLM"],
                "auto_map": {"AutoConfig": "configuration_baichuan.BaichuanConfig"}, "bos_token_id": 1,
                "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
                "intermediate_size": 11008, "max_position_embeddings": 4096, "model_max_length": 4096,
                "model_type": "baichuan", "num_attention_heads": 32, "num_hidden_layers": 32, "pad_token_id": 0,
                "rms_norm_eps": 1e-06, "tie_word_embeddings": False, "torch_dtype": "float16",
                "transformers_version": "4.52.3", "use_cache": False, "vocab_size": 125696, "z_loss_weight": 0}
# Baichuan-13B-Chat's fields (DISC-FinLLM's config.json, a fine-tune of it)
BAICHUAN_13B = {**BAICHUAN2_7B, "hidden_size": 5120, "intermediate_size": 13696, "num_attention_heads": 40,
                "num_hidden_layers": 40, "vocab_size": 64000}


@pytest.mark.parametrize("config, d, layers, ffn, vocab, alibi", [
    (BAICHUAN2_7B, 4096, 32, 11008, 125696, False), (BAICHUAN_13B, 5120, 40, 13696, 64000, True),
    ({**BAICHUAN_13B, "architectures": ["BaiChuanForCausalLM"]}, 5120, 40, 13696, 64000, False),
])
def test_baichuan_positions_as_vllm_picks_them(tmp_path, config, d, layers, ffn, vocab, alibi):
    assert params(tmp_path, config) == layers * (4 * d * d + 3 * d * ffn + 2 * d) + 2 * vocab * d + d
    g = layer_graph(load(tmp_path, config), Phase.decode(1, 9))
    assert ("rope_q" not in g.ops) == alibi
    assert any(t.name.endswith("alibi_slopes") for t in g.ops["softmax"].inputs) == alibi


# -- GLM-4-9B: glm and chatglm ----------------------------------------------------------------------------------------

# THUDM/glm-4-9b-chat in its first format (transformers' printout of the config it loaded, in a LLaMA-Factory log)
GLM4_9B_CHAT = {"add_bias_linear": False, "add_qkv_bias": True, "apply_query_key_layer_scaling": True,
                "apply_residual_connection_post_layernorm": False, "architectures": ["ChatGLMModel"],
                "attention_dropout": 0.0, "attention_softmax_in_fp32": True, "bias_dropout_fusion": True,
                "classifier_dropout": None, "eos_token_id": [151329, 151336, 151338], "ffn_hidden_size": 13696,
                "fp32_residual_connection": False, "hidden_dropout": 0.0, "hidden_size": 4096, "kv_channels": 128,
                "layernorm_epsilon": 1.5625e-07, "model_type": "chatglm", "multi_query_attention": True,
                "multi_query_group_num": 2, "num_attention_heads": 32, "num_hidden_layers": 40, "num_layers": 40,
                "original_rope": True, "pad_token_id": 151329, "padded_vocab_size": 151552, "post_layer_norm": True,
                "rmsnorm": True, "rope_ratio": 500, "seq_length": 131072, "tie_word_embeddings": False,
                "torch_dtype": "bfloat16", "transformers_version": "4.43.4", "use_cache": True, "vocab_size": 151552}
# THUDM/chatglm3-6b's config.json (a git mirror of its repository, czk1997/chatglm3-copy)
CHATGLM3_6B = {**{k: v for k, v in GLM4_9B_CHAT.items() if k not in ("num_hidden_layers", "vocab_size",
                                                                     "classifier_dropout", "rope_ratio")},
               "eos_token_id": 2, "layernorm_epsilon": 1e-05, "num_layers": 28, "pad_token_id": 0,
               "padded_vocab_size": 65024, "seq_length": 8192, "torch_dtype": "float16"}
# THUDM/glm-4-9b-chat-hf's fields (transformers' glm)
GLM4_9B_HF = {"architectures": ["GlmForCausalLM"], "attention_bias": True, "attention_dropout": 0.0, "head_dim": 128,
              "hidden_act": "silu", "hidden_size": 4096, "intermediate_size": 13696,
              "max_position_embeddings": 131072, "model_type": "glm", "num_attention_heads": 32,
              "num_hidden_layers": 40, "num_key_value_heads": 2, "partial_rotary_factor": 0.5,
              "rms_norm_eps": 1.5625e-07, "rope_theta": 10000.0, "tie_word_embeddings": False,
              "torch_dtype": "bfloat16", "vocab_size": 151552}


def glm_by_hand(layers, vocab):
    d, kv, f = 4096, 2 * 128, 13696
    layer = (d * d + d) + 2 * (d * kv + kv) + d * d + 3 * d * f + 2 * d  # q, k, v biased; o; SwiGLU; 2 RMSNorms
    return layers * layer + 2 * vocab * d + d


def test_glm_4_9b_in_both_formats(tmp_path):
    assert glm_by_hand(40, 151552) == 9_399_951_360  # "9.4B"
    assert params(tmp_path, GLM4_9B_HF) == params(tmp_path, GLM4_9B_CHAT) == 9_399_951_360


def test_chatglm3_counts_its_weight_file(tmp_path):
    # its pytorch_model.bin.index.json: 12,487,168,064 bytes of fp16, less the 32 values of rotary inv_freq
    assert glm_by_hand(28, 65024) == 12_487_168_064 // 2 - 32
    cfg = load(tmp_path, CHATGLM3_6B)
    assert cfg.build(Phase.decode(1, 1)).params() == glm_by_hand(28, 65024)
    g = layer_graph(cfg, Phase.decode(1, 9))
    assert g.ops["rope_q"].flops == 3 * 32 * 64  # half of each 128-wide head
    assert g.ops["k_proj"].outputs[0].shape[-1] == 2 * 128  # two KV groups


def test_chatglm_refuses_what_it_does_not_model(tmp_path):
    for change, says in [({"pre_seq_len": 128}, "'pre_seq_len' is set"),
                         ({"multi_query_attention": False}, "'multi_query_attention' is false"),
                         ({"kv_channels": 64}, "'kv_channels' x num_attention_heads")]:
        with pytest.raises(OpgraphError, match=says):
            load(tmp_path, CHATGLM3_6B, **change)
    note = load(tmp_path, CHATGLM3_6B, quantization_bit=4).notes
    assert any("quantization_bit 4" in n for n in note)


def test_glm_notes_a_rotary_fraction_vllm_overrides(tmp_path):
    assert not load(tmp_path, GLM4_9B_HF).notes
    assert any("rotates half of each head (64 dims)" in n for n in load(tmp_path, GLM4_9B_HF,
                                                                        partial_rotary_factor=0.25).notes)
