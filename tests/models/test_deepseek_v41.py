"""DeepSeek-V4.1-Flash (model_type deepseek_v41, its text_config deepseek_v41_text). Expected values by hand from its
checkpoint's tensor listing (names, shapes and dtypes: SOURCES.json), its reference inference/model.py and its
report: the compressed cache shared across layers (kv_source_layer_ids), the indexer on index_source_layer_ids and
reused elsewhere, Engram memories before layers 1 and 14, and 890 bytes of compressed cache a token."""

import json
import math

import pytest

from opgraph import OpgraphError, Phase, models
from opgraph.analysis.memory import kv_cache_bytes
from opgraph.core.tensor import MXFP4
from opgraph.models import BuildOptions, hf_config, presets

CONFIG = json.loads((presets.CONFIG_DIR / "deepseek-v4.1-flash.json").read_text())
TEXT = CONFIG["text_config"]
D, HEADS, HEAD, WINDOW, STREAMS = 5120, 64, 512, 128, 4
KV_SOURCES, INDEX_SOURCES, ENGRAM_AT = (2, 8, 14, 20), (2, 8, 14, 20, 24, 28, 32, 36), (1, 14)
RATIOS = [0, 0] + [2] * 18 + [1] * 20
TABLES = (384_006_168, 384_016_682)


def fp8(rows: int, cols: int) -> tuple[int, int]:
    """fp8 e4m3 with one ue8m0 byte a 32 x 32 block."""
    return rows * cols, rows * cols + math.ceil(rows / 32) * math.ceil(cols / 32)


def mxfp4(rows: int, cols: int) -> tuple[int, int]:
    """e2m1 two a byte with one ue8m0 byte a 32 of a row."""
    return rows * cols, rows * cols // 2 + rows * cols // 32


def raw(n: int, size: int) -> tuple[int, int]:
    return n, n * size


