"""NVIDIA's Llama-Nemotron Super and Ultra (model_type nemotron-nas). Expected values by hand from the presets' files
(NVIDIA NeMo's copies of the checkpoints' config.json) and the modules modeling_decilm.py and vLLM's nemotron_nas.py
build: each layer's attention (num_attention_heads / n_heads_in_group KV heads, head_dim hidden / heads) or none,
and its SwiGLU of int(2 x ffn_mult x hidden / 3) rounded up to a multiple of 256, or none."""

import json

import pytest

from opgraph import OpgraphError, Phase, models
from opgraph.analysis.memory import kv_cache_bytes

SUPER = json.loads((models.presets.CONFIG_DIR / "llama-3.3-nemotron-super-49b.json").read_text())
ULTRA = json.loads((models.presets.CONFIG_DIR / "llama-3.1-nemotron-ultra-253b.json").read_text())


def by_hand(config: dict) -> tuple[int, int, int]:
    """Parameters, attention layers and identity layers, from the block list."""
    d, heads, vocab = config["hidden_size"], config["num_attention_heads"], config["vocab_size"]
    hd = d // heads
    total, attention, identity = 2 * vocab * d + d, 0, 0
    for block in config["block_configs"]:
        att, ffn = block["attention"], block["ffn"]
        if not att["no_op"]:
            kv = heads // att["n_heads_in_group"]
            total += 2 * d * heads * hd + 2 * d * kv * hd + d  # q, o; k, v; input_layernorm
            attention += 1
        if not ffn["no_op"]:
            width = int(2 * ffn["ffn_mult"] * d / 3)
            width += -width % 256
            total += 3 * d * width + d
        identity += att["no_op"] and ffn["no_op"]
    return total, attention, identity


@pytest.mark.parametrize("name, config, published, attention, identity", [
    ("llama-3.3-nemotron-super-49b", SUPER, 49, 49, 0),
    ("llama-3.1-nemotron-ultra-253b", ULTRA, 253, 64, 81),
])
def test_parameters_by_hand(name, config, published, attention, identity):
    total, n_attention, n_identity = by_hand(config)
    assert (total // 10**9, n_attention, n_identity) == (published, attention, identity)
    cfg = models.get(name)
    assert cfg.build(Phase.decode(1, 1)).params() == total
    assert cfg.n_layers == config["num_hidden_layers"] - identity
    assert any(f"{identity} of the" in n for n in cfg.notes) == bool(identity)


def test_super_caches_keys_in_its_attention_layers_only():
    cfg = models.get("llama-3.3-nemotron-super-49b")
    cache = sum(b.count * kv_cache_bytes(b.graph) for b in cfg.build(Phase.decode(1, 999)).blocks)
    assert cache == 49 * 1000 * 2 * 8 * 128 * 2  # 8 KV heads of 128, K and V, bf16, in 49 layers


def test_the_ffn_widths_are_the_reference_formula():
    cfg = models.get("llama-3.3-nemotron-super-49b")
    widths = {p.d_ffn for layer, _ in cfg.layer_kinds().items() for p in layer.parts() if hasattr(p, "d_ffn")}
    # ffn_mult 0.5, 1.0, 1.3125, 2.625, 3.28125, 5.25 of 8,192: 2,730.7 -> 2,816, 5,461.3 -> 5,632, 7,168, 14,336,
    # 17,920, 28,672
    assert widths == {2816, 5632, 7168, 14336, 17920, 28672}


def load(tmp_path, config):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return models.get(str(path))


def with_block(block: dict, i: int = 1) -> dict:
    blocks = [dict(b) for b in SUPER["block_configs"]]
    blocks[i] = block
    return {**SUPER, "block_configs": blocks}


@pytest.mark.parametrize("block, field", [
    ({"attention": {"no_op": False, "replace_with_linear": True}, "ffn": {"ffn_mult": 1.0}}, "replace_with_linear"),
    ({"attention": {"no_op": True}, "ffn": {"replace_with_linear": True}}, "replace_with_linear"),
    ({"attention": {"n_heads_in_group": 8, "window_length": 64, "num_sink_tokens": 4}, "ffn": {"ffn_mult": 1.0}},
     "num_sink_tokens"),
    ({"attention": {"n_heads_in_group": 3}, "ffn": {"ffn_mult": 1.0}}, "n_heads_in_group"),
])
def test_bad_blocks_are_refused_by_name(tmp_path, block, field):
    with pytest.raises(OpgraphError, match=f"block_configs\\[1\\].*{field}"):
        load(tmp_path, with_block(block))


def test_a_window_and_unknown_block_keys_are_noted(tmp_path):
    cfg = load(tmp_path, with_block({"attention": {"n_heads_in_group": 8, "window_length": 64, "spare": 1},
                                     "ffn": {"ffn_mult": 1.0}}))
    assert any("window_length" in n for n in cfg.notes)
    assert any("block_configs[1].attention: spare" in n for n in cfg.notes)
    with pytest.raises(OpgraphError, match="'block_configs'"):
        load(tmp_path, {**SUPER, "block_configs": SUPER["block_configs"][:3]})


@pytest.mark.parametrize("kind, says", [("attention", "no layer attention"), ("ffn", "no layer an ffn")])
def test_a_stack_without_attention_or_ffn_is_refused_by_name(tmp_path, kind, says):
    blocks = [{**b, kind: {"no_op": True}} for b in SUPER["block_configs"]]
    with pytest.raises(OpgraphError, match=f"'block_configs' gives {says}"):
        load(tmp_path, {**SUPER, "block_configs": blocks})
