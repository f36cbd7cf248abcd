"""Zyphra's Zamba2 (zamba2) as vLLM 0.11's zamba2.py builds it: every layer a Mamba-2 mixer; the hybrid layers first
run one of num_mem_blocks shared transformer blocks (taken in turn) on [hidden, original embeddings], with LoRA
adapters and a linear of their own, added to the mixer's input. The shared blocks' weights count once and are read at
every run. The configs are Zamba2-2.7B-instruct's (its transformers-format config.json as its Hugging Face page shows
it, the tail not shown there as Zyphra's code config gives it) and Zamba2-1.2B's shape (its first config.json:
6 hybrid layers, one shared block, attention adapters, d_state 128). Each count is by hand from the shapes; each
matches its checkpoint's bf16 file sizes on Hugging Face."""

import pytest
from config_files import layer_graph, load, params

from opgraph import OpgraphError, Phase
from opgraph.core.model import BuildOptions
from opgraph.core.tensor import Role

HYBRID_27B = [6, 12, 18, 24, 30, 36, 42, 47, 51]
ZAMBA2_27B = {"architectures": ["Zamba2ForCausalLM"], "adapter_rank": 128, "add_bias_linear": False,
              "attention_dropout": 0.0, "attention_head_dim": 160, "attention_hidden_size": 5120, "bos_token_id": 1,
              "chunk_size": 256, "eos_token_id": 2, "ffn_hidden_size": 10240, "hidden_act": "gelu",
              "hidden_size": 2560, "hybrid_layer_ids": HYBRID_27B, "initializer_range": 0.02,
              "intermediate_size": 10240, "kv_channels": 80,
              "layers_block_type": ["hybrid" if i in HYBRID_27B else "mamba" for i in range(54)],
              "mamba_d_conv": 4, "mamba_d_state": 64, "mamba_expand": 2, "mamba_headdim": 64, "mamba_ngroups": 1,
              "max_position_embeddings": 4096, "model_type": "zamba2", "n_mamba_heads": 80,
              "num_attention_heads": 32, "num_hidden_layers": 54, "num_key_value_heads": 32, "num_mem_blocks": 2,
              "rms_norm_eps": 1e-05, "rope_theta": 10000, "use_conv_bias": True, "use_mem_rope": True,
              "use_shared_attention_adapter": False, "torch_dtype": "bfloat16", "vocab_size": 32000}
HYBRID_12B = [5, 11, 17, 23, 29, 35]
ZAMBA2_12B = {**ZAMBA2_27B, "hidden_size": 2048, "num_hidden_layers": 38, "intermediate_size": 8192,
              "layers_block_type": ["hybrid" if i in HYBRID_12B else "mamba" for i in range(38)],
              "hybrid_layer_ids": HYBRID_12B, "n_mamba_heads": 64, "mamba_d_state": 128, "num_mem_blocks": 1,
              "use_shared_attention_adapter": True, "attention_head_dim": 128, "attention_hidden_size": 4096,
              "ffn_hidden_size": 8192, "kv_channels": 64}


def by_hand(h, layers, hybrid, blocks, n, ffn, heads_ssm, attention_adapters, vocab=32000, r=128, k=4):
    inner = 2 * h
    conv = inner + 2 * n  # x, B and C (one group)
    mamba = h * (2 * inner + 2 * n + heads_ssm) + conv * k + conv + 3 * heads_ssm + inner + h + inner * h
    block = 2 * h + 3 * (2 * h) ** 2 + (2 * h) * h + h + 2 * ffn * h + ffn * h  # norms, q k v, o, gate_up, down
    run = r * h + 2 * ffn * r + h * h + (3 * (r * 2 * h + 2 * h * r) if attention_adapters else 0)
    return layers * mamba + blocks * block + hybrid * run + vocab * h + h  # tied


