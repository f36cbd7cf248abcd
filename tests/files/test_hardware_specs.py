"""Acceptance tests: the shipped hardware specs against the reference table, the other shipped specs,
user spec files and their errors."""

import re

import attrs
import pytest

from opgraph import hardware
from opgraph import models
from opgraph import FP16, OpgraphError, Phase, analyze, strategy

# The reference's hardware table (roofline-prefill-decode.md): dense bf16/fp16 TFLOP/s, GB/s, FLOP/byte.
TABLE = {
    "h100-sxm": (989, 3350, 295),
    "h100-pcie": (756, 2000, 378),
    "a100-sxm": (312, 2039, 153),
    "a100-pcie": (312, 1555, 201),
    "l40s": (362, 864, 419),
    "a10": (125, 600, 208),
    "v100": (125, 900, 139),  # fp16: V100 has no bf16
}
OTHERS = ("h200", "b200", "mi300x", "l4")
# GPUs of 2025-26 (issue 16): dense fp4 TFLOP/s where the datasheet gives one (None: no fp4 path)
TODAY = {"b300": 13125, "gb200": 10000, "gb300": 15000, "h20": None, "mi325x": None, "mi355x": 10066,
         "rtx-pro-6000": 2000}


@pytest.mark.parametrize("name", sorted(TABLE))
def test_reference_table(name):
    # Each GPU's matrix rate and bandwidth are the table's figures, and their ratio rounds to its ridge.
    tflops, gbps, ridge = TABLE[name]
    hw = hardware.load(name)
    dt = "fp16" if name == "v100" else "bf16"
    rate = hw.matrix_flops[dt]
    assert rate == pytest.approx(tflops * 1e12, rel=1e-12)
    assert hw.bandwidth == pytest.approx(gbps * 1e9, rel=1e-12)
    assert round(rate / hw.bandwidth) == ridge
    assert round(tflops * 1e12 / (gbps * 1e9)) == ridge  # the table is self-consistent
    assert hw.name == name


def test_v100_has_no_bf16_rate():
    # Volta tensor cores do fp16 only.
    assert "bf16" not in hardware.load("v100").matrix_flops


@pytest.mark.parametrize("name", OTHERS)
def test_other_shipped_specs(name):
    # Specs beyond the reference table exist, cite a datasheet and have usable bf16 rate and bandwidth.
    assert name in hardware.names()
    hw = hardware.load(name)
    assert hw.source.strip()
    assert re.search(r"data ?sheet", hw.source, re.IGNORECASE)
    assert hw.matrix_flops["bf16"] > 0
    assert hw.bandwidth > 0
    assert hw.name == name


def test_all_shipped_names():
    # The eleven shipped GPUs are all listed.
    assert set(TABLE) | set(OTHERS) | set(TODAY) <= set(hardware.names())


@pytest.mark.parametrize("name", sorted(TODAY))
def test_todays_specs(name):
    # Each cites a datasheet, has a bandwidth and capacity, and an fp4 rate exactly where the datasheet gives one.
    hw = hardware.load(name)
    assert hw.name == name
    assert re.search(r"data ?sheet", hw.source, re.IGNORECASE)
    assert hw.bandwidth > 0 and hw.capacity > 0
    fp4 = TODAY[name]
    assert hw.matrix_flops.get("fp4") == (None if fp4 is None else pytest.approx(fp4 * 1e12))
    assert hw.matrix_flops["bf16"] > 0


def test_rtx_pro_6000_tensor_rates_are_its_fp4_peak_in_nvidia_s_ratio():
    # aiconfigurator-core 0.12.0's systems/rtx_pro_6000_server.yaml (NVIDIA): bf16 467.8, fp8 and int8 935.6, fp4
    # 1,871.2 TFLOPS at its 2,430 MHz clock; the spec keeps the 4,000-TOPS sparse datasheet peak, 2,000 dense
    rates = hardware.load("rtx-pro-6000").matrix_flops
    nvidia = {"bf16": 467.8, "fp8": 935.6, "int8": 935.6, "fp4": 1871.2}
    for dtype, tflops in nvidia.items():
        assert rates[dtype] / rates["fp4"] == pytest.approx(tflops / nvidia["fp4"], rel=1e-4)
    assert rates["fp4"] == pytest.approx(4000e12 / 2) and rates["fp16"] == rates["bf16"]


def test_b200_fp4_is_half_the_sparse_datasheet_figure():
    assert hardware.load("b200").matrix_flops["fp4"] == pytest.approx(18000e12 / 2)


