"""Measured norm, elementwise, rotary and embedding kernels: each row is rebuilt as the one kernel it times, with
bytes and FLOPs worked by hand here, priced by the norm, rope, elementwise or embedding class; the tables come from
opgraph's own H200 measurements (the H100's carried from them)."""

import csv
from pathlib import Path

import attrs
import pytest

from opgraph import hardware
from opgraph.analysis.validate import ONE_KERNEL, kernel, validate
from opgraph.pricing.cost import analyze
from opgraph.pricing.kinds import classify
from opgraph.pricing.kinds.elementwise import ELEMENTWISE
from opgraph.pricing.kinds.embedding import EMBEDDING
from opgraph.pricing.kinds.norm import NORM
from opgraph.pricing.kinds.rope import ROPE
from opgraph.pricing.timing import ROOFLINE, ClassTiming, TimeModel
from opgraph.errors import OpgraphError
from opgraph.files.measurements import read
from opgraph.pricing.kinds import time_class

DATA = Path(__file__).parents[2] / "benchmarks" / "data"
H100 = hardware.load("h100-sxm")
BARE = attrs.evolve(H100, timing=ROOFLINE)
BW = 3350e9  # hardware/specs/h100-sxm.toml memory_bandwidth_GB_per_s
T, H = 4096, 1024


def traffic(kind, dtype, **shape):
    model = kernel(kind, dtype, **shape)
    ops = list(model.blocks[0].graph.ops.values())
    t = analyze(model, ONE_KERNEL, BARE).totals
    return ops, t.traffic.bytes_read, t.traffic.bytes_written, t.flops


def test_rms_norm_reads_x_and_its_scale_and_writes_y():
    ops, read_b, written, flops = traffic("rms_norm", "bf16", tokens=T, hidden=H)
    assert (read_b, written) == (T * H * 2 + H * 2, T * H * 2)
    assert flops == 4 * T * H + 3 * T  # per element square, sum, scale, gamma; per row divide, eps, rsqrt
    assert classify(ops) == NORM == time_class("rms_norm", "bf16")


def test_layer_norm_also_reads_its_shift():
    _, read_b, written, flops = traffic("layer_norm", "fp32", tokens=T, hidden=H)
    assert (read_b, written) == (T * H * 4 + 2 * H * 4, T * H * 4)
    assert flops == 7 * T * H + 4 * T


def test_add_rms_norm_reads_two_streams_and_writes_the_sum_and_the_norm():
    ops, read_b, written, flops = traffic("add_rms_norm", "fp32", tokens=T, hidden=H)
    assert (read_b, written) == (2 * T * H * 4 + H * 4, 2 * T * H * 4)
    assert flops == T * H + 4 * T * H + 3 * T
    assert classify(ops) == NORM == time_class("add_rms_norm", "fp32")


def test_silu_mul_reads_gate_and_up_and_counts_one_exponential_each():
    ops, read_b, written, flops = traffic("silu_mul", "bf16", tokens=T, hidden=H)
    assert (read_b, written) == (2 * T * H * 2, T * H * 2)
    assert flops == 4 * T * H + T * H and sum(op.transcendentals for op in ops) == T * H
    assert classify(ops) == ELEMENTWISE == time_class("silu_mul", "bf16") == time_class("relu2", "bf16")


def test_relu2_is_one_pass():
    _, read_b, written, flops = traffic("relu2", "bf16", tokens=T, hidden=H)
    assert (read_b, written, flops) == (T * H * 2, T * H * 2, 2 * T * H)


def test_rope_rotates_queries_and_keys_in_one_kernel():
    ops, read_b, written, flops = traffic("rope", "bf16", tokens=2048, heads=32, kv_heads=8, head_dim=128)
    width = (32 + 8) * 128
    assert (read_b, written, flops) == (2048 * width * 2, 2048 * width * 2, 3 * 2048 * width)
    assert classify(ops) == ROPE == time_class("rope", "bf16")
    # a calibration without a rope table prices it as elementwise, as every calibration did before rope had one
    tm = TimeModel("x", {ELEMENTWISE: ClassTiming(latency_s=2e-6)})
    assert tm.table(ROPE) == ELEMENTWISE and tm.of(ROPE).latency_s == 2e-6


