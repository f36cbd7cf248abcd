"""Decoder families transformers 4.57 ships that are short compositions of opgraph's parts: Kyutai's Helium-1
(helium), Google's VaultGemma (vaultgemma: Gemma-2's attention without the norms after each branch), AllenAI's
FlexOlmo (flex_olmo: OLMo-2's post-norm layer with OLMoE's experts) and Ministral-8B as transformers' ministral
re-saves it. The configs: kyutai/helium-1-preview-2b's config.json (its refs/pr/2 blame page); VaultGemma-1B's shape
fields as keras-hub's converter test copies them, with every layer full attention as transformers' documentation
describes it; FlexOlmoConfig's defaults, which are FlexOlmo-7x7B's. Each count is by hand from the shapes
transformers' modeling_*.py builds."""

import pytest
from config_files import layer_graph, load, params

from opgraph import OpgraphError, Phase

HELIUM_2B = {"architectures": ["HeliumForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
             "bos_token_id": 1, "eos_token_id": 2, "head_dim": 128, "hidden_act": "silu", "hidden_size": 2560,
             "initializer_range": 0.02, "intermediate_size": 7040, "max_position_embeddings": 4096,
             "mlp_bias": False, "model_type": "helium", "num_attention_heads": 20, "num_hidden_layers": 24,
             "num_key_value_heads": 20, "pretraining_tp": 1, "rms_norm_eps": 1e-08, "rope_theta": 100000.0,
             "tie_word_embeddings": False, "torch_dtype": "bfloat16", "transformers_version": "4.45.0.dev0",
             "use_cache": True, "vocab_size": 48000}


def test_helium_count(tmp_path):
    d = 2560
    layer = 4 * d * d + 3 * d * 7040 + 2 * d
    total = 24 * layer + d + 2 * 48000 * d
    assert params(tmp_path, HELIUM_2B) == total
    assert round(2 * total / 1e9, 2) == 4.35  # its model.safetensors, bf16: "4.35 GB" on its files page


def test_helium_biases_q_k_v_but_never_o(tmp_path):
    g = layer_graph(load(tmp_path, HELIUM_2B, attention_bias=True), Phase.decode(1, 8))
    assert len(g.ops["q_proj"].inputs) == 3 and len(g.ops["o_proj"].inputs) == 2
    with pytest.raises(OpgraphError, match="head_dim"):
        load(tmp_path, HELIUM_2B, head_dim=64)


VAULTGEMMA_1B = {"model_type": "vaultgemma", "vocab_size": 256000, "num_hidden_layers": 26, "num_attention_heads": 4,
                 "num_key_value_heads": 4, "hidden_size": 1152, "intermediate_size": 6912, "head_dim": 256,
                 "query_pre_attn_scalar": 256, "sliding_window": 512, "layer_types": ["full_attention"] * 26}


def test_vaultgemma_count_has_no_norms_after_the_branches(tmp_path):
    d, q = 1152, 4 * 256
    layer = 4 * d * q + 3 * d * 6912 + 2 * d  # two norms a layer, not Gemma-2's four
    total = 26 * layer + d + 256000 * d  # tied
    assert params(tmp_path, VAULTGEMMA_1B) == total == 1_038_741_120  # VaultGemma "1B"
    g = layer_graph(load(tmp_path, VAULTGEMMA_1B), Phase.decode(1, 8))
    assert sum(op.fn == "rmsnorm" for op in g.ops.values()) == 2


def test_vaultgemma_alternates_windows_without_layer_types(tmp_path):
    cfg = load(tmp_path, {k: v for k, v in VAULTGEMMA_1B.items() if k != "layer_types"})
    sizes = [a.keys.size for a in cfg.layers.at(0).parts()[:1]] + [a.keys.size for a in cfg.layers.at(1).parts()[:1]]
    assert sizes[0] == 512 and sizes[1] != 512  # VaultGemmaConfig: even layers slide, odd ones attend to all


FLEXOLMO_7X7B = {"model_type": "flex_olmo", "vocab_size": 100352, "hidden_size": 4096, "intermediate_size": 11008,
                 "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": None,
                 "num_experts": 7, "num_experts_per_tok": 5, "norm_topk_prob": False, "tie_word_embeddings": False}


def test_flexolmo_count(tmp_path):
    d = 4096
    layer = 4 * d * d + 2 * d + 7 * 3 * d * 11008 + 7 * d + 2 * d  # q/k norms over the whole projections, router
    total = 32 * layer + d + 2 * 100352 * d
    assert params(tmp_path, FLEXOLMO_7X7B) == total and round(total / 1e9) == 33  # "33B total parameters"
    g = layer_graph(load(tmp_path, FLEXOLMO_7X7B), Phase.decode(1, 8))
    assert "post_attention_layernorm" in g.ops and "input_layernorm" not in g.ops  # OLMo-2's norms after


def test_ministral_windows_as_layer_types_say(tmp_path):
    config = {"model_type": "ministral", "hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 4,
              "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 131072,
              "sliding_window": 32768, "layer_types": ["full_attention", "sliding_attention"] * 2}
    cfg = load(tmp_path, config)
    assert [cfg.layers.at(i).parts()[0].keys.size for i in range(4)][1::2] == [32768, 32768]
    assert cfg.layers.at(0).parts()[0].keys.kind == "full"
