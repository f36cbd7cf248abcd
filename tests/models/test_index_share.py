"""IndexShare (arXiv:2603.12201): GLM-5.2's layers that reuse the top-k selection of the last layer with an indexer.

Expected values come from the config's widths and the schedule as transformers' GlmMoeDsaConfig derives it (layer i
runs its own indexer where max(i - index_skip_topk_offset + 1, 0) % index_topk_freq == 0), never from the program's
output. The published GLM-5.2 config lists its 78 layers' kinds; a third-party check of its safetensors index finds
indexer weights on exactly layers 0, 1, 2, 6, 10, ..., 74 (21 layers).
"""

import json

import pytest

from opgraph import models
from opgraph.analysis.memory import kv_cache_bytes
from opgraph.core.phase import Phase
from opgraph.errors import OpgraphError
from opgraph.models.hf_config import from_dict

GLM52 = json.loads((models.presets.CONFIG_DIR / "glm-5.2.json").read_text())
OWN = [0, 1, 2] + list(range(6, 78, 4))  # the 21 layers with an indexer of their own

D, HEADS, QL, R, NOPE, ROPE, V = 6144, 64, 2048, 512, 192, 64, 256
IH, ID, TOPK = 32, 128, 2048
E, DE, DFF, VOCAB = 256, 2048, 12288, 154880


def load(data=GLM52, **changes):
    return from_dict({**data, **changes}, name="test", source="test")


def test_the_schedule_gives_the_published_layers_with_an_indexer():
    assert len(OWN) == 21
    assert [i for i, kind in enumerate(GLM52["indexer_types"]) if kind == "full"] == OWN


def test_blocks_are_the_dense_layers_and_the_moe_layers_with_and_without_an_indexer():
    model = load().build(Phase.decode(1, 100))
    assert {b.name: b.count for b in model.blocks if b.name != "embed_head"} == {
        "dense_sparse_layer": 3, "moe_sparse_layer": 18, "moe_sparse_shared_layer": 57}


def test_parameters_by_hand():
    attention = (D * QL + QL + QL * HEADS * (NOPE + ROPE) + D * (R + ROPE) + R + R * HEADS * (NOPE + V)
                 + HEADS * V * D)
    indexer = QL * IH * ID + D * ID + 2 * ID + D * IH  # wq_b, wk, k_norm (weight and bias), weights_proj
    norms = 2 * D
    dense = 3 * D * DFF
    moe = (E + 1) * 3 * D * DE + E * D + E  # routed and shared experts, the router and its selection bias
    total = (78 * (attention + norms) + 21 * indexer + 3 * dense + 75 * moe
             + 2 * VOCAB * D + D)  # embedding, head, final norm
    assert total == 743_377_019_904
    assert load().build(Phase.decode(1, 100)).params() == total


def test_the_cache_holds_index_keys_on_the_layers_with_an_indexer_only():
    batch, context = 2, 500
    model = load().build(Phase.decode(batch, context))
    cached = sum(b.count * kv_cache_bytes(b.graph) for b in model.blocks)
    # every layer: the 512 + 64 latent entry in bf16; the 21 with an indexer: its fp8 key, 128 bytes and an fp32
    # scale (vLLM's DeepseekV32IndexerCache: head_dim + head_dim // 128 * 4)
    assert cached == batch * (context + 1) * (78 * (R + ROPE) * 2 + 21 * (ID + 4))


@pytest.mark.parametrize("phase", [Phase.decode(3, 4000), Phase.prefill(1, 3000), Phase("prefill", 2, 256, 5000)])
def test_a_shared_layer_attends_as_its_indexer_layer_does_without_the_indexer(phase):
    model = load().build(phase)
    own, shared = (next(b.graph for b in model.blocks if b.name == n)
                   for n in ("moe_sparse_layer", "moe_sparse_shared_layer"))
    assert not [o for o in shared.ops if o.startswith("indexer.")]
    assert not [t for t in shared.weights() if "indexer" in t.name]
    assert [o for o in own.ops if o.startswith("indexer.")]
    # the same attention over the same count of selected keys
    assert {n: o.flops for n, o in shared.ops.items()} == {n: o.flops for n, o in own.ops.items()
                                                            if not n.startswith("indexer.")}
    indices = shared.tensors["indexer.shared_topk_indices"]
    keys = phase.past + phase.new_tokens
    assert indices.shape == (phase.batch, phase.new_tokens, min(TOPK, keys)) and indices.dtype.bits == 32
    assert indices.nbytes == phase.batch * phase.new_tokens * min(TOPK, keys) * 4


def test_the_schedule_alone_builds_what_the_list_says():
    listed = load().build(Phase.decode(1, 100))
    derived = {k: v for k, v in GLM52.items() if k != "indexer_types"}
    assert load(derived).build(Phase.decode(1, 100)).params() == listed.params()
    pattern = "".join("F" if i in OWN else "S" for i in range(78))
    assert load(derived, index_topk_pattern=pattern, index_topk_freq=1).build(Phase.decode(1, 100)).params() == \
        listed.params()


def test_default_offset_is_transformers_two():
    # index_topk_freq 4 without an offset: transformers' default offset 2 gives own indexers on 0, 1, 5, 9, ...
    derived = {k: v for k, v in GLM52.items() if k not in ("indexer_types", "index_skip_topk_offset")}
    model = load(derived).build(Phase.decode(1, 100))
    own = 2 + len(range(5, 78, 4))
    assert sum(b.count for b in model.blocks if b.name.endswith("sparse_layer")) == own


@pytest.mark.parametrize("changes, field, says", [
    (dict(index_skip_topk_offset=2), "indexer_types", "says 'full' for layer 2.*must agree"),
    (dict(index_topk_freq=1), "indexer_types", "says 'shared' for layer 3.*must agree"),
    (dict(indexer_types=["shared"] + GLM52["indexer_types"][1:], index_topk_freq=None, index_skip_topk_offset=None),
     "indexer_types", "says 'shared' for layer 0"),
    (dict(indexer_types=None, index_topk_pattern="S" + "F" * 77), "index_topk_pattern", "layer 0 reuse"),
    (dict(indexer_types=None, index_topk_pattern="FX" * 39), "index_topk_pattern", "F .* or S"),
    (dict(indexer_types=["full"] * 77), "indexer_types", "each of the 78 layers"),
    (dict(index_topk_freq=0), "index_topk_freq", ""),
])
def test_schedules_that_disagree_or_make_no_sense_are_refused_naming_the_field(changes, field, says):
    with pytest.raises(OpgraphError, match=f"'{field}'.*{says}"):
        load(**changes)


def test_the_mtp_draft_layer_runs_an_indexer_of_its_own():
    draft = load().draft_head("mtp")
    graph = draft.build(Phase.decode(1, 100)).blocks
    assert any(o.startswith("indexer.") for b in graph for o in b.graph.ops)
    assert any("index_share_for_mtp_iteration" in n for n in load().notes)
