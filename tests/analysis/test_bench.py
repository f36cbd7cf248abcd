"""`opgraph bench`: which kernels a model runs (derived by hand from Llama-3-8B's shapes), and a clear line where
there is no torch or no GPU. The timing itself needs a GPU and is not run here."""

import json

import pytest

from userland import opgraph, python

from opgraph import Phase, models
from opgraph.analysis import bench
from opgraph.analysis.bench import kernels
from opgraph.core.model import Block, Model


def test_llama_kernels_at_one_size():
    build = models.get("llama-3-8b").build
    specs = kernels([build(Phase.prefill(1, 1024)), build(Phase.decode(1, 1024))])
    gemms = {dict(s.shape)["m"]: set() for s in specs if s.kind == "gemm"}
    for s in specs:
        if s.kind == "gemm":
            gemms[dict(s.shape)["m"]].add((dict(s.shape)["n"], dict(s.shape)["k"]))
    layer = {(4096, 4096), (1024, 4096), (14336, 4096), (4096, 14336)}  # q and o; k and v; gate and up; down
    assert gemms == {1024: layer, 1: layer | {(128256, 4096)}}  # lm_head sees one position per sequence
    attention = {(s.kind, s.shape) for s in specs if s.kind.endswith("attention")}
    assert attention == {
        ("prefill_attention", (("batch", 1), ("seq_len", 1024), ("heads", 32), ("kv_heads", 8), ("head_dim", 128))),
        ("decode_attention", (("batch", 1), ("context", 1024), ("heads", 32), ("kv_heads", 8), ("head_dim", 128)))}


def test_llama_norms_swiglu_and_embedding_at_one_size():
    """Llama-3-8B: hidden 4,096, intermediate 14,336, vocab 128,256. Prefill of 1,024 tokens normalizes them all
    in each layer and only the last position before lm_head; decode normalizes one."""
    build = models.get("llama-3-8b").build
    specs = kernels([build(Phase.prefill(1, 1024)), build(Phase.decode(1, 1024))])
    vector = [(s.kind, dict(s.shape)) for s in specs if not s.kind.endswith("attention") and s.kind != "gemm"]
    assert sorted(vector, key=str) == sorted([
        ("rms_norm", {"tokens": 1024, "hidden": 4096}), ("rms_norm", {"tokens": 1, "hidden": 4096}),
        ("silu_mul", {"tokens": 1024, "hidden": 14336}), ("silu_mul", {"tokens": 1, "hidden": 14336}),
        ("embedding", {"tokens": 1024, "vocab": 128256, "hidden": 4096}),
        ("embedding", {"tokens": 1, "vocab": 128256, "hidden": 4096})], key=str)
    assert all(s.dtype == "bf16" for s in specs)


def test_a_silu_that_no_multiply_consumes_is_not_swiglu():
    from opgraph.core.graph import GraphBuilder
    b = GraphBuilder(name="mlp")
    x = b.input("x", (8, 64))
    b.elementwise("act", "silu", x, out="y")
    model = Model("m", Phase.decode(8, 1), [Block("mlp", 1, b.build())])
    assert kernels([model]) == []


def test_mla_attention_is_not_passed_off_as_sdpa():
    build = models.get("deepseek-v2-lite").build
    specs = kernels([build(Phase.prefill(1, 64)), build(Phase.decode(1, 64))])
    assert specs and not any(s.kind.endswith("attention") for s in specs)