@pytest.mark.parametrize("name", ["gb200", "gb300"])
def test_nvl72_is_one_nvlink_domain_of_72(name):
    link = hardware.load(name).interconnect
    assert link.name == "NVLink 5" and link.gpus_per_node == 72


def test_fp4_rate_in_a_user_spec(tmp_path):
    # fp4 (the operand type of NVFP4 and MXFP4 weights and activations) is a matrix dtype a spec may rate
    hw = hardware.load(str(write(tmp_path, spec_text(matrix={"bf16": "500", "fp4": "2000"}))))
    assert hw.matrix_flops["fp4"] == pytest.approx(2000e12)


# -- user spec files ---------------------------------------------------------------------------------

FIELDS = {
    "name": '"my-gpu"',
    "display_name": '"My GPU 80GB"',
    "memory_bandwidth_GB_per_s": "2000",
    "memory_capacity_GB": "80",
    "vector_TFLOP_per_s": "50",
    "source": '"a made-up datasheet"',
}
MATRIX = {"bf16": "500", "fp8": "1000"}


def spec_text(fields=FIELDS, matrix=MATRIX):
    lines = [f"{k} = {v}" for k, v in fields.items()]
    if matrix is not None:
        lines.append("[matrix_TFLOP_per_s]")
        lines += [f"{k} = {v}" for k, v in matrix.items()]
    return "\n".join(lines) + "\n"


