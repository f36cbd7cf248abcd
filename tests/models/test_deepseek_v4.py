"""DeepSeek-V4 (model_type deepseek_v4; Flash and Pro). Expected values by hand from the checkpoints' tensors (their
names, shapes and dtypes, SOURCES.json) and DeepSeek-V4's reference inference/model.py: every layer a sliding window
of 128 raw keys (one shared 512-wide key-value head), and as compress_ratios says, entries pooled 4 : 1 and selected
by an indexer (CSA) or 128 : 1 and all attended (HCA); MoE everywhere, the first three layers routed by a table of
token ids; the residual as 4 hyper-connection streams. The hand count is first checked against the published
checkpoints: its bytes are DeepSeek-V4-Flash's total_size, its stored elements DeepSeek-V4-Pro's tensor count."""

import json
import math

import pytest

from opgraph import BF16, FP32, OpgraphError, Phase, models
from opgraph.analysis.memory import kv_cache_bytes
from opgraph.core.tensor import MXFP4
from opgraph.models import BuildOptions, hf_config, presets
from opgraph.core.tensor import Precision

CONFIGS = {name: json.loads((presets.CONFIG_DIR / f"deepseek-v4-{name}.json").read_text()) for name in ("flash", "pro")}
HEAD, ROPE, WINDOW, STREAMS, MIXES = 512, 64, 128, 4, 24  # MIXES: (2 + n) n
# A cache entry as FlashMLA stores it (vLLM's fp8_ds_mla, SGLang's DeepSeekV4SingleKVPool): 448 values in fp8, 448 / 64
# ue8m0 scales and a pad byte, 64 rope values in bf16
ENTRY = 448 + 448 // 64 + 1 + 64 * 2


def block_scales(rows: int, cols: int) -> int:
    return math.ceil(rows / 128) * math.ceil(cols / 128)