def test_what_bench_cannot_time_it_names_and_counts():
    build = models.get("deepseek-v2-lite").build
    # one MoE layer's w13 (gate, up) and w2 in each of the two phases; MLA's scores in each
    assert bench.left_out([build(Phase.prefill(1, 64)), build(Phase.decode(1, 64))]) == {
        "routed experts' GEMMs": 6, "attention of another value width (MLA)": 2}
    assert bench.left_out([models.get("llama-3-8b").build(Phase.decode(1, 64))]) == {}
    r = opgraph("bench", "qwen3-30b-a3b", "--dry-run", "--batch", "1", "--lengths", "64", "--format", "json")
    assert r.returncode == 0, r.stderr
    (left,) = json.loads(r.stdout)["not_timed"]
    assert (left["what"], left["ops"]) == ("routed experts' GEMMs", 6) and "fused-MoE call" in left["why"]
    text = opgraph("bench", "qwen3-30b-a3b", "--dry-run", "--batch", "1", "--lengths", "64").stdout
    assert "not timed: 6 routed experts' GEMMs" in text


def test_w8a8_gemms_are_named_as_not_timed_before_anything_is_measured():
    """Llama-3-8B under --weight-dtype fp8 (W8A8, as vLLM's --quantization fp8 runs it): each layer's seven GEMMs
    (q, k, v, o, gate, up, down) multiply in fp8, in prefill and in decode: 14 ops that torch's linear cannot run,
    said up front rather than refused mid-run; lm_head stays bf16 (engines keep it unquantized) and is timed."""
    r = opgraph("bench", "llama-3-8b", "--weight-dtype", "fp8", "--dry-run", "--batch", "1", "--lengths", "64",
                "--format", "json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    (left,) = out["not_timed"]
    assert (left["what"], left["ops"]) == ("ops in an 8- or 4-bit type", 14) and "W8A8" in left["why"]
    gemms = [(k["dtype"], k["m"], k["n"], k["k"]) for k in out["kernels"] if k["class"] == "gemm"]
    assert gemms == [("bf16", 1, 128256, 4096)]
    assert all(k["dtype"] == "bf16" for k in out["kernels"])


def test_dry_run_lists_without_measuring():
    r = opgraph("bench", "--dry-run", "--batch", "1", "--lengths", "1024", "--format", "json")
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)["kernels"]
    # 11 GEMM and attention kernels, and a norm, a SwiGLU and a lookup in each phase
    assert len(listed) == 17 and all(k["time_us"] is None for k in listed)


def test_without_torch_it_says_how_to_install(tmp_path):
    code = ("import sys; sys.modules['torch'] = None\nfrom opgraph.cli import main\n"
            f"sys.exit(main(['bench', '--batch', '1', '--lengths', '16', '--out', {str(tmp_path / 'm.csv')!r}]))")
    r = python(code)
    assert r.returncode == 2 and 'pip install "opgraph[gpu]"' in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not (tmp_path / "m.csv").exists()


class FakeTorch:
    """Just enough of torch.cuda for measure's control flow on a CPU: every replay or call takes a fixed time."""

    __version__ = "fake"

    def __init__(self, capturable=True):
        self.capturable, self.launched, self.clock = capturable, 0, 0.0
        fake = self

        class Event:
            def __init__(self, enable_timing=False):
                self.t = None

            def record(self):
                self.t = fake.clock

            def elapsed_time(self, end):
                return (end.t - self.t) * 1e3  # milliseconds, as torch gives them

        class Graph:
            def replay(self):
                fake.clock += fake.calls_in_graph * 2e-6  # a replay: no launch gaps, 2 us a call

        class Capture:
            def __init__(self, graph):
                pass

            def __enter__(self):
                if not fake.capturable:
                    raise RuntimeError("operation not permitted when stream is capturing")
                fake.capturing, fake.calls_in_graph = True, 0

            def __exit__(self, *exc):
                fake.capturing = False

        class Stream:
            def wait_stream(self, other):
                pass

        class Context:
            def __init__(self, stream):
                pass

            def __enter__(self):
                pass

            def __exit__(self, *exc):
                pass

        self.capturing, self.calls_in_graph = False, 0
        self.cuda = type("cuda", (), dict(
            Event=Event, CUDAGraph=Graph, graph=Capture, Stream=Stream, stream=Context,
            current_stream=staticmethod(lambda: Stream()), synchronize=staticmethod(lambda: None),
            is_available=staticmethod(lambda: True), get_device_name=staticmethod(lambda: "Fake GPU")))

    def run(self):
        if self.capturing:
            self.calls_in_graph += 1
        else:
            self.launched += 1
            self.clock += 5e-6  # a call launched alone: 5 us with its launch gap


