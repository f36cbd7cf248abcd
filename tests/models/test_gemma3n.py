"""Google's Gemma-3n E2B and E4B (gemma3n, its text_config gemma3n_text): AltUp's four residual streams, LAuReL,
the Gaussian top-k of the first layers' MLP gates, per-layer inputs and the last layers' shared K and V, checked by
hand against transformers' modeling_gemma3n.py and vLLM's gemma3n.py. The configs are the fields transformers'
convert_gemma3n_weights.py writes for the two (E4B: Gemma3nTextConfig's defaults; E2B: 30 layers, an MLP of 8,192,
10 shared layers), as the mlx-community copies of the published files give them."""

import pytest
from config_files import layer_graph, load, params

from opgraph import OpgraphError, Phase
from opgraph.core.model import BuildOptions
from opgraph.core.tensor import Role

TYPES = ["sliding_attention"] * 4 + ["full_attention"]
E4B_TEXT = {"activation_sparsity_pattern": [0.95] * 10 + [0.0] * 25, "altup_active_idx": 0, "altup_coef_clip": 120.0,
            "altup_correct_scale": True, "altup_lr_multiplier": 1.0, "altup_num_inputs": 4, "attention_bias": False,
            "attention_dropout": 0.0, "final_logit_softcapping": 30.0, "head_dim": 256,
            "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 2048, "hidden_size_per_layer_input": 256,
            "initializer_range": 0.02, "intermediate_size": 16384, "laurel_rank": 64, "layer_types": TYPES * 7,
            "max_position_embeddings": 32768, "model_type": "gemma3n_text", "num_attention_heads": 8,
            "num_hidden_layers": 35, "num_key_value_heads": 2, "num_kv_shared_layers": 15,
            "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06, "rope_local_base_freq": 10000.0,
            "rope_scaling": None, "rope_theta": 1000000.0, "sliding_window": 512, "torch_dtype": "bfloat16",
            "use_cache": True, "vocab_size": 262400, "vocab_size_per_layer_input": 262144}
E4B = {"architectures": ["Gemma3nForConditionalGeneration"], "audio_config": {"hidden_size": 1536,
                                                                              "model_type": "gemma3n_audio"},
       "eos_token_id": [1, 106], "model_type": "gemma3n", "text_config": E4B_TEXT, "torch_dtype": "bfloat16",
       "vision_config": {"model_type": "gemma3n_vision"}, "vision_soft_tokens_per_image": 256}
E2B = {**E4B, "text_config": {**E4B_TEXT, "num_hidden_layers": 30, "intermediate_size": 8192,
                              "num_kv_shared_layers": 10, "layer_types": TYPES * 6,
                              "activation_sparsity_pattern": [0.95] * 10 + [0.0] * 20}}
D, HEADS, KV, HD, PLE, STREAMS, RANK = 2048, 8, 2, 256, 256, 4, 64


def by_hand(layers: int, ffn: int) -> tuple[int, int]:
    """(the text model's parameters, the tables': embed_tokens, tied, and the per-layer embeddings)."""
    n = STREAMS
    layer = (D * HEADS * HD + 2 * D * KV * HD + HEADS * HD * D + 2 * HD  # q, k, v, o; q and k norms' scales
             + 3 * ffn * D + 4 * D  # the GeGLU; four norms
             + D + n * n + n * n * n + n * D + D  # correct_output_scale, correction and prediction coefs, router
             + 2 * RANK * D + D  # LAuReL and its norm
             + 2 * PLE * D + D)  # the per-layer input's gate and projection, and its norm
    tables = 262400 * D + 262144 * layers * PLE
    rest = layers * PLE * D + PLE + 2 * (n - 1) * D * D + D  # per_layer_model_projection, its norm; stream projections
    return layers * layer + tables + rest, tables


