"""No config.json field that changes FLOPs, bytes or cache is ignored: every family is fed every such field
(hf_config.COST_FIELDS) with a value that would change the cost, and either reads it (the load succeeds and
the family looked at it, or its value is refused naming it) or refuses the file naming it."""

import json

import pytest

from opgraph import OpgraphError
from opgraph.models import hf_config
from test_config_loader import TINY

# A value each field could hold in a real config, other than its no-op value.
VALUES = {"quantization_config": {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
                                  "weight_block_size": [128, 128]},
          "scoring_func": "sigmoid", "topk_method": "noaux_tc", "mamba_ssm_dtype": "float32",
          "use_qk_norm": True, "qk_layernorm": True, "attention_bias": True, "mlp_bias": True,
          "attn_output_gate": True, "norm_topk_prob": True, "no_rope_layers": [0], "mlp_only_layers": [0],
          "moe_layers": [0], "partial_rotary_factor": 0.5, "routed_scaling_factor": 2.5, "embedding_multiplier": 0.5,
          "num_key_value_heads": 1, "num_experts_per_tok": 1, "experts_per_token": 1}


# Fields that only mean something with another one beside them.
COMPANIONS = {"n_group": {"topk_group": 1}, "layer_types": {"sliding_window": 8}}


def value(key: str, data: dict):
    n = data.get("num_hidden_layers", data.get("n_layer", 2))
    if key == "layer_types":
        return ["sliding_attention"] * n
    if key == "hybrid_override_pattern":
        return "M" * n
    return VALUES.get(key, 2)


@pytest.mark.parametrize("key", sorted(hf_config.COST_FIELDS))
@pytest.mark.parametrize("model_type", sorted(TINY))
def test_every_family_reads_or_refuses_every_cost_field(monkeypatch, tmp_path, model_type, key):
    data = {**TINY[model_type], **COMPANIONS.get(key, {}), key: value(key, TINY[model_type])}
    seen: list = []
    check = hf_config.unread

    def recording(f, *args, **kwargs):
        if not f.path:  # the top-level fields (a wrapper's text_config is its own Fields)
            seen.append(set(f.read))
        return check(f, *args, **kwargs)

    monkeypatch.setattr(hf_config, "unread", recording)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    try:
        hf_config.load(path)
    except OpgraphError as e:  # refused, naming the field or the companion set with it
        assert any(repr(k) in str(e) for k in (key, *COMPANIONS.get(key, ()))), str(e)
        return
    assert seen and key in seen[0], f"{model_type} loaded {key}={data[key]!r} without reading it"
