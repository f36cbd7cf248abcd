"""MiniMax-M3 (model_type minimax_m3_vl, its text_config). Expected values by hand from the checkpoint's tensor list
(SOURCES.json) and the engines' code (vLLM's vllm/models/minimax_m3, SGLang's minimax_m3.py): 60 layers of GQA (64
query heads over 4 KV heads of 128, per-head q and k norms, rope on 64 dims); layers 0-2 full attention and a dense
MLP of 12,288, layers 3-59 attention over the 16 blocks of 128 keys an indexer (4 heads of 128, one 128-wide key)
picks for each KV head, and MoE of 128 experts of 3,072, top-4, one shared expert, the router in fp32."""

import json

import pytest

from opgraph import FP32, OpgraphError, Phase, models
from opgraph.analysis.memory import kv_cache_bytes
from opgraph.models import BuildOptions, hf_config, presets

CONFIG = json.loads((presets.CONFIG_DIR / "minimax-m3.json").read_text())
D, VOCAB, HEADS, KV, HD, IH, BLOCK, TOP = 6144, 200064, 64, 4, 128, 4, 128, 16
E, DE, DENSE = 128, 3072, 12288


def test_parameters_and_bytes_by_hand():
    attention = D * HEADS * HD + 2 * D * KV * HD + HEADS * HD * D + 2 * HD  # q, k, v, o, q_norm, k_norm
    indexer = D * IH * HD + D * HD + 2 * HD  # index_q_proj, index_k_proj, their norms
    router = E * D + E  # fp32, with its selection bias
    moe = E * 3 * D * DE + 3 * D * DE + router
    total = 2 * VOCAB * D + D + 60 * attention + 57 * indexer + 3 * 3 * D * DENSE + 57 * moe + 60 * 2 * D
    assert total == 426_174_572_928  # the checkpoint's 427,040,140,160 less its vision tower's 865,567,232
    model = models.get("minimax-m3").build(Phase.decode(1, 1))
    assert model.params() == total
    assert model.weight_bytes() == 2 * total + 2 * 57 * router


def blocks(phase, **options):
    model = models.get("minimax-m3").build(phase, BuildOptions(**options))
    return {b.name: (b.count, b.graph) for b in model.blocks}


def test_the_layers_are_placed_as_the_config_lists_them():
    counts = {n: c for n, (c, _) in blocks(Phase.decode(1, 10)).items()}
    assert counts == {"dense_full_layer": 3, "moe_sparse_layer": 57, "embed_head": 1}
    _, g = blocks(Phase.decode(1, 10))["moe_sparse_layer"]
    assert g.tensors["block_sparse_moe.gate.weight"].dtype == FP32


def seen(p):
    """The keys the query at position p attends to: all before it in the first 16 blocks, else 15 whole blocks and
    its own block up to it."""
    return p + 1 if p < TOP * BLOCK else (TOP - 1) * BLOCK + p % BLOCK + 1


@pytest.mark.parametrize("phase", [Phase.decode(2, 1000), Phase.decode(2, 5000), Phase.prefill(1, 3000),
                                   Phase("prefill", 1, 700, 4000)], ids=str)
def test_attention_counts_each_querys_selected_blocks(phase):
    _, g = blocks(phase)["moe_sparse_layer"]
    pairs = phase.batch * sum(seen(p) for p in range(phase.past, phase.past + phase.new_tokens))
    assert g.ops["qk"].flops == g.ops["av"].flops == 2 * HEADS * HD * pairs
    scored = phase.batch * sum(-(-(p + 1) // BLOCK) * BLOCK for p in range(phase.past, phase.past + phase.new_tokens))
    assert g.ops["block_scores"].flops == IH * scored * (2 * HD + 1)  # a dot product and a max per key and head
    # the full layers, as any full attention: the whole score matrix, or with causal skipping its unmasked part
    # (the sparse layers' kernels are index-based, causal either way)
    for causal in (False, True):
        _, dense = blocks(phase, causal_skip=causal)["dense_full_layer"]
        full = phase.batch * sum(p + 1 if causal else phase.past + phase.new_tokens
                                 for p in range(phase.past, phase.past + phase.new_tokens))
        assert dense.ops["qk"].flops == 2 * HEADS * HD * full


def test_the_cache_holds_k_v_and_the_index_key():
    _, g = blocks(Phase.decode(1, 999))["moe_sparse_layer"]
    assert kv_cache_bytes(g) == 1000 * (2 * KV * HD * 2 + HD * 2)
    _, dense = blocks(Phase.decode(1, 999))["dense_full_layer"]
    assert kv_cache_bytes(dense) == 1000 * 2 * KV * HD * 2


def test_tensor_parallel_splits_the_heads_and_keeps_the_index_key_whole():
    _, g = blocks(Phase.decode(1, 10), tp=8)["moe_sparse_layer"]
    assert g.tensors["self_attn.q_proj.weight"].shape == (8 * HD, D)
    assert g.tensors["self_attn.k_proj.weight"].shape == (HD, D)  # 4 KV heads over 8 GPUs: one each, replicated
    assert g.tensors["self_attn.index_q_proj.weight"].shape == (HD, D)  # one index head with its KV head
    assert g.tensors["self_attn.index_k_proj.weight"].shape == (HD, D)


@pytest.mark.parametrize("change, message", [
    ({"qk_norm_type": "per_layer"}, "qk_norm_type"),
    ({"hidden_act": "silu"}, "hidden_act"),
    ({"sparse_attention_config": {**CONFIG["text_config"]["sparse_attention_config"], "sparse_score_type": "mean"}},
     "sparse_score_type"),
    ({"sparse_attention_config": {**CONFIG["text_config"]["sparse_attention_config"],
                                  "sparse_disable_index_value": [0] * 60}}, "sparse_disable_index_value"),
])
def test_bad_fields_are_refused_by_name(change, message):
    data = {**CONFIG, "text_config": {**CONFIG["text_config"], **change}}
    with pytest.raises(OpgraphError, match=message):
        hf_config.from_dict(data, name="x", source="test")


def test_the_mxfp8_release_is_stored_as_its_checkpoint():
    # MiniMax-M3-MXFP8: e4m3 and a ue8m0 byte per 32 values of every linear but lm_head, the embeddings and the routers
    # (fp32); its checkpoint holds 423,670,579,200 quantized values and 13,239,705,600 scales, all in the language model
    ignored = ["lm_head", "model.embed_tokens", "vision_tower", "multi_modal_projector", "patch_merge_mlp",
               *(f"language_model.model.layers.{i}.block_sparse_moe.gate" for i in range(3, 60))]
    data = {**CONFIG, "quantization_config": {"quant_method": "mxfp8", "activation_scheme": "dynamic",
                                              "weight_block_size": [1, 32], "ignored_layers": ignored}}
    model = hf_config.from_dict(data, name="mxfp8", source="test").build(Phase.decode(1, 1))
    quantized, scales = 423_670_579_200, 13_239_705_600
    assert quantized // 32 == scales
    tables, norms, routers = 2 * VOCAB * D, 60 * 2 * D + D + 60 * 2 * HD + 57 * 2 * HD, 57 * (E * D + E)
    assert model.params() == quantized + tables + norms + routers
    assert model.weight_bytes() == quantized + scales + 2 * (tables + norms) + 4 * routers
    with pytest.raises(OpgraphError, match="weight_block_size"):
        hf_config.from_dict({**data, "quantization_config": {**data["quantization_config"],
                                                             "weight_block_size": [128, 128]}}, name="x", source="t")