@pytest.mark.parametrize("config, layers, ffn, text, effective", [
    (E4B, 35, 16384, "6.87B", "3.98B"),  # Ollama's text-only count; Google's gemma3n slicing table's effective
    (E2B, 30, 8192, "4.46B", "1.91B"),
])
def test_counts_are_the_published_ones(tmp_path, config, layers, ffn, text, effective):
    total, tables = by_hand(layers, ffn)
    assert (f"{total / 1e9:.2f}B", f"{(total - tables) / 1e9:.2f}B") == (text, effective)
    assert params(tmp_path, config) == total
    cfg = load(tmp_path, config)
    assert any("the vision and audio towers of this gemma3n checkpoint are not" in n for n in cfg.notes)


def test_altup_streams_around_each_layer(tmp_path):
    cfg = load(tmp_path, E4B)
    assert cfg.hidden_shape(Phase.decode(3, 9), BuildOptions())[-1] == STREAMS * D
    g = layer_graph(cfg, Phase.decode(3, 9))
    ops, rows = g.ops, 3
    assert ops["altup_predict"].flops == rows * STREAMS * D * (2 * STREAMS + 1)  # a 4 x 4 mix and the add
    assert ops["altup_correct"].flops == rows * (D + STREAMS) + 2 * rows * STREAMS * D
    assert ops["ple_add"].flops == rows * (STREAMS - 1) * D  # the streams the layer did not compute
    assert ops["laurel.linear_left"].flops == 2 * rows * D * RANK
    # the first ten layers' gates: the Gaussian top-k (7 FLOPs an element, 6 a row) before the GeLU
    assert ops["gate_topk"].flops == 7 * rows * 16384 + 6 * rows
    head = cfg.embed_head(Phase.decode(3, 9))
    assert {f"altup_projections.{i}" for i in range(3)} <= set(head.ops)
    assert head.ops["altup_mean"].flops == STREAMS * rows * D


def test_the_last_layers_share_k_and_v_and_cache_none(tmp_path):
    cfg = load(tmp_path, E4B)
    kinds = cfg.layer_kinds()
    assert sum(c for k, c in kinds.items() if k.attention.kv_shared) == 15
    model = cfg.build(Phase.decode(1, 99))
    for block in model.blocks:
        if block.name == "embed_head":
            continue
        cached = [t for t in block.graph.tensors.values() if t.role == Role.KV_CACHE]
        shared = "kv_shared" in block.name
        assert bool(cached) != shared, block.name
        if shared:  # vLLM's fused qkv_proj still computes K and V there: the checkpoint has them
            assert "k_proj" in block.graph.ops and "shared_k" in block.graph.tensors


def test_three_all_reduces_a_layer_under_tensor_parallelism(tmp_path):
    g = layer_graph(load(tmp_path, E4B), Phase.decode(2, 9), tp=2)
    assert sorted(o.name for o in g.ops.values() if o.fn == "all_reduce") == ["down_allreduce", "laurel_allreduce",
                                                                               "o_allreduce"]
    # the router, coefficients and per-layer input projections are whole on every GPU
    assert g.ops["altup_predict_router"].inputs[1].shape == (STREAMS, D)
    assert g.ops["per_layer_input_gate"].inputs[1].shape == (PLE, D)


@pytest.mark.parametrize("change, says", [
    ({"num_kv_shared_layers": 35}, "'text_config.num_kv_shared_layers' is 35"),
    ({"activation_sparsity_pattern": [0.95] * 10}, "'text_config.activation_sparsity_pattern' must list"),
    ({"intermediate_size": [16384] * 34}, "'text_config.intermediate_size' must be one positive width"),
    ({"altup_active_idx": 4}, "'text_config.altup_active_idx' is 4"),
])
def test_bad_fields_are_refused_by_name(tmp_path, change, says):
    with pytest.raises(OpgraphError, match=says):
        load(tmp_path, {**E4B, "text_config": {**E4B_TEXT, **change}})


def test_per_layer_widths(tmp_path):
    widths = [16384] * 20 + [8192] * 15  # MatFormer's mix-and-match: a width a layer
    total = by_hand(35, 16384)[0] - 15 * 3 * (16384 - 8192) * D
    assert params(tmp_path, {**E4B, "text_config": {**E4B_TEXT, "intermediate_size": widths}}) == total
