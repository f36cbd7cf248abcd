"""`opgraph validate`: measured kernels rebuilt as graphs and predicted; expected times derived by hand from the
roofline's definition (FLOPs at the datasheet peak, bytes at the datasheet bandwidth, the larger)."""

import gzip
import json
from pathlib import Path

import pytest
from userland import opgraph

from opgraph import hardware
from opgraph.analysis.validate import validate
from opgraph.files.measurements import Measurement, read

H100 = hardware.load("h100-sxm")
PEAK, BW = 989e12, 3350e9
DATA = Path(__file__).parents[2] / "benchmarks" / "data"
HEADER = "class,dtype,m,n,k,batch,seq_len,context,heads,kv_heads,head_dim,time_us,source\n"


def gemm_roofline(m, n, k):
    return max(2 * m * n * k / PEAK, 2 * (m * k + n * k + m * n) / BW)


@pytest.mark.parametrize("m, n, k", [(1, 4096, 4096), (8192, 4096, 4096), (64, 14336, 4096), (3, 32, 7)])
def test_gemm_prediction_is_the_roofline(m, n, k):
    v = validate([Measurement("gemm", "bf16", {"m": m, "n": n, "k": k}, 1e-3)], H100)
    assert float(v.roofline_s[0]) == pytest.approx(gemm_roofline(m, n, k), rel=1e-12)


@pytest.mark.parametrize("batch, s, heads, kv, d", [(1, 1024, 32, 8, 128), (8, 4096, 64, 8, 128), (2, 1, 4, 1, 64)])
def test_prefill_attention_counts_the_causal_half_and_reads_q_k_v(batch, s, heads, kv, d):
    v = validate([Measurement("prefill_attention", "bf16", {"batch": batch, "seq_len": s, "heads": heads,
                                                            "kv_heads": kv, "head_dim": d}, 1e-3)], H100)
    pairs = s * (s + 1) // 2  # causal: FlashAttention skips the masked blocks
    matmul = 2 * batch * heads * pairs * d / PEAK  # qk and av each
    # One kernel, op by op: qk reads q and k (bf16), softmax reads nothing (on chip, 5 FLOPs a score at the
    # vector rate), av reads v and writes the output.
    qk = max(matmul, 2 * (batch * s * heads * d + batch * s * kv * d) / BW)
    softmax = 5 * batch * heads * pairs / 66.9e12
    av = max(matmul, 2 * (batch * s * kv * d + batch * s * heads * d) / BW)
    assert float(v.roofline_s[0]) == pytest.approx(qk + softmax + av, rel=1e-12)


def test_decode_attention_reads_the_whole_cache():
    batch, ctx, heads, kv, d = 8, 4095, 32, 8, 128
    v = validate([Measurement("decode_attention", "bf16", {"batch": batch, "context": ctx, "heads": heads,
                                                           "kv_heads": kv, "head_dim": d}, 1e-3)], H100)
    cache = 2 * batch * (ctx + 1) * kv * d * 2  # K and V, bf16
    assert float(v.roofline_s[0]) >= cache / BW  # memory-bound: at least the cache read
    assert v.regime in (("memory",), ("latency",))


def test_errors_and_their_distribution():
    # measured exactly 2x, 4x and 1x the roofline: errors -50%, -75%, 0%
    shapes = [(1, 4096, 4096), (1, 8192, 4096), (1, 4096, 8192)]
    rows = [Measurement("gemm", "bf16", dict(zip("mnk", s)), gemm_roofline(*s) * f) for s, f in zip(shapes, (2, 4, 1))]
    v = validate(rows, H100)
    assert v.errors("roofline").tolist() == pytest.approx([-0.5, -0.75, 0.0])
    g = v.stats["roofline"]["class"]["gemm"]
    assert (g.count, g.median, g.bias) == (3, pytest.approx(0.5), pytest.approx(-0.5))
    assert g.too_fast == pytest.approx(2 / 3)


def test_the_shipped_measurements_parse_and_the_roofline_is_too_fast():
    """The evidence the time model is calibrated against: every class is predicted too fast by the roofline."""
    rows = read(DATA / "h100-sxm-vllm.csv.gz")
    kinds = {"gemm", "prefill_attention", "decode_attention", "all_reduce", "ep_dispatch", "ep_combine", "moe"}
    assert len(rows) > 60_000 and {r.kind for r in rows} == kinds
    v = validate(rows, H100)
    by_class = v.stats["roofline"]["class"]
    assert all(by_class[k].bias < -0.3 for k in kinds - {"all_reduce"})  # the all-to-alls' too (DeepEP's fixed cost)
    assert by_class["all_reduce"].bias < -0.1  # the spec's alpha-beta ring is too fast as well, if less so