def layer_tensors(c: dict, ratio: int, hashed: bool, mtp: bool = False) -> list[tuple[int, int, int]]:
    """(logical parameters, stored elements, bytes) of each tensor of one layer, as the checkpoint lists them:
    fp8 matrices with one ue8m0 byte a 128 x 128 block, routed experts e2m1 two a byte with a ue8m0 byte a 32,
    bf16 vectors and compressors, fp32 mixing weights, positional biases, sinks and the selection bias."""
    d, h, q, g, o = c["hidden_size"], c["num_attention_heads"], c["q_lora_rank"], c["o_groups"], c["o_lora_rank"]
    e, inter = c["n_routed_experts"], c["moe_intermediate_size"]
    out = []

    def fp8(rows, cols):
        n, s = rows * cols, block_scales(rows, cols)
        out.append((n, n + s, n + s))

    def bf16(n):
        out.append((n, n, 2 * n))

    def f32(n):
        out.append((n, n, 4 * n))
    fp8(q, d), bf16(q), fp8(h * HEAD, q), fp8(HEAD, d), bf16(HEAD)  # wq_a, q_norm, wq_b, wkv, kv_norm
    fp8(g * o, h * HEAD // g), fp8(d, g * o), f32(h)  # wo_a, wo_b, attn_sink
    if ratio:
        width = 2 * HEAD if ratio == 4 else HEAD
        bf16(width * d), bf16(width * d), f32(ratio * width), bf16(HEAD)  # compressor wkv, wgate, ape, norm
        if ratio == 4:
            ih, idim = c["index_n_heads"], c["index_head_dim"]
            fp8(ih * idim, q), bf16(ih * d)  # indexer wq_b, weights_proj
            bf16(2 * idim * d), bf16(2 * idim * d), f32(4 * 2 * idim), bf16(idim)  # its compressor
    bf16(e * d)  # gate.weight
    if hashed:
        k = c["num_experts_per_tok"] * c["vocab_size"]
        out.append((k, k, 8 * k))  # gate.tid2eid, int64
    else:
        f32(e)  # gate.bias
    for rows, cols in ((inter, d), (d, inter), (inter, d)):
        n = rows * cols
        packed = n // 2 + n // 32
        out.append((e * n, e * packed, e * packed))  # routed w1, w2, w3
    for rows, cols in ((inter, d), (d, inter), (inter, d)):
        fp8(rows, cols)  # the shared expert
    bf16(d), bf16(d)  # attn_norm, ffn_norm
    for _ in ("attn", "ffn"):
        f32(MIXES * STREAMS * d), f32(MIXES), f32(3)  # hc_*_fn, base, scale
    if mtp:
        fp8(d, d), fp8(d, d), bf16(d), bf16(d), bf16(d)  # e_proj, h_proj, enorm, hnorm, norm
        f32(STREAMS * STREAMS * d), f32(STREAMS), f32(1)  # hc_head
    return out


def hand(name: str, mtp: bool = False) -> tuple[int, int, int]:
    """(parameters, stored elements, bytes) of the main model, or with its MTP layer (the checkpoint's own)."""
    c = CONFIGS[name]
    d, v = c["hidden_size"], c["vocab_size"]
    tensors = [(v * d, v * d, 2 * v * d)] * 2 + [(d, d, 2 * d)]  # embed, head, norm
    tensors.append((STREAMS * STREAMS * d + STREAMS + 1,) * 2 + (4 * (STREAMS * STREAMS * d + STREAMS + 1),))
    for i, ratio in enumerate(c["compress_ratios"][:c["num_hidden_layers"]]):
        tensors += layer_tensors(c, ratio, i < c["num_hash_layers"])
    if mtp:
        tensors += layer_tensors(c, 0, False, mtp=True)
    return tuple(sum(t[i] for t in tensors) for i in range(3))


def test_the_hand_count_is_the_published_checkpoints():
    assert hand("flash", mtp=True)[2] == 159_609_485_896  # model.safetensors.index.json total_size
    assert hand("pro", mtp=True)[1] == 861_608_274_846  # the elements of its 145,116 tensors


@pytest.mark.parametrize("name", ["flash", "pro"])
def test_parameters_and_bytes_are_the_hand_counts(name):
    params, _, nbytes = hand(name)
    model = models.get(f"deepseek-v4-{name}").build(Phase.decode(1, 1))
    assert model.params() == params
    assert model.weight_bytes() == nbytes


def blocks(name, phase, **options):
    model = models.get(f"deepseek-v4-{name}").build(phase, BuildOptions(**options))
    return {b.name: (b.count, b.graph) for b in model.blocks}


def test_the_layers_are_placed_as_compress_ratios_says():
    counts = {n: c for n, (c, _) in blocks("flash", Phase.decode(1, 10)).items()}
    assert counts == {"hash_moe_sliding_layer": 2, "hash_moe_sparse4_layer": 1, "moe_compressed128_layer": 20,
                      "moe_sparse4_layer": 20, "embed_head": 1}
    counts = {n: c for n, (c, _) in blocks("pro", Phase.decode(1, 10)).items()}
    assert counts == {"hash_moe_compressed128_layer": 2, "hash_moe_sparse4_layer": 1, "moe_compressed128_layer": 29,
                      "moe_sparse4_layer": 29, "embed_head": 1}


def seen(p: int, ratio: int, topk: int | None) -> int:
    """The keys the query at position p attends to: its window, and the entries pooled by then (or the selection)."""
    entries = (p + 1) // ratio if ratio else 0
    return min(p + 1, WINDOW) + (min(topk, entries) if topk else entries)


@pytest.mark.parametrize("layer, ratio, topk", [("moe_compressed128_layer", 128, None), ("moe_sparse4_layer", 4, 512),
                                                ("hash_moe_sliding_layer", 0, None)])
@pytest.mark.parametrize("phase", [Phase.decode(3, 1000), Phase.decode(2, 4095), Phase.prefill(2, 1000),
                                   Phase("prefill", 1, 300, 2000)], ids=str)
def test_attention_counts_each_querys_window_and_entries(layer, ratio, topk, phase):
    _, g = blocks("flash", phase)[layer]
    h = CONFIGS["flash"]["num_attention_heads"]
    pairs = phase.batch * sum(seen(p, ratio, topk) for p in range(phase.past, phase.past + phase.new_tokens))
    assert g.ops["qk"].flops == g.ops["av"].flops == 2 * h * HEAD * pairs
    assert g.ops["softmax"].flops == 5 * h * pairs + 3 * phase.batch * h * phase.new_tokens  # + the sink


@pytest.mark.parametrize("kv, entry", [(None, ENTRY), ("bf16", 2 * HEAD)])
def test_the_cache_holds_the_window_the_entries_and_the_compressors_state(kv, entry):
    phase = Phase.decode(1, 1000)
    options = {} if kv is None else dict(precision=Precision.uniform(BF16))
    g = {n: graph for n, (_, graph) in blocks("flash", phase, **options).items()}
    window = WINDOW * entry  # 127 cached + the new one
    # CSA: 250 entries and 250 indexer keys of 128 fp8 with an fp32 scale; the states' slots in fp32:
    # 8 x (1,024 kv | 1,024 scores), 8 x (256 | 256)
    csa = window + 250 * entry + 250 * 132 + 8 * 2048 * 4 + 8 * 512 * 4
    hca = window + 7 * entry + 128 * 1024 * 4  # 1000 // 128 entries; 128 x (512 | 512) slots
    assert kv_cache_bytes(g["moe_sparse4_layer"]) == csa
    assert kv_cache_bytes(g["moe_compressed128_layer"]) == hca
    assert kv_cache_bytes(g["hash_moe_sliding_layer"]) == window


def test_an_entry_is_pooled_on_the_step_that_completes_its_window():
    # position 1023 completes the 256th CSA window and the 8th HCA one: the step pools and attends to them
    g = {n: graph for n, (_, graph) in blocks("flash", Phase.decode(1, 1023)).items()}
    assert g["moe_compressed128_layer"].tensors["compressor.entry"].shape == (1, 1, HEAD)
    assert g["moe_sparse4_layer"].tensors["indexer.compressor.entry"].shape == (1, 1, 128)
    g = {n: graph for n, (_, graph) in blocks("flash", Phase.decode(1, 1024)).items()}
    assert "compressor.entry" not in g["moe_compressed128_layer"].tensors


def test_hyper_connections_carry_four_streams():
    d = CONFIGS["flash"]["hidden_size"]
    _, g = blocks("flash", Phase.decode(1, 10))["moe_sparse4_layer"]
    assert g.tensors["x"].shape == (1, 1, STREAMS * d) and g.tensors["out"].shape == (1, 1, STREAMS * d)
    ops = g.ops
    assert ops["hc_attn_mix"].flops == 2 * MIXES * STREAMS * d
    # rstd 3, mixes x rstd x scale + base 3 x 24, pre and post sigmoids 10 n, comb: softmax 5n^2 + eps n^2 +
    # a column normalization 2n^2, then 19 times rows and columns 4n^2
    assert ops["hc_attn_coefficients"].flops == 3 + 3 * MIXES + 10 * STREAMS + 8 * 16 + 19 * 4 * 16
    assert ops["hc_attn_pre"].flops == (2 * STREAMS - 1) * d
    assert ops["hc_attn_post"].flops == STREAMS * d * (2 * STREAMS + 1)
    assert "attn_residual" not in ops
    head = blocks("flash", Phase.decode(1, 10))["embed_head"][1]
    assert head.ops["hc_head_coefficients"].flops == 3 + 3 * STREAMS + 5 * STREAMS


def test_hash_layers_look_their_experts_up():
    c = CONFIGS["flash"]
    g = {n: graph for n, (_, graph) in blocks("flash", Phase.decode(4, 10)).items()}
    hashed, routed = g["hash_moe_sliding_layer"], g["moe_sparse4_layer"]
    table = hashed.tensors["ffn.gate.tid2eid"]
    assert table.shape == (c["vocab_size"], 6) and table.nbytes == c["vocab_size"] * 6 * 8
    assert "ffn.gate.e_score_correction_bias" not in hashed.tensors
    assert routed.tensors["ffn.gate.e_score_correction_bias"].dtype == FP32
    # no score compared; the k weights renormalized (2k) and scaled (k)
    assert hashed.ops["top_k"].flops == 4 * 3 * 6
    assert routed.ops["top_k"].flops == 4 * (256 + 3 * 6)
    assert routed.ops["router_sqrt_softplus"].flops == 4 * 4 * 256


def test_each_module_is_stored_as_the_checkpoint_stores_it():
    _, g = blocks("flash", Phase.decode(1, 10))["moe_sparse4_layer"]
    t = g.tensors
    assert t["attn.wq_a.weight"].dtype.name == "fp8" and t["attn.wq_a.weight"].dtype.scale_bits == 8
    assert t["ffn.experts.gate_proj.weight"].dtype == MXFP4
    assert t["shared.ffn.shared_experts.gate_proj.weight"].dtype.name == "fp8"
    for name in ("attn.compressor.wkv.weight", "attn.indexer.weights_proj.weight", "ffn.gate.weight"):
        assert t[name].dtype == BF16
    base = dict(CONFIGS["flash"], expert_dtype="fp8")
    base["quantization_config"] = {k: v for k, v in base["quantization_config"].items() if k != "scale_fmt"}
    cfg = hf_config.from_dict(base, name="base", source="test")
    _, g = {b.name: (b.count, b.graph) for b in cfg.build(Phase.decode(1, 10)).blocks}["moe_sparse4_layer"]
    experts = g.tensors["ffn.experts.gate_proj.weight"].dtype
    assert experts.name == "fp8" and experts.scale_bits == 32


def test_tensor_parallel_splits_the_heads_and_the_output_groups():
    _, g = blocks("flash", Phase.decode(1, 10), tp=8)["moe_sparse4_layer"]
    assert g.tensors["attn.wq_b.weight"].shape == (8 * HEAD, 1024)
    assert g.tensors["attn.wo_a.weight"].shape == (1024, 8 * HEAD)  # one group of 8 heads
    assert g.tensors["attn.wkv.weight"].shape == (HEAD, 4096)  # the key-value head whole on every GPU
    with pytest.raises(OpgraphError, match="o_groups"):
        blocks("flash", Phase.decode(1, 10), tp=16)


@pytest.mark.parametrize("change, message", [
    ({"num_key_value_heads": 2}, "num_key_value_heads"),
    ({"compress_ratios": [0, 4]}, "compress_ratios"),
    ({"compress_ratios": None}, "compress_ratios"),
    ({"compress_ratios": [2] * 44}, "compress_ratios"),
    ({"expert_dtype": "int4"}, "expert_dtype"),
    ({"scoring_func": "softmax"}, "scoring_func"),
])
def test_bad_fields_are_refused_by_name(change, message):
    with pytest.raises(OpgraphError, match=message):
        hf_config.from_dict({**CONFIGS["flash"], **change}, name="x", source="test")


@pytest.mark.parametrize("name", ["flash", "pro"])
def test_the_mtp_head_is_the_checkpoints_module(name):
    # the checkpoint's MTP block (e_proj, h_proj, enorm, hnorm, a window-only layer, its own norm and hc_head), and the
    # embedding and head it shares, which the draft counts as its own
    c = CONFIGS[name]
    table = c["vocab_size"] * c["hidden_size"]
    params = hand(name, mtp=True)[0] - hand(name)[0] + 2 * table
    nbytes = hand(name, mtp=True)[2] - hand(name)[2] + 2 * 2 * table
    head = models.get(f"deepseek-v4-{name}").draft_head("mtp").build(Phase.decode(2, 100))
    assert head.params() == params and head.weight_bytes() == nbytes
    join = next(b.graph for b in head.blocks if b.name == "draft_join")
    d = c["hidden_size"]
    assert join.ops["h_proj"].flops == 2 * 2 * STREAMS * d * d  # one [d, d] matrix on each of the 4 streams


def test_an_eagle_head_is_refused():
    with pytest.raises(OpgraphError, match="hyper-connection"):
        models.get("deepseek-v4-flash").draft_head("eagle")


def test_a_million_tokens_cache_the_published_size():
    # DeepSeek-V4's report: 9.62 GiB a sequence at 1M tokens for Pro, its cache in bf16 (the entries, without the
    # window and the compressors' states): 30 CSA layers x (128 + 32 indexer values) + 31 HCA layers x 4, two bytes
    # each, a token. opgraph keeps the entries as FlashMLA does (ENTRY bytes) and the indexer's keys in fp8 with an
    # fp32 scale (132 bytes for 128, as vLLM does).
    tokens = 2**20
    model = models.get("deepseek-v4-pro").build(Phase.holding(1, tokens))
    total = sum(b.count * kv_cache_bytes(b.graph) for b in model.blocks)
    window, csa_state, hca_state = WINDOW * ENTRY, 8 * 2048 * 4 + 8 * 512 * 4, 128 * 1024 * 4
    entries = total - 61 * window - 30 * csa_state - 31 * hca_state
    assert entries == 30 * (tokens // 4 * ENTRY + tokens // 4 * 132) + 31 * tokens // 128 * ENTRY
    main = 30 * tokens // 4 + 31 * tokens // 128
    in_bf16 = entries + main * (2 * HEAD - ENTRY) + 30 * tokens // 4 * (2 * 128 - 132)
    assert in_bf16 == (30 * (128 + 32) * 2 + 31 * 4 * 2) * tokens
    assert round(in_bf16 / 2**30, 2) == 9.62


@pytest.mark.parametrize("engine, serves", [("vllm", True), ("sglang", True), ("trtllm", False)])
def test_each_engine_serves_the_cache_it_stores(capsys, engine, serves):
    # vLLM and SGLang store FlashMLA's layout whatever they are told; TensorRT-LLM its KV-cache dtype, bf16 by default
    from opgraph.cli import main
    rc = main(["serve", "deepseek-v4-flash", "--hardware", "h200", "--engine", engine, "--tp", "8", "--concurrency",
               "4", "--prompt", "500", "--output", "20", "--format", "json"])
    notes = " ".join(json.loads(capsys.readouterr().out)["notes"])
    assert rc == 0
    assert (f"fp8_ds_mla KV cache" in notes) and ((f"which {engine} serves by default" in notes) == serves)
    assert ("keeps the model's bf16" in notes) == (not serves)


@pytest.mark.parametrize("name, tp, local, padded", [("flash", 8, 8, 64), ("pro", 8, 16, 64), ("pro", 1, 128, 128)])
def test_the_kernel_computes_64_or_128_query_heads(name, tp, local, padded):
    # FlashMLA's sparse kernels take 64 or 128 query heads; vLLM pads a GPU's queries (and sinks) up to them
    phase = Phase.decode(2, 1000)
    _, g = blocks(name, phase, tp=tp)["moe_compressed128_layer"]
    keys = WINDOW + 1001 // 128
    assert g.ops["qk"].flops == g.ops["av"].flops == 2 * 2 * padded * HEAD * keys
    assert g.ops["wq_b"].outputs[0].shape[-1] == local * HEAD  # the projections keep the GPU's own heads
    assert g.ops["rope_o"].inputs[0].shape[-1] == local * HEAD
    assert g.tensors["attn.attn_sink"].shape == (padded,)
    assert ("pad_heads" in g.ops) == (padded > local)
