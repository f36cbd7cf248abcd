"""The open models research and systems papers still run: EleutherAI's Pythia and GPT-NeoX-20B (gpt_neox), GPT-J
(gptj), Meta's OPT (opt), TII's Falcon (falcon), Microsoft's Phi-1, 1.5 and 2 (phi), BigCode's StarCoder (gpt_bigcode),
Stability's StableLM (stablelm, stablelm_epoch), AllenAI's OLMo (olmo) and LG's EXAONE-3.x (exaone). Each count is
derived here by hand from the tensor shapes the reference code builds (transformers' modeling_*.py, vLLM's
model_executor/models/*.py), and checked against the published count where one is exact. Each CONFIG holds a
published config.json's fields: the official file where one was reachable, else a re-save by another repository,
named beside it (the shape fields agree across every copy)."""

import pytest
from config_files import layer_graph, load, params

from opgraph import OpgraphError, Phase


def ln(d):  # a LayerNorm with a scale and a shift
    return 2 * d


def linear(n_in, n_out, bias=True):
    return n_in * n_out + (n_out if bias else 0)


# -- GPT-NeoX and Pythia -----------------------------------------------------------------------------------------

# EleutherAI/pythia-12b at its step6000 branch (the official file); the other sizes from re-saves of theirs
# (Xenova/pythia-70m, edbeeching/pythia-160M, lomahony/pythia-410m-helpful-sft, unionai/pythia-1B-deduped-wikipedia,
# ContextualAI/archangel_kto_pythia1-4b, EleutherAI/pythia-2.8b-population-first-ft, ContextualAI/archangel_sft_pythia6-9b)
PYTHIA_12B = {"architectures": ["GPTNeoXForCausalLM"], "bos_token_id": 0, "classifier_dropout": 0.1, "eos_token_id": 0,
              "hidden_act": "gelu", "hidden_size": 5120, "initializer_range": 0.02, "intermediate_size": 20480,
              "layer_norm_eps": 1e-05, "max_position_embeddings": 2048, "model_type": "gpt_neox",
              "num_attention_heads": 40, "num_hidden_layers": 36, "rotary_emb_base": 10000, "rotary_pct": 0.25,
              "tie_word_embeddings": False, "torch_dtype": "float16", "transformers_version": "4.30.2",
              "use_cache": True, "use_parallel_residual": True, "vocab_size": 50688}
PYTHIA = {  # size: (hidden, layers, heads, vocab), the MLP 4 x hidden; the model card's total and non-embedding counts
    "70m": ((512, 6, 8, 50304), 70_426_624, 18_915_328),
    "160m": ((768, 12, 12, 50304), 162_322_944, 85_056_000),
    "410m": ((1024, 24, 16, 50304), 405_334_016, 302_311_424),
    "1b": ((2048, 16, 8, 50304), 1_011_781_632, 805_736_448),
    "1.4b": ((2048, 24, 16, 50304), 1_414_647_808, 1_208_602_624),
    "2.8b": ((2560, 32, 32, 50304), 2_775_208_960, 2_517_652_480),
    "6.9b": ((4096, 32, 32, 50432), 6_857_302_016, 6_444_163_072),
    "12b": ((5120, 36, 40, 50688), 11_846_072_320, 11_327_027_200),
}
# EleutherAI/gpt-neox-20b (edbeeching/gpt-neox-20b-imdb-lora-lr5e-5-adapter-merged's re-save)
NEOX_20B = {**PYTHIA_12B, "hidden_act": "gelu_fast", "hidden_size": 6144, "intermediate_size": 24576,
            "num_attention_heads": 64, "num_hidden_layers": 44, "vocab_size": 50432, "attention_probs_dropout_prob": 0,
            "hidden_dropout_prob": 0}


def neox_by_hand(d, layers, vocab, ffn):
    """Two LayerNorms, a biased query_key_value and dense, a biased MLP; the final norm; embed_in and embed_out."""
    layer = 2 * ln(d) + linear(d, 3 * d) + linear(d, d) + linear(d, ffn) + linear(ffn, d)
    return layers * layer + ln(d), 2 * vocab * d


def pythia(d, layers, heads, vocab):
    return {**PYTHIA_12B, "hidden_size": d, "num_hidden_layers": layers, "num_attention_heads": heads,
            "intermediate_size": 4 * d, "vocab_size": vocab}


