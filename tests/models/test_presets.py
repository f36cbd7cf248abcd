"""Acceptance tests: every model preset's parameter count against the published checkpoint total and
against the Llama architecture formula written out here; LlamaConfig validation."""

import attrs
import pytest

from opgraph import hardware
from opgraph import models
from opgraph.models import LlamaConfig
from opgraph import OpgraphError, Phase, analyze, strategy

# Published totals: the parameter count of each Hugging Face checkpoint (sum of its safetensors tensors).
PUBLISHED = {
    "llama-2-7b": 6_738_415_616,
    "llama-3-8b": 8_030_261_248,
    "llama-3-70b": 70_553_706_496,
    "llama-3.1-405b": 405_853_388_800,
}

# Architecture from each checkpoint's config.json:
# (hidden_size, num_attention_heads, num_key_value_heads, intermediate_size, num_hidden_layers, vocab_size)
CONFIG_JSON = {
    "llama-2-7b": (4096, 32, 32, 11008, 32, 32000),
    "llama-3-8b": (4096, 32, 8, 14336, 32, 128256),
    "llama-3-70b": (8192, 64, 8, 28672, 80, 128256),
    "llama-3.1-405b": (16384, 128, 8, 53248, 126, 128256),
}


def formula_params(d, heads, kv_heads, ffn, layers, vocab, tied=False):
    """embeddings + layers * (q, k, v, o + gate, up, down + 2 RMSNorm scales) + final norm + lm_head."""
    hd = d // heads
    attention = d * heads * hd + 2 * d * kv_heads * hd + heads * hd * d
    mlp = 3 * d * ffn
    norms = 2 * d
    lm_head = 0 if tied else vocab * d
    return vocab * d + layers * (attention + mlp + norms) + d + lm_head


PHASES = [Phase.prefill(1, 8), Phase.decode(2, 16)]


def test_every_llama_preset_is_shipped():
    # The Llama presets are checked here; tests/test_zoo_presets.py checks that every shipped preset
    # (these and the rest of the zoo) has a published total, and each one's count against it.
    assert set(PUBLISHED) <= set(models.names())


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_formula_reproduces_published_total(name):
    # The hand formula on the config.json dimensions gives the checkpoint's published count exactly.
    assert formula_params(*CONFIG_JSON[name]) == PUBLISHED[name]


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_preset_dimensions_match_config_json(name):
    # The preset copies its checkpoint's config.json, with head_dim = d_model / n_heads and untied embeddings.
    cfg = models.get(name)
    d, heads, kv, ffn, layers, vocab = CONFIG_JSON[name]
    assert (cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.d_ffn, cfg.n_layers, cfg.vocab_size) == CONFIG_JSON[name]
    assert cfg.head_dim == d // heads
    assert cfg.tie_embeddings is False


@pytest.mark.parametrize("phase", PHASES, ids=lambda p: p.name)
@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_preset_params_exact(name, phase):
    # Model.params() and PhaseCost.params equal the published total in both phases, as does the formula.
    model = models.get(name).build(phase)
    res = analyze(model, strategy("fused"), hardware.load("h100-sxm"))
    assert model.params() == PUBLISHED[name] == formula_params(*CONFIG_JSON[name])
    assert res.params == PUBLISHED[name]
    assert res.weight_bytes == 2 * PUBLISHED[name]  # bf16


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_tied_embeddings_drop_one_table(name):
    # Tying the lm_head to the embedding table removes exactly vocab * d parameters (counted once).
    cfg = models.get(name)
    tied = attrs.evolve(cfg, tie_embeddings=True)
    for phase in PHASES:
        expected = PUBLISHED[name] - cfg.vocab_size * cfg.d_model
        assert tied.build(phase).params() == expected == formula_params(*CONFIG_JSON[name], tied=True)


def test_unknown_preset_lists_valid_names():
    # A misspelt model name is a user error that says which names exist.
    with pytest.raises(OpgraphError) as e:
        models.get("llama-3-9b")
    for n in PUBLISHED:
        assert n in str(e.value)


BASE = dict(d_model=64, n_heads=8, n_kv_heads=2, d_ffn=128, n_layers=2, vocab_size=100)


@pytest.mark.parametrize("kv", [3, 5, 7, 16])
def test_rejects_kv_heads_that_do_not_divide_heads(kv):
    # GQA needs every KV head to serve a whole group of query heads.
    with pytest.raises(OpgraphError, match=rf"n_kv_heads \({kv}\).*n_heads \(8\)"):
        LlamaConfig("bad", **{**BASE, "n_kv_heads": kv})


def test_accepts_kv_heads_that_divide_heads():
    # Control for the rejection test: MHA, GQA and MQA groupings are all valid.
    for kv in (1, 2, 4, 8):
        assert LlamaConfig("ok", **{**BASE, "n_kv_heads": kv}).n_kv_heads == kv


@pytest.mark.parametrize("field", ["d_model", "n_heads", "n_kv_heads", "d_ffn", "n_layers", "vocab_size"])
@pytest.mark.parametrize("value", [0, -1])
def test_rejects_non_positive_sizes(field, value):
    # A zero or negative size is refused with a message naming the parameter.
    with pytest.raises(OpgraphError, match=field):
        LlamaConfig("bad", **{**BASE, field: value})


@pytest.mark.parametrize("value", [0, -8])
def test_rejects_non_positive_head_dim(value):
    # An explicit head_dim must be positive too.
    with pytest.raises(OpgraphError, match="head_dim"):
        LlamaConfig("bad", **BASE, head_dim=value)