def hand() -> tuple[int, int]:
    """(parameters, bytes) of the 40 layers, the embedding and the head, as the tensor listing stores them, without
    the DSpark draft (mtp.*), the vision tower and gate.bias_vl (image tokens only)."""
    t = [raw(129280 * D, 2), raw(129280 * D, 2), raw(D, 2)]  # embed, head, norm
    for i in range(40):
        # wq_a, q_norm, wq_b, wkv, kv_norm
        t += [fp8(1280, D), raw(1280, 2), fp8(HEADS * HEAD, 1280), fp8(HEAD, D), raw(HEAD, 2)]
        t += [fp8(8 * 1024, HEADS * HEAD // 8), fp8(D, 8 * 1024), raw(HEADS, 4)]  # wo_a, wo_b, attn_sink
        if i in KV_SOURCES:  # compressor wkv (and wgate at ratio 2) and norm, bf16; the indexer's wk, k_norm
            t += [raw(HEAD * D, 2)] * (2 if RATIOS[i] == 2 else 1) + [raw(HEAD, 2), raw(128 * HEAD, 2), raw(128, 2)]
        if i in INDEX_SOURCES:
            t += [fp8(32 * 128, 1280), raw(32 * D, 2)]  # indexer wq_b, weights_proj
        t += [raw(384 * D, 2), raw(384, 4)]  # gate weight, bias
        t += [mxfp4(2304, D), mxfp4(2304, D), mxfp4(D, 2304)] * 384  # w1, w3, w2
        t += [fp8(2304, D), fp8(2304, D), fp8(D, 2304)]  # the shared expert
        t += [raw(24 * 4 * D, 4), raw(24, 4), raw(3, 4)] * 2 + [raw(D, 2)] * 2  # hc_attn_*, hc_ffn_*, two norms
        if i in ENGRAM_AT:
            rows = TABLES[ENGRAM_AT.index(i)]
            t += [(rows * 256, rows * (256 + 8)), fp8(5 * D, 24 * 256), raw(4 * D, 2), raw(4 * D, 2)]
    return sum(p for p, _ in t), sum(b for _, b in t)


def test_the_hand_count_is_the_published_one():
    params, _ = hand()
    engram = sum(TABLES) * 256 + 2 * (5 * D * 24 * 256 + 2 * 4 * D)
    # "552B backbone + 196B Engram" (the backbone's 40 x 384 bias_vl values, left out here, change no digit)
    assert round((params - engram) / 1e9) == 552 and int(engram / 1e9) == 196


def test_parameters_and_bytes_are_the_hand_count():
    for phase in (Phase.decode(1, 1000), Phase.decode(1, 1001), Phase.prefill(2, 300)):
        model = models.get("deepseek-v4.1-flash").build(phase)
        assert (model.params(), model.weight_bytes()) == hand() == (748_494_669_424, 501_382_549_968)


def blocks(phase, **options):
    model = models.get("deepseek-v4.1-flash").build(phase, BuildOptions(**options))
    return {b.name: (b.count, b.graph) for b in model.blocks}


def test_the_layers_are_placed_as_the_config_says():
    counts = {n: c for n, (c, _) in blocks(Phase.decode(1, 10)).items()}
    assert counts == {"sliding_layer": 1, "sliding_engram_layer": 1, "sparse2_layer": 2, "sparse2_engram_layer": 1,
                      "sparse2_borrowed_reused_layer": 15, "sparse1_candidates_layer": 1,
                      "sparse1_borrowed_reused_layer": 15, "sparse1_borrowed_masked_layer": 4, "embed_head": 1}


def seen(p: int, ratio: int) -> int:
    """The keys the query at position p attends to: its window and the indexer's top 512 of the entries by then."""
    return min(p + 1, WINDOW) + (min(512, (p + 1) // ratio) if ratio else 0)


@pytest.mark.parametrize("layer, ratio", [("sliding_layer", 0), ("sparse2_layer", 2),
                                          ("sparse2_borrowed_reused_layer", 2), ("sparse1_candidates_layer", 1),
                                          ("sparse1_borrowed_masked_layer", 1), ("sparse1_borrowed_reused_layer", 1)])
@pytest.mark.parametrize("phase", [Phase.decode(3, 1000), Phase.decode(2, 4095), Phase.prefill(2, 700),
                                   Phase("prefill", 1, 300, 2000)], ids=str)
def test_attention_counts_each_querys_window_and_selection(layer, ratio, phase):
    _, g = blocks(phase)[layer]
    pairs = phase.batch * sum(seen(p, ratio) for p in range(phase.past, phase.past + phase.new_tokens))
    assert g.ops["qk"].flops == g.ops["av"].flops == 2 * HEADS * HEAD * pairs


def test_the_projections_are_the_reports():
    # wq_a, wq_b, wkv, wo_a (8 groups of [1,024, 4,096]) and wo_b: 2 x 126,615,552 a token
    _, g = blocks(Phase.decode(1, 10))["sparse2_borrowed_reused_layer"]
    names = ("wq_a", "wq_b", "wkv", "wo_a", "wo_b")
    assert sum(g.ops[n].flops for n in names) == 253_231_104


@pytest.mark.parametrize("phase", [Phase.decode(2, 1000), Phase.prefill(1, 600)], ids=str)
def test_only_index_sources_score_and_the_candidates_narrow_the_later_ones(phase):
    g = {n: graph for n, (_, graph) in blocks(phase).items()}
    scored = {n for n, graph in g.items() if "indexer.scores" in graph.ops}
    assert scored == {"sparse2_layer", "sparse2_engram_layer", "sparse1_candidates_layer",
                      "sparse1_borrowed_masked_layer"}
    for name, ratio in (("sparse2_layer", 2), ("sparse1_candidates_layer", 1)):
        # per pair: 32 heads' dot products of 128, ReLU and weight, the head sum and the key's scale; per query and
        # head three scalings
        pairs = sum((p + 1) // ratio for p in range(phase.past, phase.past + phase.new_tokens))
        assert g[name].ops["indexer.scores"].flops == phase.batch * (pairs * (2 * 32 * 128 + 3 * 32)
                                                                     + 3 * phase.new_tokens * 32)
    entries = phase.past + phase.new_tokens  # ratio 1: one an entry a position
    blocks_ = -(-entries // 8)
    candidates = g["sparse1_candidates_layer"].ops["indexer.candidate_blocks"]
    assert candidates.flops == phase.batch * phase.new_tokens * (entries + blocks_)
    assert candidates.outputs[0].shape[-1] == min(2048, blocks_)
    assert "indexer.candidate_mask" in g["sparse1_borrowed_masked_layer"].ops
    reused = g["sparse1_borrowed_reused_layer"]
    assert "indexer.shared_topk_indices" in reused.tensors and not any("indexer" in w for w in
                                                                        (t.name for t in reused.weights()))


def test_the_cache_is_890_bytes_a_token_held_by_the_sources():
    tokens = 2**20
    model = models.get("deepseek-v4.1-flash").build(Phase.holding(1, tokens))
    g = {b.name: b.graph for b in model.blocks}
    window = WINDOW * (HEAD + HEAD // 32)  # fp8 with a ue8m0 byte a 32: 528 bytes an entry
    for name in ("sliding_layer", "sparse2_borrowed_reused_layer", "sparse1_borrowed_reused_layer",
                 "sparse1_borrowed_masked_layer"):
        assert kv_cache_bytes(g[name]) == window
    # an entry: 512 fp4 values and an e4m3 byte a 16 (288); its index key 128 fp4 and a ue8m0 byte a 32 (68); the
    # ratio-2 compressor's state, 2 slots of 512 kv and 512 scores in fp32
    state = 2 * 2 * HEAD * 4
    assert kv_cache_bytes(g["sparse2_layer"]) == window + tokens // 2 * (288 + 68) + state
    assert kv_cache_bytes(g["sparse1_candidates_layer"]) == window + tokens * (288 + 68)
    history = 3 * 4  # the engram's last three token ids
    assert kv_cache_bytes(g["sparse2_engram_layer"]) == kv_cache_bytes(g["sparse2_layer"]) + history
    total = sum(b.count * kv_cache_bytes(b.graph) for b in model.blocks)
    assert total - 40 * window - 3 * state - 2 * history == 890 * tokens


def test_the_engram_reads_its_rows_and_splits_its_table_over_the_gpus():
    _, g = blocks(Phase.decode(4, 100))["sliding_engram_layer"]
    lookup = g.ops["engram.lookup"]
    assert lookup.inputs[1].shape == (TABLES[0], 256) and lookup.inputs[1].nbytes == TABLES[0] * 264
    assert g.ops["engram.wkv"].flops == 4 * 314_572_800  # [25,600, 6,144] a token
    # each stream: 10 d and 16 more
    assert g.ops["engram.gate"].flops == 4 * STREAMS * (10 * D + 16)
    _, g = blocks(Phase.decode(4, 100), tp=8)["sliding_engram_layer"]
    assert g.tensors["engram.embed.weight"].shape == (math.ceil(TABLES[0] * 3 / 24), 256)
    assert g.tensors["engram.embeddings_all"].shape == (4, 1, 24 * 256)  # all-gathered before wkv
    # with the tokens split over the GPUs, each looks its heads' rows up for all 8 and receives its one token's rest
    _, g = blocks(Phase.decode(8, 100), tp=8, sp=True)["sliding_engram_layer"]
    assert g.tensors["engram.embeddings"].shape == (8, 1, 3 * 256)
    assert g.tensors["engram.embeddings_all"].shape == (1, 1, 24 * 256)


def test_the_head_collapses_with_the_last_layers_weights():
    _, g = blocks(Phase.decode(1, 10))["embed_head"]
    assert g.params() == 2 * 129280 * D + D  # no hc_head
    assert "hc_head_coefficients" not in g.ops and "hc_head_pre" in g.ops


def test_experts_are_mxfp4_and_the_draft_is_noted():
    _, g = blocks(Phase.decode(1, 10))["sparse2_layer"]
    assert g.tensors["ffn.experts.gate_proj.weight"].dtype == MXFP4
    assert g.tensors["attn.wq_a.weight"].dtype.block_rows == 32
    cfg = models.get("deepseek-v4.1-flash")
    assert any("DSpark" in n for n in cfg.notes)
    with pytest.raises(OpgraphError, match="does not build"):
        cfg.draft_head("mtp")


@pytest.mark.parametrize("change, message", [
    ({"compress_ratios": [0, 0] + [3] * 38 + [0] * 3}, "compress_ratios"),
    ({"kv_source_layer_ids": [8, 14, 20]}, "kv_source_layer_ids"),
    ({"kv_source_layer_ids": [0, 2, 8, 14, 20]}, "kv_source_layer_ids"),
    ({"index_source_layer_ids": [8, 14, 20]}, "index_source_layer_ids"),
    ({"candidate_source_layer_id": 21}, "candidate_source_layer_id"),
    ({"engram_num_embeddings": [5]}, "engram_num_embeddings"),
    ({"scoring_func": "softmax"}, "scoring_func"),
])
def test_bad_fields_are_refused_by_name(change, message):
    with pytest.raises(OpgraphError, match=message):
        hf_config.from_dict({**CONFIG, "text_config": {**TEXT, **change}}, name="x", source="test")