def test_zamba2_counts(tmp_path):
    total = by_hand(2560, 54, 9, 2, 64, 10240, 80, False)
    assert params(tmp_path, ZAMBA2_27B) == total == 2_662_214_560
    assert round(2 * total / 1e9, 3) == 5.324  # Zamba2-2.7B-instruct's shards, 4.94 GB + 384 MB
    total = by_hand(2048, 38, 6, 1, 128, 8192, 64, True)
    assert params(tmp_path, ZAMBA2_12B) == total == 1_215_064_704
    assert round(2 * total / 1e9, 2) == 2.43  # Zamba2-1.2B's model.safetensors


def test_zamba2_shared_block_read_at_every_run_held_once(tmp_path):
    cfg = load(tmp_path, ZAMBA2_27B)
    model = cfg.build(Phase.decode(8, 1024))
    runs = {b.name: b for b in model.blocks if "hybrid" in b.name}
    assert sum(b.count for b in runs.values()) == 9
    first, later = (next(b for n, b in runs.items() if ("shared" in n) == s) for s in (False, True))
    shared = [t for t in later.graph.weights() if t.borrowed]
    assert {t.name for t in shared} == {t.name for t in first.graph.weights() if t.name.startswith("block")
                                        and "adapter" not in t.name and not t.name.endswith("linear.weight")}
    read = {t.name for op in later.graph.ops.values() for t in op.inputs if t.borrowed}
    assert read == {t.name for t in shared}  # every shared weight is read at this run too
    assert later.graph.params() == first.graph.params() - sum(t.numel for t in shared)


def test_zamba2_caches_k_and_v_at_every_hybrid_run(tmp_path):
    g = layer_graph(load(tmp_path, ZAMBA2_27B), Phase.decode(2, 512))
    mamba_only = sum(t.numel for op in g.ops.values() for t in op.outputs if t.role is Role.KV_CACHE)
    assert mamba_only == 0  # the first block is a Mamba layer: its state, no KV cache
    hybrid = next(b for b in load(tmp_path, ZAMBA2_27B).build(Phase.decode(2, 512)).blocks if "hybrid" in b.name)
    written = sum(t.numel for op in hybrid.graph.ops.values() for t in op.outputs if t.role is Role.KV_CACHE)
    assert written == 2 * 2 * 2 * 2560  # K and V of 32 heads x 160 (2 x hidden) for each of 2 sequences


@pytest.mark.parametrize("change, field", [
    ({"layers_block_type": ["m"] * 54}, "layers_block_type"),  # Zyphra's first format: neither engine builds it
    ({"hybrid_layer_ids": [6, 12]}, "hybrid_layer_ids"),
    ({"attention_head_dim": 80}, "attention_head_dim"),
    ({"hidden_act": "silu"}, "hidden_act"),
])
def test_zamba2_refuses(tmp_path, change, field):
    with pytest.raises(OpgraphError, match=field):
        load(tmp_path, ZAMBA2_27B, **change)


def test_zamba2_notes_what_vllm_builds_otherwise(tmp_path):
    notes = load(tmp_path, ZAMBA2_27B, num_key_value_heads=8, tie_word_embeddings=False).notes
    assert any("num_key_value_heads (8)" in n for n in notes) and any("ties lm_head" in n for n in notes)


def test_zamba2_pipeline_stages_each_load_the_blocks_they_run(tmp_path):
    cfg = load(tmp_path, ZAMBA2_27B)
    whole = cfg.build(Phase.decode(4, 256))
    model = cfg.build(Phase.decode(4, 256), BuildOptions(pp=2))
    held = [model.stage_weights(st)[1] for st in model.stages]
    blocks = 2 * (2 * 2560 + 3 * 5120 ** 2 + 5120 * 2560 + 2560 + 3 * 10240 * 2560)
    # layers 0-26 hold both blocks (their first runs are layers 6 and 12); layers 27-53 run them too, so load a copy;
    # the tied table is on the first stage (the embedding) and the last (lm_head)
    assert sum(held) == whole.params() + blocks + 32000 * 2560
