"""OpenBMB's MiniCPM3-4B (minicpm3) as vLLM 0.11's minicpm3.py runs it: DeepSeek-V2's MLA weights inside MiniCPM's
muP-scaled layer, run as multi-head attention (minicpm3 is not one of vLLM's MLA model types): kv_b_proj decompresses
every token's latent into 40 heads of K (64 + the shared 32-dim rope key) and V (64, zero-padded to 96 with F.pad),
and the cache holds both, 2 x 40 x 96 values a token a layer, not the 256 + 32 of an MLA backend. The config holds
the fields transformers' MiniCPM3Config documents as MiniCPM3-4B's (configuration_minicpm3.py: "defaults match the
openbmb/MiniCPM3-4B checkpoint"); the count is by hand from the shapes vLLM builds."""

from config_files import layer_graph, load, params

from opgraph import Phase
from opgraph.core.model import BuildOptions
from opgraph.core.tensor import Role

MINICPM3_4B = {"architectures": ["MiniCPM3ForCausalLM"], "model_type": "minicpm3", "vocab_size": 73448,
               "hidden_size": 2560, "intermediate_size": 6400, "num_hidden_layers": 62, "num_attention_heads": 40,
               "num_key_value_heads": 40, "q_lora_rank": 768, "kv_lora_rank": 256, "qk_nope_head_dim": 64,
               "qk_rope_head_dim": 32, "max_position_embeddings": 32768, "rms_norm_eps": 1e-5,
               "initializer_range": 0.1, "hidden_act": "silu", "scale_emb": 12, "scale_depth": 1.4,
               "dim_model_base": 256, "tie_word_embeddings": True, "rope_theta": 10000.0, "torch_dtype": "bfloat16"}


def by_hand() -> int:
    d, heads, ffn = 2560, 40, 6400
    attention = (d * 768 + 768 + 768 * heads * 96  # q_a_proj, q_a_layernorm, q_b_proj
                 + d * (256 + 32) + 256 + 256 * heads * (64 + 64)  # kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj
                 + heads * 64 * d)  # o_proj
    layer = attention + 3 * d * ffn + 2 * d
    return 62 * layer + 73448 * d + d  # tied


def test_minicpm3_params(tmp_path):
    assert params(tmp_path, MINICPM3_4B) == by_hand() == 4_073_875_968
    # untied, it would hold a head of its own
    assert params(tmp_path, MINICPM3_4B, tie_word_embeddings=False) == 4_073_875_968 + 73448 * 2560


def test_minicpm3_caches_every_heads_k_and_padded_v(tmp_path):
    cfg = load(tmp_path, MINICPM3_4B)
    for phase in (Phase.prefill(2, 64), Phase.decode(2, 512)):
        g = layer_graph(cfg, phase)
        written = sum(t.numel for op in g.ops.values() for t in op.outputs if t.role is Role.KV_CACHE)
        assert written == phase.batch * phase.new_tokens * 2 * 40 * 96
    g = layer_graph(cfg, Phase.decode(2, 512))
    assert g.ops["qk"].flops == g.ops["av"].flops == 2 * 2 * 40 * 513 * 96  # over 96 dims a head, both products
    assert g.ops["attn_slice"].outputs[0].shape[-1] == 40 * 64  # cut back to v_head_dim for o_proj
    assert cfg.summary()["kv_cache_per_token"] == 7680


def test_minicpm3_splits_its_cache_with_the_heads(tmp_path):
    cfg = load(tmp_path, MINICPM3_4B)
    g = layer_graph(cfg, Phase.decode(1, 100), tp=2)
    assert g.ops["k_concat"].outputs[0].shape[-1] == 20 * 96
    assert g.ops["kv_a_proj_with_mqa"].flops == 2 * 2560 * (256 + 32)  # the latent whole on every GPU
    notes = cfg.phase_notes(Phase.decode(1, 100), BuildOptions(tp=2))
    assert any("every GPU computes the whole latent" in n for n in notes)