@pytest.mark.parametrize("size", PYTHIA)
def test_pythia_counts_are_the_model_cards(tmp_path, size):
    (d, layers, heads, vocab), total, non_embedding = PYTHIA[size]
    body, tables = neox_by_hand(d, layers, vocab, 4 * d)
    assert (body + tables, body) == (total, non_embedding)
    assert params(tmp_path, pythia(d, layers, heads, vocab)) == total


def test_gpt_neox_20b_counts_every_tensor_once(tmp_path):
    body, tables = neox_by_hand(6144, 44, 50432, 24576)
    # Its card's 20,556,201,984 counts the norms and the two row-parallel biases once per GPU of its TP 2 training
    assert body + tables == 20_554_567_680 == 20_556_201_984 - (44 * (2 * ln(6144) + 2 * 6144) + ln(6144))
    assert params(tmp_path, NEOX_20B) == body + tables


def test_gpt_neox_layer_is_a_parallel_residual_with_two_norms_and_a_quarter_of_rope(tmp_path):
    cfg = load(tmp_path, PYTHIA_12B)
    g = layer_graph(cfg, Phase.decode(4, 99))
    assert cfg.layer_kinds() == {cfg.layers.at(0): 36}
    ops = g.ops
    # both norms read the layer's input, and the two branches are summed before the residual add
    assert ops["input_layernorm"].inputs[0] is ops["post_attention_layernorm"].inputs[0]
    assert {t.name for t in ops["branch_sum"].inputs} == {"attn_out", "mlp_out"}
    # rope over int(128 x 0.25) = 32 dims of each head: 3 FLOPs an element, 40 q heads of one token each
    assert ops["rope_q"].flops == 3 * 4 * 40 * 32
    # under --tp 2, dense and dense_4h_to_h each all-reduce (vLLM's gpt_neox.py: RowParallelLinear)
    g2 = layer_graph(cfg, Phase.decode(4, 99), tp=2)
    assert sorted(o.name for o in g2.ops.values() if o.fn == "all_reduce") == ["down_allreduce", "o_allreduce"]


def test_gpt_neox_sequential_layers_and_a_disagreeing_rotary_fraction(tmp_path):
    sequential = load(tmp_path, PYTHIA_12B, use_parallel_residual=False)
    g = layer_graph(sequential, Phase.decode(1, 9))
    assert "branch_sum" not in g.ops and g.ops["post_attention_layernorm"].inputs[0].name == "h"
    with pytest.raises(Exception, match="'partial_rotary_factor' is 0.5: they disagree"):
        load(tmp_path, PYTHIA_12B, partial_rotary_factor=0.5)


# -- GPT-J --------------------------------------------------------------------------------------------------------

# EleutherAI/gpt-j-6b's config.json
GPTJ_6B = {"activation_function": "gelu_new", "architectures": ["GPTJForCausalLM"], "attn_pdrop": 0.0,
           "bos_token_id": 50256, "embd_pdrop": 0.0, "eos_token_id": 50256, "gradient_checkpointing": False,
           "initializer_range": 0.02, "layer_norm_epsilon": 1e-05, "model_type": "gptj", "n_embd": 4096,
           "n_head": 16, "n_inner": None, "n_layer": 28, "n_positions": 2048, "resid_pdrop": 0.0, "rotary": True,
           "rotary_dim": 64, "scale_attn_weights": True, "tie_word_embeddings": False, "tokenizer_class": "GPT2Tokenizer",
           "torch_dtype": "float32", "transformers_version": "4.18.0.dev0", "use_cache": True, "vocab_size": 50400}


def test_gpt_j_counts_and_its_biased_head(tmp_path):
    d, ffn, vocab = 4096, 16384, 50400
    layer = ln(d) + 4 * d * d + linear(d, ffn) + linear(ffn, d)  # q, k, v and out_proj unbiased
    total = 28 * layer + ln(d) + vocab * d + linear(d, vocab)  # wte; lm_head with its bias
    # The card's 6,053,381,344 counts mesh-transformer-jax's sharded tree (copies of the norms and biases per shard)
    assert total == 6_050_882_784
    cfg = load(tmp_path, GPTJ_6B)
    assert cfg.build(Phase.decode(1, 1)).params() == total
    g = layer_graph(cfg, Phase.decode(2, 9))
    assert g.ops["rope_q"].flops == 3 * 2 * 16 * 64  # rotary_dim 64 of 256
    head = cfg.embed_head(Phase.decode(2, 9))
    assert head.ops["lm_head"].flops == 2 * 2 * d * vocab + 2 * vocab  # the bias added to every logit


# -- Phi-1, 1.5, 2 --------------------------------------------------------------------------------------------------