def test_measure_replays_a_cuda_graph_of_the_calls_and_reports_per_call(monkeypatch):
    fake = FakeTorch()
    monkeypatch.setattr(bench, "_torch", lambda: fake)
    monkeypatch.setattr(bench, "_kernel", lambda torch, spec: fake.run)
    spec = bench.KernelSpec("rms_norm", "bf16", (("tokens", 8), ("hidden", 4096)))
    (row,) = bench.measure([spec], repeats=3, calls=10, warmup=2)
    assert row["time_us"] == 2.0  # 10 calls in 20 us of replay
    assert "a CUDA graph of 10 calls" in row["source"] and "Fake GPU" in row["source"]
    assert fake.launched == 3  # the warm-ups and the side-stream warm-up capture wants, never the timed calls
    assert {k: row[k] for k in ("class", "dtype", "tokens", "hidden")} == {
        "class": "rms_norm", "dtype": "bf16", "tokens": 8, "hidden": 4096}


def test_a_kernel_that_cannot_be_captured_is_timed_call_by_call_and_says_so(monkeypatch):
    fake = FakeTorch(capturable=False)
    monkeypatch.setattr(bench, "_torch", lambda: fake)
    monkeypatch.setattr(bench, "_kernel", lambda torch, spec: fake.run)
    (row,) = bench.measure([bench.KernelSpec("gemm", "bf16", (("m", 1), ("n", 8), ("k", 8)))], repeats=3, calls=10)
    assert row["time_us"] == 5.0 and "not capturable" in row["source"]