def write(tmp_path, text, name="gpu.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_user_spec_loads_by_path(tmp_path):
    # A user's own TOML file loads by path with its figures scaled to FLOP/s and bytes/s.
    p = write(tmp_path, spec_text())
    hw = hardware.load(str(p))
    assert hw.name == "my-gpu"
    assert hw.matrix_flops["bf16"] == pytest.approx(500e12)
    assert hw.matrix_flops["fp8"] == pytest.approx(1000e12)
    assert hw.bandwidth == pytest.approx(2000e9)
    # a datasheet's memory "GB" is binary: an "80GB" H100 reports 81,559 MiB to CUDA, a 141 GB H200 143,771 MiB
    assert hw.capacity == 80 * 2**30
    assert hw.vector_flops == pytest.approx(50e12)
    assert hw.ridge(models.get("llama-3-8b").dtype) == pytest.approx(250)


def test_user_spec_is_usable_for_analysis(tmp_path):
    # A loaded spec drives the roofline: a decode step's memory time is its bytes over the file's 2000 GB/s.
    hw = hardware.load(str(write(tmp_path, spec_text())))
    res = analyze(models.get("llama-3-8b").build(Phase.decode(1, 16)), strategy("fused"), hw)
    assert res.totals.memory_s == pytest.approx(res.totals.traffic.bytes / 2000e9, rel=1e-9)


def assert_spec_error(path, word):
    """Loading `path` fails with an OpgraphError that names the file and `word`."""
    with pytest.raises(OpgraphError) as e:
        hardware.load(str(path))
    assert str(path) in str(e.value)
    assert word in str(e.value)



@pytest.mark.parametrize("missing", [*FIELDS, "matrix_TFLOP_per_s"])
def test_missing_field(tmp_path, missing):
    # Every field is required; the error names the file and the missing field.
    fields = {k: v for k, v in FIELDS.items() if k != missing}
    p = write(tmp_path, spec_text(fields, None if missing == "matrix_TFLOP_per_s" else MATRIX))
    assert_spec_error(p, missing)


@pytest.mark.parametrize("key", ["bf17", "float16", "fp6", "nvfp4"])
def test_unknown_dtype_key(tmp_path, key):
    # A matrix rate for a dtype the tool does not know is a typo to report, not to ignore.
    p = write(tmp_path, spec_text(matrix={"bf16": "500", key: "100"}))
    assert_spec_error(p, key)


@pytest.mark.parametrize("field,value", [
    ("matrix_TFLOP_per_s.bf16", "0"),
    ("matrix_TFLOP_per_s.bf16", "-5"),
    ("memory_bandwidth_GB_per_s", "0"),
    ("memory_bandwidth_GB_per_s", "-3350"),
    ("vector_TFLOP_per_s", "0"),
    ("memory_capacity_GB", "-1"),
])
def test_non_positive_rate(tmp_path, field, value):
    # Rates, bandwidth and capacity must be positive; the error names the file and the field.
    fields, matrix = dict(FIELDS), dict(MATRIX)
    if field.startswith("matrix_TFLOP_per_s."):
        matrix[field.split(".", 1)[1]] = value
    else:
        fields[field] = value
    p = write(tmp_path, spec_text(fields, matrix))
    assert_spec_error(p, field)


@pytest.mark.parametrize("text", ['name = "unterminated\n', "name = = 3\n", "[matrix_TFLOP_per_s\nbf16 = 1\n"])
def test_invalid_toml(tmp_path, text):
    # A file that is not TOML at all is reported with its path.
    p = write(tmp_path, text)
    assert_spec_error(p, "TOML")


def test_missing_spec_file(tmp_path):
    # A path to a file that does not exist is reported with that path.
    p = tmp_path / "nope.toml"
    with pytest.raises(OpgraphError) as e:
        hardware.load(str(p))
    assert str(p) in str(e.value)


def test_unknown_hardware_name_lists_valid_names():
    # A misspelt GPU name tells the user every valid name.
    with pytest.raises(OpgraphError) as e:
        hardware.load("h100-sxm6")
    msg = str(e.value)
    assert "h100-sxm6" in msg
    for name in [*TABLE, *OTHERS]:
        assert name in msg


# -- dtype support -----------------------------------------------------------------------------------

def test_bf16_model_on_v100_is_refused():
    # V100 has no bf16 matrix path: analysing the bf16 Llama on it is an error naming bf16 and what it has (fp16).
    model = models.get("llama-3-8b").build(Phase.decode(1, 16))
    with pytest.raises(OpgraphError) as e:
        analyze(model, strategy("fused"), hardware.load("v100"))
    assert "bf16" in str(e.value)
    assert "fp16" in str(e.value)


def test_fp16_model_on_v100_uses_the_fp16_rate():
    # Control: the same model in fp16 runs on V100 at its 125 TFLOP/s fp16 tensor rate.
    cfg = attrs.evolve(models.get("llama-3-8b"), dtype=FP16)
    res = analyze(cfg.build(Phase.prefill(1, 64)), strategy("fused"), hardware.load("v100"))
    [layer] = [b for b in res.blocks if b.name == "layer"]
    [q] = [o for o in layer.ops if o.name == "q_proj"]
    assert q.cost.compute_s == pytest.approx(2 * 64 * 4096 * 4096 / 125e12, rel=1e-12)


@pytest.mark.parametrize("value", ["0", "1.5", "-132", '"132"'])
def test_sms_must_be_a_positive_integer(tmp_path, value):
    assert_spec_error(write(tmp_path, spec_text({**FIELDS, "sms": value})), "sms")


def test_sms_is_optional_and_read_as_given(tmp_path):
    assert hardware.load(str(write(tmp_path, spec_text()))).sms is None
    assert hardware.load(str(write(tmp_path, spec_text({**FIELDS, "sms": "132"})))).sms == 132
    # the whitepapers' counts: H100 SXM5 132 and PCIe 114 SMs, A100 108
    assert [hardware.load(n).sms for n in ("h100-sxm", "h100-pcie", "a100-sxm")] == [132, 114, 108]


def test_every_shipped_spec_names_its_maker_as_its_display_name_does():
    for name in hardware.names():
        hw = hardware.load(name)
        assert hw.vendor == hw.display_name.split()[0].lower(), name


def test_vendor_is_optional_and_one_of_the_known_makers(tmp_path):
    assert hardware.load(str(write(tmp_path, spec_text()))).vendor == ""
    assert hardware.load(str(write(tmp_path, spec_text({**FIELDS, "vendor": '"amd"'})))).vendor == "amd"
    assert_spec_error(write(tmp_path, spec_text({**FIELDS, "vendor": '"AMD Instinct"'})), "vendor")


def test_tensorrt_llm_is_refused_on_an_amd_gpu_and_served_on_a_spec_that_names_no_maker(tmp_path):
    from userland import opgraph
    args = ("--engine", "trtllm", "--concurrency", "4", "--prompt", "128", "--output", "16")
    r = opgraph("serve", "llama-3-8b", "--hardware", "mi300x", *args)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "NVIDIA GPUs only" in r.stderr and "mi300x" in r.stderr and "--engine vllm or sglang" in r.stderr
    assert opgraph("serve", "llama-3-8b", "--hardware", "mi300x", *args[2:]).returncode == 0  # vLLM runs on ROCm
    mine = write(tmp_path, spec_text({**FIELDS, "memory_capacity_GB": "192"}))
    assert opgraph("serve", "llama-3-8b", "--hardware", str(mine), *args).returncode == 0