def write(tmp_path, body, name="m.csv"):
    (tmp_path / name).write_text(HEADER + body)
    return str(tmp_path / name)


@pytest.mark.parametrize("body, says", [
    ("gemm,bf16,1,4096,,,,,,,,10,\n", "row 1, column 'k': a gemm row needs it"),
    ("gemm,bf16,1,4096,4096,,,,,,,0,\n", "row 1, column 'time_us' must be a finite number > 0"),
    ("gemm,bf16,1,4096,4096,,,,,,,-3,\n", "row 1, column 'time_us' must be a finite number > 0"),
    ("gemm,bf16,1,4096,4096,,,,,,,fast,\n", "row 1, column 'time_us': 'fast' is not a number"),
    ("gemm,bf16,1,4096,4096,,,,,,,nan,\n", "row 1, column 'time_us' must be a finite number > 0"),
    ("gemm,bf16,1,4096,4096,,,,,,,1,\nconv,bf16,1,1,1,,,,,,,1,\n", "unknown class (in "),
    ("gemm,bf16,1x,4096,4096,,,,,,,1,\n", "row 1, column 'm': '1x' is not a positive integer"),
    ("gemm,bf16,0,4096,4096,,,,,,,1,\n", "row 1, column 'm' must be an integer from 1"),
    ("gemm,bf16,1,4096,4096,8,,,,,,1,\n", "row 1, column 'batch': a gemm row does not use it"),
    ("gemm,fp6,1,4096,4096,,,,,,,1,\n", "unknown dtype (in "),
    ("gemm,bf16,1,4096,4096,,,,,,,1,,extra\n", "row 1 has more cells than the header"),
    ("", "no measurements"),
])
def test_bad_measurement_files_name_the_row_and_the_column(tmp_path, body, says):
    r = opgraph("validate", write(tmp_path, body))
    assert r.returncode == 2 and says in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_a_bad_header_lists_the_columns(tmp_path):
    (tmp_path / "m.csv").write_text("kind,time\ngemm,1\n")
    r = opgraph("validate", str(tmp_path / "m.csv"))
    assert r.returncode == 2 and "the header must name the columns class, dtype" in r.stderr, r.stderr


def test_validate_reads_gzip_and_gives_every_row_in_json(tmp_path):
    path = tmp_path / "m.csv.gz"
    path.write_bytes(gzip.compress((HEADER + "gemm,bf16,1,4096,4096,,,,,,,20,mine\n"
                                    "decode_attention,bf16,,,,8,,1023,32,8,128,18,mine\n").encode()))
    r = opgraph("validate", str(path), "--format", "json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [row["class"] for row in out["rows"]] == ["gemm", "decode_attention"]
    assert out["rows"][0]["roofline_s"] == pytest.approx(gemm_roofline(1, 4096, 4096), rel=1e-12)
    assert out["rows"][0]["roofline_error"] == pytest.approx(gemm_roofline(1, 4096, 4096) / 20e-6 - 1)


@pytest.mark.parametrize("body, says", [
    ("all_reduce,bf16,,8,,10,\n", "row 1, column 'elements': a all_reduce row needs it"),
    ("all_reduce,bf16,1,8,1024,10,\n", "row 1, column 'm': a all_reduce row does not use it"),
    ("all_reduce,bf16,,0,1024,10,\n", "row 1, column 'gpus' must be an integer from 2 to 1,024"),
    ("all_reduce,bf16,,1,1024,10,\n", "row 1, column 'gpus' must be an integer from 2 to 1,024"),
    ("all_reduce,bf16,,5000,1024,10,\n", "row 1, column 'gpus' must be an integer from 2 to 1,024"),
])
def test_bad_all_reduce_rows_name_the_row_and_the_column(tmp_path, body, says):
    (tmp_path / "m.csv").write_text("class,dtype,m,gpus,elements,time_us,source\n" + body)
    r = opgraph("validate", str(tmp_path / "m.csv"))
    assert r.returncode == 2 and says in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_an_all_reduce_row_is_a_ring_on_the_specs_links(tmp_path):
    """8 GPUs, 1,048,576 bf16 values on H100 SXM NVLink: the roofline is 2 x 7/8 x 2 MiB at 450 GB/s (the spec's 14
    steps of 0.7 us are latency, the expected time's)."""
    (tmp_path / "m.csv").write_text("class,dtype,gpus,elements,time_us\nall_reduce,bf16,8,1048576,20\n")
    r = opgraph("validate", str(tmp_path / "m.csv"), "--format", "json")
    assert r.returncode == 0, r.stderr
    [row] = json.loads(r.stdout)["rows"]
    assert row["roofline_s"] == pytest.approx(2 * 7 / 8 * 2 * 1048576 / 450e9, rel=1e-9)
