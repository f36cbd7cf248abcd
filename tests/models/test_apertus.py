"""Swiss AI's Apertus (transformers' apertus, vLLM's apertus.py), checked by hand against its published size and the
structure the reference code builds: q and k RMS-normed per head, a plain MLP down(xielu(up(x))) with no gate, and
xIELU's four learned scalars a layer. APERTUS_8B holds the fields of swiss-ai/Apertus-8B-Instruct-2509's
config.json (Apache-2.0) as a copy gives them."""

import json

import pytest

from opgraph import OpgraphError, Phase, models
from opgraph.core.ops import ELEMENTWISE_FLOPS_PER_ELEM

APERTUS_8B = {"architectures": ["ApertusForCausalLM"], "model_type": "apertus", "dtype": "bfloat16",
              "hidden_size": 4096, "intermediate_size": 21504, "num_hidden_layers": 32, "num_attention_heads": 32,
              "num_key_value_heads": 8, "max_position_embeddings": 65536, "rope_theta": 12000000,
              "rope_scaling": {"factor": 8, "high_freq_factor": 4, "low_freq_factor": 1,
                               "original_max_position_embeddings": 8192, "rope_type": "llama3", "type": "llama3"},
              "hidden_act": "xielu", "qk_norm": True, "post_norm": False, "attention_bias": False, "mlp_bias": False,
              "tie_word_embeddings": False, "rms_norm_eps": 1e-5, "vocab_size": 131072}


def load(tmp_path, **change):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**APERTUS_8B, **change}))
    return models.get(str(path))


def test_apertus_8b_by_hand(tmp_path):
    d, i, layers, v, hd = 4096, 21504, 32, 131072, 128
    attention = 2 * d * 32 * hd + 2 * d * 8 * hd + 2 * hd  # q, o; k, v; a per-head q and k scale
    layer = attention + 2 * d * i + 4 + 2 * d  # up and down, no gate; xIELU's alpha_p, alpha_n, beta, eps; 2 norms
    total = 2 * v * d + d + layers * layer  # untied
    assert round(total / 1e9) == 8  # "Apertus-8B"
    cfg = load(tmp_path)
    assert cfg.build(Phase.decode(1, 1)).params() == total
    (block, _), = [(b, b.count) for b in cfg.build(Phase.decode(4, 99)).blocks if b.count == layers]
    g = block.graph
    assert "gate_proj" not in g.ops and g.ops["act"].fn == "xielu"
    assert g.ops["act"].flops == ELEMENTWISE_FLOPS_PER_ELEM["xielu"] * 4 * i == 11 * 4 * i
    assert {"mlp.act_fn.alpha_p", "mlp.act_fn.beta"} <= set(g.tensors)
    assert {"attention_layernorm", "feedforward_layernorm", "q_norm", "k_norm"} <= set(g.ops)


@pytest.mark.parametrize("change, field", [
    ({"hidden_act": "silu"}, "hidden_act"),
    ({"qk_norm": False}, "qk_norm"),
    ({"post_norm": True}, "post_norm"),
])
def test_bad_fields_are_refused_by_name(tmp_path, change, field):
    with pytest.raises(OpgraphError, match=repr(field)):
        load(tmp_path, **change)
