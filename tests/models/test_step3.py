"""StepFun's Step-3 (step3_vl, its text_config step3_text; vLLM's step3_text.py, SGLang's step3_vl.py), checked by hand
against its published 316B language model and the structure the engines build: MFA attention (q through a rank of
2,048 and its RMSNorm, 64 heads over one KV head of 256), five dense layers and 56 MoE layers (48 experts top-3 and a
shared expert). STEP3_TEXT holds the text_config as the engines' config classes default it, with moe_layers_enum as
the technical report describes the layers (stepfun-ai/Step3, Apache-2.0; no copy of the config.json was reachable)."""

import json

import pytest

from opgraph import OpgraphError, Phase, models
from opgraph.analysis.memory import kv_cache_bytes
from opgraph.core.model import BuildOptions

STEP3_TEXT = {"model_type": "step3_text", "architectures": ["Step3TextForCausalLM"], "hidden_size": 7168, "intermediate_size": 18432, "num_attention_heads": 64, "num_attention_groups": 1, "num_hidden_layers": 61, "max_seq_len": 65536, "vocab_size": 128815, "rms_norm_eps": 1e-05, "moe_intermediate_size": 5120, "moe_num_experts": 48, "moe_top_k": 3, "rope_theta": 500000, "rope_scaling": None, "max_position_embedding": 65536, "share_expert_dim": 5120, "share_q_dim": 2048, "head_dim": 256, "norm_expert_weight": False, "moe_layers_enum": "4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59"}


def load(tmp_path, **change):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "step3_vl", "architectures": ["Step3VLForConditionalGeneration"],
                                "text_config": {**STEP3_TEXT, **change}, "vision_config": {"hidden_size": 1792}}))
    return models.get(str(path))


def test_step3_by_hand_is_the_published_316b_language_model(tmp_path):
    d, v, heads, hd, rank = 7168, 128815, 64, 256, 2048
    attention = d * rank + rank + rank * heads * hd + 2 * d * hd + heads * hd * d  # q_proj, inter_norm, wq; k, v; o
    dense = attention + 3 * d * 18432 + 2 * d
    moe = attention + 48 * d + 48 * 3 * d * 5120 + 3 * d * 5120 + 2 * d  # router, experts, the shared expert
    total = 2 * v * d + d + 5 * dense + 56 * moe  # untied
    active = total - 56 * 45 * 3 * d * 5120
    assert (round(total / 1e9), round(active / 1e9)) == (316, 39)  # "316B"; 38B active, counted without a table
    assert round((active - v * d) / 1e9) == 38
    cfg = load(tmp_path)
    assert cfg.build(Phase.decode(1, 1)).params() == total
    b = {x.name: (x.count, x.graph) for x in cfg.build(Phase.decode(2, 999)).blocks}
    assert {n: c for n, (c, _) in b.items()} == {"dense_layer": 5, "moe_layer": 56, "embed_head": 1}
    g = b["moe_layer"][1]
    assert kv_cache_bytes(g) == 2 * 1000 * 2 * 256 * 2  # one KV head of 256: 1 KiB a token a layer
    # under tensor parallelism q_proj runs whole on every GPU, wq splits with the heads
    g8 = cfg.build(Phase.decode(2, 999), BuildOptions(tp=8)).blocks[1].graph
    assert g8.ops["q_proj"].flops == g.ops["q_proj"].flops and g8.ops["wq"].flops * 8 == g.ops["wq"].flops


@pytest.mark.parametrize("change, field", [
    ({"num_attention_groups": 8}, "num_attention_groups"),
    ({"moe_layers_enum": [4, 5]}, "moe_layers_enum"),
])
def test_bad_fields_are_refused_by_name(tmp_path, change, field):
    with pytest.raises(OpgraphError, match=field):
        load(tmp_path, **change)