# microsoft/phi-2's config.json (at its in-library revision)
PHI_2 = {"architectures": ["PhiForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 50256, "embd_pdrop": 0.0,
         "eos_token_id": 50256, "hidden_act": "gelu_new", "hidden_size": 2560, "initializer_range": 0.02,
         "intermediate_size": 10240, "layer_norm_eps": 1e-05, "max_position_embeddings": 2048, "model_type": "phi",
         "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32,
         "partial_rotary_factor": 0.4, "qk_layernorm": False, "resid_pdrop": 0.1, "rope_scaling": None,
         "rope_theta": 10000.0, "tie_word_embeddings": False, "torch_dtype": "float16",
         "transformers_version": "4.37.0", "use_cache": True, "vocab_size": 51200}
PHI_1_5 = {**PHI_2, "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 24,
           "partial_rotary_factor": 0.5}


@pytest.mark.parametrize("config, d, layers", [(PHI_2, 2560, 32), (PHI_1_5, 2048, 24)])
def test_phi_counts(tmp_path, config, d, layers):
    layer = ln(d) + 4 * linear(d, d) + linear(d, 4 * d) + linear(4 * d, d)
    total = layers * layer + ln(d) + 51200 * d + linear(d, 51200)
    # only rounded sizes are published ("2.7B", "1.3B"): the hand count is the check
    assert params(tmp_path, config) == total


def test_phi_rotates_forty_percent_and_notes_what_vllm_does_not_build(tmp_path):
    cfg = load(tmp_path, PHI_2)
    g = layer_graph(cfg, Phase.decode(1, 9))
    assert g.ops["rope_q"].flops == 3 * 32 * 32  # int(80 x 0.4) = 32 dims of each of 32 heads
    assert not [n for n in cfg.notes if "vLLM" in n]
    odd = load(tmp_path, PHI_2, qk_layernorm=True, num_key_value_heads=8)
    (note,) = [n for n in odd.notes if "vLLM's phi.py" in n]
    assert "num_key_value_heads (8: vLLM builds 32)" in note and "qk_layernorm" in note
    g = layer_graph(odd, Phase.decode(1, 9))
    # one scale and shift of head_dim shared by the heads
    assert g.ops["q_norm"].inputs[1].shape == (80,) and g.ops["q_norm"].inputs[2].shape == (80,)


# -- Falcon ---------------------------------------------------------------------------------------------------------

# tiiuae/falcon-40b's config.json (its in-library revision)
FALCON_40B = {"alibi": False, "apply_residual_connection_post_layernorm": False,
              "architectures": ["FalconForCausalLM"], "attention_dropout": 0.0, "bias": False, "bos_token_id": 11,
              "eos_token_id": 11, "hidden_dropout": 0.0, "hidden_size": 8192, "initializer_range": 0.02,
              "layer_norm_epsilon": 1e-05, "model_type": "falcon", "new_decoder_architecture": True,
              "num_attention_heads": 128, "num_hidden_layers": 60, "num_kv_heads": 8, "parallel_attn": True,
              "torch_dtype": "bfloat16", "transformers_version": "4.27.4", "use_cache": True, "vocab_size": 65024}
# tiiuae/falcon-7b: its in-library revision's fields (its first file's, renamed as transformers' converter renames them)
FALCON_7B = {"alibi": False, "apply_residual_connection_post_layernorm": False, "architectures": ["FalconForCausalLM"],
             "attention_dropout": 0.0, "bias": False, "bos_token_id": 11, "eos_token_id": 11, "hidden_dropout": 0.0,
             "hidden_size": 4544, "initializer_range": 0.02, "layer_norm_epsilon": 1e-05, "model_type": "falcon",
             "multi_query": True, "new_decoder_architecture": False, "num_attention_heads": 71,
             "num_hidden_layers": 32, "parallel_attn": True, "torch_dtype": "bfloat16",
             "transformers_version": "4.27.4", "use_cache": True, "vocab_size": 65024}
# tiiuae/falcon-180B (the gojiteji/LLM-Comparer copy); tiiuae/falcon-11B (thesven/falcon-11B-GPTQ-4bit's fields)
FALCON_180B = {**FALCON_40B, "hidden_size": 14848, "num_attention_heads": 232, "num_hidden_layers": 80,
               "multi_query": True, "transformers_version": "4.32.0"}
FALCON_11B = {**FALCON_40B, "activation": "gelu", "ffn_hidden_size": 16384, "ff_factor": 4, "hidden_size": 4096,
              "num_attention_heads": 32, "num_ln_in_parallel_attn": 1, "max_position_embeddings": 8192,
              "rope_theta": 500042.0, "tie_word_embeddings": False}


@pytest.mark.parametrize("config, d, layers, heads, kv, norms, tied, total", [
    (FALCON_7B, 4544, 32, 71, 1, 1, True, 6_921_720_704),
    (FALCON_40B, 8192, 60, 128, 8, 2, True, 41_303_293_952),
    (FALCON_180B, 14848, 80, 232, 8, 2, True, 178_557_088_768),
    (FALCON_11B, 4096, 60, 32, 8, 1, False, 11_102_822_400),
])
def test_falcon_counts(tmp_path, config, d, layers, heads, kv, norms, tied, total):
    hd = d // heads
    layer = norms * ln(d) + d * (heads + 2 * kv) * hd + d * d + 2 * d * 4 * d  # no biases
    assert layers * layer + ln(d) + (1 if tied else 2) * 65024 * d == total
    assert params(tmp_path, config) == total


def test_falcon_sums_attention_and_mlp_before_one_all_reduce(tmp_path):
    cfg = load(tmp_path, FALCON_40B)
    g = layer_graph(cfg, Phase.decode(8, 99), tp=2)
    reduces = [o for o in g.ops.values() if o.fn == "all_reduce"]
    assert [o.name for o in reduces] == ["branches_allreduce"]  # vLLM's falcon.py: reduce_results=False on both
    assert {t.name for t in g.ops["branch_sum"].inputs} == {"attn_partial", "mlp_partial"}
    assert reduces[0].inputs[0].shape[-1] == 8192
    assert {"ln_attn", "ln_mlp"} <= set(g.ops)
    # Falcon-7B's one input_layernorm for both branches, one KV head
    g7 = layer_graph(load(tmp_path, FALCON_7B), Phase.decode(1, 9))
    assert "ln_attn" not in g7.ops and g7.ops["k_proj"].outputs[0].shape[-1] == 64


def test_falcon_notes_vllms_fixed_mlp(tmp_path):
    wide = load(tmp_path, FALCON_11B, ffn_hidden_size=20480)
    assert any("4 x hidden_size wide with gelu whatever ffn_hidden_size (20,480)" in n for n in wide.notes)
    assert not any("vLLM" in n for n in load(tmp_path, FALCON_11B).notes)


# The first, remote-code files: tiiuae/falcon-7b's (RefinedWebModel, as its "Duplicate from tiiuae/falcon-7b" copies
# keep it) and falcon-40b-instruct's (RefinedWeb: n_head_kv, no new_decoder_architecture)
RW_7B = {"alibi": False, "apply_residual_connection_post_layernorm": False, "architectures": ["RWForCausalLM"],
         "attention_dropout": 0.0, "bias": False, "bos_token_id": 11, "eos_token_id": 11, "hidden_dropout": 0.0,
         "hidden_size": 4544, "initializer_range": 0.02, "layer_norm_epsilon": 1e-05, "model_type": "RefinedWebModel",
         "multi_query": True, "n_head": 71, "n_layer": 32, "parallel_attn": True, "torch_dtype": "bfloat16",
         "transformers_version": "4.27.4", "use_cache": True, "vocab_size": 65024}
RW_40B = {**{k: v for k, v in RW_7B.items() if k != "multi_query"}, "model_type": "RefinedWeb", "hidden_size": 8192,
          "n_head": 128, "n_head_kv": 8, "n_layer": 60}


def test_falcons_first_files_are_the_same_models(tmp_path):
    assert params(tmp_path, RW_7B) == params(tmp_path, FALCON_7B) == 6_921_720_704
    assert params(tmp_path, RW_40B) == params(tmp_path, FALCON_40B) == 41_303_293_952
    g = layer_graph(load(tmp_path, RW_40B), Phase.decode(1, 9))
    assert {"ln_attn", "ln_mlp"} <= set(g.ops)  # n_head_kv: the new decoder architecture, as transformers converts it


# tiiuae/falcon-rw-1b's fields: ALiBi, multi-head, biased, Llama's order
FALCON_RW_1B = {"alibi": True, "apply_residual_connection_post_layernorm": False, "architectures": ["FalconForCausalLM"],
                "bias": True, "hidden_size": 2048, "model_type": "falcon", "multi_query": False,
                "new_decoder_architecture": False, "num_attention_heads": 32, "num_hidden_layers": 24,
                "parallel_attn": False, "vocab_size": 50304}


def test_falcon_rw_runs_alibi_in_llamas_order(tmp_path):
    d = 2048
    layer = 2 * ln(d) + linear(d, 3 * d) + linear(d, d) + linear(d, 4 * d) + linear(4 * d, d)
    assert params(tmp_path, FALCON_RW_1B) == 24 * layer + ln(d) + 50304 * d  # tied
    cfg = load(tmp_path, FALCON_RW_1B)
    g = layer_graph(cfg, Phase.decode(1, 9), tp=2)
    assert "rope_q" not in g.ops and any(t.name.endswith("alibi_slopes") for t in g.ops["softmax"].inputs)
    assert sorted(o.name for o in g.ops.values() if o.fn == "all_reduce") == ["down_allreduce", "o_allreduce"]


# -- OPT ------------------------------------------------------------------------------------------------------------

# facebook/opt-125m's config.json (refs/pr/42, the current file)
OPT_125M = {"_name_or_path": "facebook/opt-125m", "activation_dropout": 0.0, "activation_function": "relu",
            "architectures": ["OPTForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 2,
            "do_layer_norm_before": True, "dropout": 0.1, "eos_token_id": 2, "ffn_dim": 3072, "hidden_size": 768,
            "init_std": 0.02, "layerdrop": 0.0, "max_position_embeddings": 2048, "model_type": "opt",
            "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 1, "prefix": "</s>",
            "torch_dtype": "float16", "transformers_version": "4.21.0.dev0", "use_cache": True, "vocab_size": 50272,
            "word_embed_proj_dim": 768}
# facebook/opt-350m: its fields (every copy of its 613-byte file), post-norm with 512-wide embeddings
OPT_350M = {**OPT_125M, "do_layer_norm_before": False, "ffn_dim": 4096, "hidden_size": 1024,
            "num_attention_heads": 16, "num_hidden_layers": 24, "word_embed_proj_dim": 512}
OPT = {  # the OPT paper's Table 1 (layers, heads, d_model), the MLP 4 x d_model
    "1.3b": (24, 32, 2048, 1_315_758_080), "2.7b": (32, 32, 2560, 2_651_596_800),
    "6.7b": (32, 32, 4096, 6_658_473_984), "13b": (40, 40, 5120, 12_853_473_280),
    "30b": (48, 56, 7168, 29_974_540_288), "66b": (64, 72, 9216, 65_719_701_504),
}


def opt_by_hand(d, layers, *, width=None, final_norm=True):
    width = width or d
    layer = 4 * linear(d, d) + linear(d, 4 * d) + linear(4 * d, d) + 2 * ln(d)
    projections = 2 * d * width if width != d else 0
    return layers * layer + 50272 * width + 2050 * d + projections + (ln(d) if final_norm else 0)


def test_opt_125m_and_350m(tmp_path):
    assert opt_by_hand(768, 12) == 125_239_296 == params(tmp_path, OPT_125M)  # the Hub's count
    assert opt_by_hand(1024, 24, width=512, final_norm=False) == 331_196_416 == params(tmp_path, OPT_350M)


@pytest.mark.parametrize("size", OPT)
def test_opt_counts(tmp_path, size):
    layers, heads, d, total = OPT[size]
    assert opt_by_hand(d, layers) == total
    assert params(tmp_path, OPT_125M, num_hidden_layers=layers, num_attention_heads=heads, hidden_size=d,
                  ffn_dim=4 * d, word_embed_proj_dim=d, _remove_final_layer_norm=False) == total


def test_opt_350m_is_post_norm_with_projected_embeddings(tmp_path):
    cfg = load(tmp_path, OPT_350M)
    g = layer_graph(cfg, Phase.prefill(1, 16))
    # each norm takes its residual sum: LN(x + attn(x)), then LN(h + mlp(h))
    assert g.ops["self_attn_layer_norm"].inputs[0].name == "attn_sum"
    assert g.ops["final_layer_norm"].inputs[0].name == "mlp_sum"
    assert g.ops["act"].fn == "relu" and g.ops["act"].flops == 16 * 4096  # one compare an element
    head = cfg.embed_head(Phase.prefill(1, 16))
    assert head.ops["project_in"].flops == 2 * 16 * 512 * 1024  # before the positions are added
    assert head.ops["add_positions"].inputs[0].name == "embeddings_projected"
    assert "final_norm" not in head.ops and head.ops["project_out"].flops == 2 * 512 * 1024  # the last position
    # the learned table holds 2,048 positions after OPT's offset of 2 rows
    assert head.ops["position_embedding"].inputs[1].shape == (2050, 1024)


# -- StarCoder (GPT-BigCode) ----------------------------------------------------------------------------------------

# bigcode/starcoder's fields (its config.json as re-saved by its quantized copies)
STARCODER = {"activation_function": "gelu", "architectures": ["GPTBigCodeForCausalLM"], "attention_softmax_in_fp32": True,
             "attn_pdrop": 0.1, "bos_token_id": 0, "embd_pdrop": 0.1, "eos_token_id": 0, "inference_runner": 0,
             "initializer_range": 0.02, "layer_norm_epsilon": 1e-05, "max_batch_size": None,
             "max_sequence_length": None, "model_type": "gpt_bigcode", "multi_query": True, "n_embd": 6144,
             "n_head": 48, "n_inner": 24576, "n_layer": 40, "n_positions": 8192, "pad_key_length": True,
             "pre_allocate_kv_cache": False, "resid_pdrop": 0.1, "scale_attention_softmax_in_fp32": True,
             "scale_attn_weights": True, "summary_activation": None, "summary_first_dropout": 0.1,
             "summary_proj_to_labels": True, "summary_type": "cls_index", "summary_use_proj": True,
             "torch_dtype": "float32", "transformers_version": "4.28.1", "use_cache": True,
             "validate_runner_input": True, "vocab_size": 49152}


def test_starcoder_counts_and_one_kv_head(tmp_path):
    d, hd, ffn = 6144, 128, 24576
    layer = 2 * ln(d) + linear(d, d + 2 * hd) + linear(d, d) + linear(d, ffn) + linear(ffn, d)
    total = 40 * layer + 49152 * d + 8192 * d + ln(d)  # wte (tied), wpe, ln_f
    assert round(total / 1e9, 1) == 15.5 and total == 15_517_456_384  # "15.5B"
    cfg = load(tmp_path, STARCODER)
    assert cfg.build(Phase.decode(1, 1)).params() == total
    assert not cfg.notes  # BigCode's runner settings are read, not listed as unknown
    # one K and one V head of 128, whole on each GPU under --tp 4 (vLLM replicates it)
    g = layer_graph(cfg, Phase.decode(1, 9), tp=4)
    assert g.ops["k_proj"].outputs[0].shape[-1] == hd


# -- StableLM -------------------------------------------------------------------------------------------------------

# stabilityai/stablelm-3b-4e1t at its first revision (remote code, stablelm_epoch)
STABLELM_3B_EPOCH = {"architectures": ["StableLMEpochForCausalLM"], "bos_token_id": 0, "eos_token_id": 0,
                     "hidden_act": "silu", "hidden_size": 2560, "initializer_range": 0.02,
                     "intermediate_size": 6912, "max_position_embeddings": 4096, "model_type": "stablelm_epoch",
                     "norm_eps": 1e-05, "num_attention_heads": 32, "num_heads": 32, "num_hidden_layers": 32,
                     "num_key_value_heads": 32, "rope_pct": 0.25, "rope_theta": 10000, "rotary_scaling_factor": 1.0,
                     "tie_word_embeddings": False, "torch_dtype": "bfloat16", "transformers_version": "4.30.2",
                     "use_cache": True, "vocab_size": 50304}
# the same as transformers' native stablelm saves it
STABLELM_3B = {**{k: v for k, v in STABLELM_3B_EPOCH.items() if k not in ("norm_eps", "rope_pct", "num_heads",
                                                                          "rotary_scaling_factor")},
               "architectures": ["StableLmForCausalLM"], "model_type": "stablelm", "layer_norm_eps": 1e-05,
               "partial_rotary_factor": 0.25, "use_qkv_bias": False}
# stabilityai/stablelm-2-12b's fields: GQA of head_dim 160, a parallel residual and per-head q/k LayerNorms
STABLELM_2_12B = {**STABLELM_3B, "hidden_size": 5120, "intermediate_size": 13824, "num_hidden_layers": 40,
                  "num_key_value_heads": 8, "vocab_size": 100352, "qk_layernorm": True,
                  "use_parallel_residual": True, "use_norm_bias": False}


@pytest.mark.parametrize("config", [STABLELM_3B, STABLELM_3B_EPOCH])
def test_stablelm_3b_count_is_published(tmp_path, config):
    d = 2560
    layer = 2 * ln(d) + 4 * d * d + 3 * d * 6912
    total = 32 * layer + ln(d) + 2 * 50304 * d
    assert total == 2_795_443_200  # its model card
    cfg = load(tmp_path, config)
    assert cfg.build(Phase.decode(1, 1)).params() == total and not cfg.notes
    g = layer_graph(cfg, Phase.decode(1, 9))
    assert g.ops["rope_q"].flops == 3 * 32 * 20  # int(80 x 0.25) = 20 dims of each head


def test_stablelm_epochs_rope_pct_must_agree_with_partial_rotary_factor(tmp_path):
    with pytest.raises(Exception, match="'rope_pct' is 0.25 and 'partial_rotary_factor' is 0.5: they disagree"):
        load(tmp_path, STABLELM_3B_EPOCH, partial_rotary_factor=0.5)


def test_stablelm_2_12b_parallel_residual_with_per_head_norms(tmp_path):
    d, hd = 5120, 160
    layer = ln(d) + d * d + 2 * d * 8 * hd + d * d + 3 * d * 13824 + (32 + 8) * hd  # one norm; q/k scales a head
    total = 40 * layer + ln(d) + 2 * 100352 * d
    cfg = load(tmp_path, STABLELM_2_12B)
    assert cfg.build(Phase.decode(1, 1)).params() == total == 12_143_185_920
    assert any("vLLM's stablelm.py does not build the q/k norms or the parallel residual" in n for n in cfg.notes)
    assert any("use_norm_bias is false" in n for n in cfg.notes)


# -- OLMo -----------------------------------------------------------------------------------------------------------

# allenai/OLMo-7B-0424-hf (ricdomolm/ttt-mc-olmo-1.7-7b's re-save)
OLMO_7B_0424 = {"architectures": ["OlmoForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
                "clip_qkv": 8.0, "eos_token_id": 50279, "hidden_act": "silu", "hidden_size": 4096,
                "initializer_range": 0.02, "intermediate_size": 11008, "max_position_embeddings": 4096,
                "model_type": "olmo", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32,
                "pad_token_id": 1, "rope_scaling": None, "rope_theta": 10000.0, "tie_word_embeddings": False,
                "torch_dtype": "bfloat16", "transformers_version": "4.41.1", "use_cache": True, "vocab_size": 50304}
OLMO_1B = {**OLMO_7B_0424, "clip_qkv": None, "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
           "num_attention_heads": 16, "num_key_value_heads": 16, "tie_word_embeddings": True,
           "max_position_embeddings": 2048}


def test_olmo_counts_no_norm_weights(tmp_path):
    assert 32 * (4 * 4096 ** 2 + 3 * 4096 * 11008) + 2 * 50304 * 4096 == 6_888_095_744 == params(tmp_path, OLMO_7B_0424)
    assert 16 * (4 * 2048 ** 2 + 3 * 2048 * 8192) + 50304 * 2048 == 1_176_764_416 == params(tmp_path, OLMO_1B)


def test_olmo_layernorm_without_a_scale_and_its_clip_note(tmp_path):
    cfg = load(tmp_path, OLMO_7B_0424)
    assert any("clip_qkv 8.0" in n for n in cfg.notes)
    g = layer_graph(cfg, Phase.decode(3, 9))
    norm = g.ops["input_layernorm"]
    # LayerNorm's 6 FLOPs an element less the scale's multiply, 4 a row (torch.nn.LayerNorm without affine)
    assert len(norm.inputs) == 1 and norm.flops == 5 * 3 * 4096 + 4 * 3


# -- EXAONE-3.x -----------------------------------------------------------------------------------------------------

# LGAI-EXAONE/EXAONE-3.5-32B-Instruct (huihui-ai/EXAONE-3.5-32B-Instruct-abliterated's re-save)
EXAONE_32B = {"activation_function": "silu", "architectures": ["ExaoneForCausalLM"], "attention_dropout": 0.0,
              "auto_map": {"AutoConfig": "configuration_exaone.ExaoneConfig"}, "bos_token_id": 1, "embed_dropout": 0.0,
              "eos_token_id": 361, "head_dim": 128, "hidden_size": 5120, "initializer_range": 0.02,
              "intermediate_size": 27392, "layer_norm_epsilon": 1e-05, "max_position_embeddings": 32768,
              "model_type": "exaone", "num_attention_heads": 40, "num_key_value_heads": 8, "num_layers": 64,
              "pad_token_id": 0, "rope_scaling": {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                                  "original_max_position_embeddings": 8192, "rope_type": "llama3"},
              "rope_theta": 1000000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
              "transformers_version": "4.43.0", "use_cache": True, "vocab_size": 102400}
EXAONE = {  # (hidden, layers, heads, head_dim, MLP, tied); the model cards' counts without embeddings
    "32b": ((5120, 64, 40, 128, 27392, False), 30.95),
    "7.8b": ((4096, 32, 32, 128, 14336, False), 6.98),
    "2.4b": ((2560, 30, 32, 80, 7168, True), 2.14),
}


@pytest.mark.parametrize("size", EXAONE)
def test_exaone_counts(tmp_path, size):
    (d, layers, heads, hd, ffn, tied), published = EXAONE[size]
    body = layers * (2 * d + 2 * d * heads * hd + 2 * d * 8 * hd + 3 * d * ffn) + d  # RMSNorm scales
    assert round(body / 1e9, 2) == published
    total = body + (1 if tied else 2) * 102400 * d
    assert params(tmp_path, EXAONE_32B, hidden_size=d, num_layers=layers, num_attention_heads=heads, head_dim=hd,
                  intermediate_size=ffn, tie_word_embeddings=tied) == total


# -- GPT-Neo and CodeGen ----------------------------------------------------------------------------------------------

# EleutherAI/gpt-neo-1.3B's config.json and Salesforce/codegen-350M-mono's (their Hugging Face pages)
GPT_NEO_13B = {"activation_function": "gelu_new", "architectures": ["GPTNeoForCausalLM"], "attention_dropout": 0,
               "attention_layers": ["global", "local"] * 12, "attention_types": [[["global", "local"], 12]],
               "bos_token_id": 50256, "embed_dropout": 0, "eos_token_id": 50256, "gradient_checkpointing": False,
               "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": None, "layer_norm_epsilon": 1e-05,
               "max_position_embeddings": 2048, "model_type": "gpt_neo", "num_heads": 16, "num_layers": 24,
               "resid_dropout": 0, "summary_activation": None, "summary_first_dropout": 0.1,
               "summary_proj_to_labels": True, "summary_type": "cls_index", "summary_use_proj": True,
               "tokenizer_class": "GPT2Tokenizer", "transformers_version": "4.9.0.dev0", "use_cache": True,
               "vocab_size": 50257, "window_size": 256}
CODEGEN_350M = {"_name_or_path": "codegen-350M-mono", "activation_function": "gelu_new",
                "architectures": ["CodeGenForCausalLM"], "attn_pdrop": 0.0, "bos_token_id": 1, "embd_pdrop": 0.0,
                "eos_token_id": 2, "gradient_checkpointing": False, "initializer_range": 0.02,
                "layer_norm_epsilon": 1e-05, "model_type": "codegen", "n_ctx": 2048, "n_embd": 1024, "n_head": 16,
                "n_inner": None, "n_layer": 20, "n_positions": 2048, "resid_pdrop": 0.0, "rotary_dim": 32,
                "scale_attn_weights": True, "summary_activation": None, "summary_first_dropout": 0.1,
                "summary_proj_to_labels": True, "summary_type": "cls_index", "summary_use_proj": True,
                "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50, "temperature": 1.0}},
                "tie_word_embeddings": False, "tokenizer_class": "GPT2Tokenizer", "torch_dtype": "float16",
                "transformers_version": "4.21.0.dev0", "use_cache": True, "vocab_size": 51200}


def test_gpt_neo_count_and_local_layers(tmp_path):
    d = 2048  # q, k, v unbiased, out_proj biased; a biased 4 x hidden MLP; two LayerNorms; learned positions, tied
    layer = 3 * d * d + linear(d, d) + linear(d, 4 * d) + linear(4 * d, d) + 2 * ln(d)
    assert params(tmp_path, GPT_NEO_13B) == 24 * layer + ln(d) + 50257 * d + 2048 * d == 1_315_575_808
    cfg = load(tmp_path, GPT_NEO_13B)
    assert [cfg.layers.at(i).parts()[0].keys.kind for i in range(2)] == ["full", "sliding"]
    assert cfg.layers.at(1).parts()[0].keys.size == 256


def test_gpt_neo_attention_layers_must_agree(tmp_path):
    with pytest.raises(OpgraphError, match="attention_layers"):
        load(tmp_path, GPT_NEO_13B, attention_layers=["global"] * 24)
    with pytest.raises(OpgraphError, match="attention_types"):
        load(tmp_path, GPT_NEO_13B, attention_types=[[["global", "local"], 11]], attention_layers=None)


def test_codegen_is_gptj_block(tmp_path):
    d = 1024  # one unbiased qkv_proj and out_proj, a biased 4 x hidden MLP, one LayerNorm; lm_head biased, untied
    layer = 4 * d * d + linear(d, 4 * d) + linear(4 * d, d) + ln(d)
    assert params(tmp_path, CODEGEN_350M) == 20 * layer + ln(d) + 2 * 51200 * d + 51200 == 356_712_448  # "350M"