def test_the_prepared_device_run_lists_its_kernels_without_a_gpu(tmp_path):
    """benchmarks/device_check.sh, the one command a session lent a GPU runs, with DRY=1: it runs opgraph from a copy
    of the checkout (no install) and lists llama-3-8b's kernels at batches 1, 8, 32, 128 and lengths 1,024, 4,096."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).parents[2]
    env = {"PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]), "DRY": "1",
           "OUT": str(tmp_path / "out"), "HOME": str(tmp_path)}
    r = subprocess.run(["sh", str(root / "benchmarks" / "device_check.sh")], cwd=root, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    listed = (tmp_path / "out" / "bench.txt").read_text()
    # by hand: prefill runs b x L tokens, decode b; distinct token counts b x L: 1,024, 4,096, 8,192, 32,768,
    # 131,072, 524,288 (8 x 4,096 = 32 x 1,024; 32 x 4,096 = 128 x 1,024) and b: 1, 8, 32, 128, ten in all
    tokens = {b * n for b in (1, 8, 32, 128) for n in (1024, 4096)} | {1, 8, 32, 128}
    gemms = 4 * len(tokens) + 4  # q/o, k/v, gate/up, down at every token count; lm_head at b (the last position)
    pairs = 8  # (b, L): one prefill and one decode attention each
    count = gemms + 3 * len(tokens) + 2 * pairs  # rms_norm, silu_mul and embedding at every token count
    assert len(tokens) == 10 and count == 90
    assert listed.startswith(f"dry run: {count} kernels of llama-3-8b would be measured")
    assert "batch 128, context 4,096" in listed
    # the vector sweep (benchmarks/measure_vector_kernels.py): 16 token counts at each of 5 RMSNorm, 5 add + RMSNorm,
    # 6 SiLU x mul, 5 rope and 3 embedding widths, and RMSNorm of 128-wide heads at 32 heads a token: 25 x 16
    vectors = (tmp_path / "out" / "vectors.txt").read_text().splitlines()
    assert vectors[-1] == f"{(5 + 5 + 6 + 5 + 3 + 1) * 16} kernels"
    assert vectors[0] == "rms_norm tokens 16,384, hidden 2,048"  # most tokens first: what the kernel is compiled at
    assert "rms_norm tokens 524,288, hidden 128" in vectors
    assert "rope tokens 1, heads 8, kv_heads 1, head_dim 128" in vectors


def test_each_kernel_runs_on_real_torch_where_it_is_installed():
    """Where torch is installed (not in CI: it is the optional gpu extra), every kind of kernel bench builds runs on
    the CPU with its shape: the same torch calls it makes on a GPU (torch.compile for the norms, SwiGLU, rope and
    embeddings); add + RMSNorm returns the sum and its norm, rope the rotated queries and keys side by side."""
    torch = pytest.importorskip("torch")
    specs = [bench.KernelSpec("gemm", "fp32", (("m", 3), ("n", 5), ("k", 8))),
             bench.KernelSpec("prefill_attention", "fp32", (("batch", 1), ("seq_len", 4), ("heads", 4), ("kv_heads", 2),
                                                            ("head_dim", 8))),
             bench.KernelSpec("decode_attention", "fp32", (("batch", 2), ("context", 6), ("heads", 4), ("kv_heads", 2),
                                                           ("head_dim", 8))),
             bench.KernelSpec("rms_norm", "fp32", (("tokens", 3), ("hidden", 16))),
             bench.KernelSpec("layer_norm", "fp32", (("tokens", 3), ("hidden", 16))),
             bench.KernelSpec("silu_mul", "fp32", (("tokens", 3), ("hidden", 16))),
             bench.KernelSpec("embedding", "fp32", (("tokens", 3), ("vocab", 10), ("hidden", 16))),
             bench.KernelSpec("rope", "fp32", (("tokens", 3), ("heads", 4), ("kv_heads", 2), ("head_dim", 8)))]
    shapes = [tuple(bench._kernel(torch, s, dev="cpu")().shape) for s in specs]
    assert shapes == [(3, 5), (1, 4, 4, 8), (2, 4, 1, 8), (3, 16), (3, 16), (3, 16), (3, 16), (3, 48)]
    total, normed = bench._kernel(torch, bench.KernelSpec("add_rms_norm", "fp32", (("tokens", 3), ("hidden", 16))),
                                  dev="cpu")()
    assert total.shape == normed.shape == (3, 16)


def _measure_steps():
    import importlib.util
    from pathlib import Path
    path = Path(__file__).parents[2] / "benchmarks" / "measure_steps.py"
    spec = importlib.util.spec_from_file_location("measure_steps", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_measured_step_needs_the_models_weights_and_its_kv_cache():
    """Llama-3-8B: 8,030,261,248 parameters, of which 32 x 2 + 1 norm scales of 4,096 are not in the matrices the
    step multiplies by; its KV cache holds 32 layers x K and V x 8 KV heads x 128 per token, bf16."""
    steps = _measure_steps()
    s = steps.layer_shapes(models.get("llama-3-8b"), tiny=False)
    matrices = 8_030_261_248 - (32 * 2 + 1) * 4096
    assert steps.step_bytes(s, 8, 1024) == 2 * (matrices + 32 * 2 * 8 * 1025 * 8 * 128)


def test_the_step_runs_on_real_torch_where_it_is_installed(tmp_path):
    pytest.importorskip("torch")
    steps = _measure_steps()
    out = tmp_path / "steps.csv"
    assert steps.main(["--device", "cpu", "--tiny", "--batch", "1,2", "--context", "8", "--calls", "1",
                       "--repeats", "1", "--out", str(out)]) == 0
    rows = out.read_text().splitlines()
    assert rows[0] == "model,gpu,batch,context,step_us,how" and [r.split(",")[2:4] for r in rows[1:]] == [
        ["1", "8"], ["2", "8"]]
    with pytest.raises(SystemExit, match="gpt2 is not a Llama-style model"):
        steps.main(["--model", "gpt2", "--device", "cpu", "--tiny"])