def test_embedding_reads_at_most_one_row_per_token_and_the_ids():
    _, read_b, written, _ = traffic("embedding", "fp32", tokens=16384, vocab=1024, hidden=768)
    assert (read_b, written) == (16384 * 4 + 1024 * 768 * 4, 16384 * 768 * 4)  # 1,024 rows: the whole table
    _, read_b, _, _ = traffic("embedding", "bf16", tokens=8, vocab=128256, hidden=4096)
    assert read_b == 8 * 4 + 8 * 4096 * 2
    assert time_class("embedding", "bf16") == EMBEDDING


def test_the_liger_rows_are_the_kernels_the_extraction_names():
    with open(DATA / "h100-sxm-liger.csv") as f:
        raw = list(csv.DictReader(f))
    rows = read(DATA / "h100-sxm-liger.csv")
    assert len(rows) == len(raw) == 30
    assert {r.kind for r in rows} == {"rms_norm", "layer_norm", "add_rms_norm", "silu_mul", "relu2"}
    assert all("NVIDIA H100 80GB HBM3" in r.source and r.source.startswith("liger-kernel") for r in rows)
    # SwiGLU of 8,192 tokens x 32,768: reads gate and up, writes the product, 1.61 GB at 3,350 GB/s = 480.8 us;
    # Liger measured 527.5 us
    big = next(r for r in rows if r.kind == "silu_mul" and r.shape == {"tokens": 8192, "hidden": 32768})
    assert big.time_s == pytest.approx(527.504e-6)
    v = validate([big], BARE)
    assert v.roofline_s[0] == pytest.approx(3 * 8192 * 32768 * 2 / BW, rel=1e-9)
    assert v.roofline_s[0] * 1e6 == pytest.approx(480.8, rel=1e-3)


def test_the_shipped_h100_vector_tables_are_the_h200s_carried_to_its_bandwidth():
    """The H100 SXM is the H200's GH100 chip with slower memory (3,350 against 4,800 GB/s, the specs' datasheet
    figures): its norm, rope, elementwise and embedding tables are the H200's measured fit with the same fixed costs
    and shares of the bandwidth, and the same L2 stretch (bytes) at the same pace (bytes/s)."""
    h200 = hardware.load("h200")
    assert (H100.bandwidth, h200.bandwidth) == (3350e9, 4800e9)
    for kind in (NORM, ROPE, ELEMENTWISE, EMBEDDING):
        a, b = H100.timing.classes[kind], h200.timing.classes[kind]
        assert (a.latency_s, a.memory_efficiency, a.compute_efficiency) == (b.latency_s, b.memory_efficiency,
                                                                           b.compute_efficiency)
        assert b.cache_s > 0 and a.cache_s * 3350e9 == pytest.approx(b.cache_s * 4800e9, rel=1e-5)  # the same bytes
        assert a.cache_efficiency * 3350e9 == pytest.approx(b.cache_efficiency * 4800e9, rel=1e-5)  # at one pace
    assert "carried" in H100.timing.source and "h200-opgraph.csv.gz" in H100.timing.source
    # Liger's do_bench times carry a fixed cost of their own per call (6-7 us at the smallest sizes), so the tables
    # (1.5-2.5 us a kernel, as a CUDA graph replays them) read faster than they do; still closer than the roofline
    v = validate(read(DATA / "h100-sxm-liger.csv"), H100)
    assert v.stats["expected"]["all"]["all"].median < v.stats["roofline"]["all"]["all"].median
    assert v.stats["expected"]["all"]["all"].bias < 0


@pytest.mark.parametrize("body, says", [
    ("rms_norm,bf16,4096,,10,\n", "row 1, column 'hidden': a rms_norm row needs it"),
    ("silu_mul,bf16,0,1024,10,\n", "row 1, column 'tokens'"),
    ("relu2,bf16,4096,1024,-1,\n", "row 1, column 'time_us'"),
])
def test_bad_norm_and_elementwise_rows_name_the_row_and_the_column(tmp_path, body, says):
    p = tmp_path / "m.csv"
    p.write_text("class,dtype,tokens,hidden,time_us,source\n" + body)
    with pytest.raises(OpgraphError, match=says):
        read(p)


def test_an_embedding_row_needs_its_vocab(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("class,dtype,tokens,hidden,time_us\nembedding,bf16,8,4096,5\n")
    with pytest.raises(OpgraphError, match="row 1, column 'vocab': a embedding row needs it"):
        read(p)
