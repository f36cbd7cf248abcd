"""PyTorch profiler traces read as measurements (opgraph.files.profiles).

The traces are built here event by event in the format `prof.export_chrome_trace` writes (the field names and
argument layout of a torch 2.13 trace recorded with record_shapes=True, the GPU events as Kineto writes a CUDA
kernel); every expected value is read off the events written below: a shape from its "Input Dims", a time from
the "dur" of the kernels, in microseconds."""

import gzip
import json
import re

import pytest
from userland import opgraph

from opgraph.errors import OpgraphError
from opgraph.files import measurements, profiles

BF16, FP16, F32, FP8 = "c10::BFloat16", "c10::Half", "float", "c10::Float8_e4m3fn"
PID, TID, STREAM = 4242, 4242, 7


class Trace:
    """Events of one profiled CPU thread, its CUDA launches, and the kernels on one stream."""

    def __init__(self):
        self.events = [{"name": "process_name", "ph": "M", "ts": 0.0, "pid": PID, "tid": 0, "args": {"name": "python"}},
                       {"name": "thread_name", "ph": "M", "ts": 0.0, "pid": PID, "tid": TID,
                        "args": {"name": "thread 4242 (python)"}}]
        self.ext = 0
        self.correlation = 100

    def op(self, name, ts, dur, dims, types, concrete=None):
        """A cpu_op; returns its External id."""
        self.ext += 1
        args = {"External id": self.ext, "Record function id": 0}
        if dims is not None:  # None: profiled without record_shapes
            args.update({"Concrete Inputs": concrete or ["" for _ in dims], "Input type": types,
                         "Input Strides": [[] for _ in dims], "Input Dims": dims})
        if concrete is False:  # a torch that records no scalar values
            del args["Concrete Inputs"]
        self.events.append({"ph": "X", "cat": "cpu_op", "name": name, "pid": PID, "tid": TID, "ts": ts, "dur": dur,
                            "args": args})
        return self.ext

    def kernel(self, ext, launch_ts, dur, name="void gemm_kernel<...>(...)", cat="kernel"):
        """cudaLaunchKernel inside the op at launch_ts, its flow arrow, and the kernel, as Kineto links them."""
        self.correlation += 1
        c, start = self.correlation, launch_ts + 1000.0
        linked = {} if ext is None else {"External id": ext}  # Kineto leaves it out for a kernel no op launched
        self.events += [
            {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": PID, "tid": TID, "ts": launch_ts,
             "dur": 3.5, "args": {**linked, "cbid": 211, "correlation": c}},
            {"ph": "s", "id": c, "pid": PID, "tid": TID, "ts": launch_ts, "cat": "ac2g", "name": "ac2g"},
            {"ph": "X", "cat": cat, "name": name, "pid": 0, "tid": STREAM, "ts": start, "dur": dur,
             "args": {**linked, "queued": 0, "device": 0, "context": 1, "stream": STREAM, "correlation": c,
                      "registers per thread": 168, "shared memory": 98304, "grid": [132, 1, 1],
                      "block": [384, 1, 1]}},
            {"ph": "f", "id": c, "pid": 0, "tid": STREAM, "ts": start, "cat": "ac2g", "name": "ac2g", "bp": "e"}]

    def document(self):
        return {"schemaVersion": 1, "deviceProperties": [{"id": 0, "name": "NVIDIA H100 80GB HBM3"}],
                "record_shapes": 1, "displayTimeUnit": "ms", "baseTimeNanoseconds": 1700000000000000000,
                "traceEvents": self.events + [{"ph": "X", "cat": "Trace", "name": "PyTorch Profiler (0)",
                                               "pid": "Spans", "tid": "PyTorch Profiler", "ts": 0.0, "dur": 9e5,
                                               "args": {"Op count": 0}}]}

    def write(self, path):
        text = json.dumps(self.document())
        path.write_bytes(gzip.compress(text.encode()) if path.name.endswith(".gz") else text.encode())
        return path


def sdpa(t, ts, q, k, causal, kernel_us):
    """F.scaled_dot_product_attention on CUDA: the public op, the flash op inside it, the kernel wrapper inside
    that, which launches the kernel."""
    outer = t.op("aten::scaled_dot_product_attention", ts, 60.0, [q, k, k, [], [], [], [], []],
                 [BF16, BF16, BF16, "", "Scalar", "Scalar", "", "Scalar"], ["", "", "", "", "0.", causal, "", "True"])
    t.op("aten::_scaled_dot_product_flash_attention", ts + 2, 55.0, [q, k, k, [], [], [], []],
         [BF16, BF16, BF16, "Scalar", "Scalar", "Scalar", ""], ["", "", "", "0.", causal, "False", ""])
    inner = t.op("aten::_flash_attention_forward", ts + 5, 45.0, [q, k, k] + [[]] * 8, [BF16] * 3 + [""] * 8)
    t.kernel(inner, ts + 20, kernel_us, name="void pytorch_flash::flash_fwd_kernel<...>(...)")
    return outer


def model_step():
    """A linear (addmm inside it), an mm of two kernels, a causal prefill, a decode step and an add."""
    t = Trace()
    t.op("aten::linear", 1000.0, 80.0, [[4, 128, 4096], [11008, 4096], [11008]], [BF16, BF16, BF16])
    t.op("aten::t", 1005.0, 6.0, [[11008, 4096]], [BF16])
    t.op("aten::view", 1012.0, 4.0, [[4, 128, 4096], []], [BF16, "ScalarList"], ["", "[512, 4096]"])
    addmm = t.op("aten::addmm", 1020.0, 50.0, [[11008], [512, 4096], [4096, 11008], [], []],
                 [BF16, BF16, BF16, "Scalar", "Scalar"], ["", "", "", "1", "1"])
    t.kernel(addmm, 1040.0, 412.375)
    mm = t.op("aten::mm", 2000.0, 40.0, [[16, 8192], [8192, 1024]], [BF16, BF16])
    t.kernel(mm, 2010.0, 6.5, name="void splitKreduce_kernel<...>(...)")
    t.kernel(mm, 2020.0, 3.25)
    sdpa(t, 3000.0, [2, 32, 2048, 128], [2, 8, 2048, 128], "True", 950.5)
    sdpa(t, 4000.0, [8, 32, 1, 128], [8, 8, 1024, 128], "False", 21.75)
    add = t.op("aten::add", 5000.0, 9.0, [[4, 128, 11008], [4, 128, 11008], []], [BF16, BF16, "Scalar"])
    t.kernel(add, 5004.0, 11.0, name="void at::native::vectorized_elementwise_kernel<...>(...)")
    return t


def test_each_mapped_call_is_one_measurement_with_the_shapes_and_summed_kernel_times(tmp_path):
    got = profiles.read(model_step().write(tmp_path / "trace.json"))
    assert [(m.kind, m.dtype, m.shape) for m in got] == [
        ("gemm", "bf16", {"m": 4 * 128, "n": 11008, "k": 4096}),
        ("gemm", "bf16", {"m": 16, "n": 1024, "k": 8192}),
        ("prefill_attention", "bf16", {"batch": 2, "seq_len": 2048, "heads": 32, "kv_heads": 8, "head_dim": 128}),
        ("decode_attention", "bf16", {"batch": 8, "context": 1023, "heads": 32, "kv_heads": 8, "head_dim": 128})]
    assert [m.time_s for m in got] == pytest.approx([412.375e-6, (6.5 + 3.25) * 1e-6, 950.5e-6, 21.75e-6],
                                                    rel=1e-12)
    assert [m.source for m in got] == ["torch trace: aten::linear", "torch trace: aten::mm",
                                       "torch trace: aten::scaled_dot_product_attention",
                                       "torch trace: aten::scaled_dot_product_attention"]
    assert got[0].row == 3  # the linear is the third event, after the two metadata events


def test_summary_counts_the_mapped_calls_and_names_the_skipped_add(tmp_path):
    path = model_step().write(tmp_path / "trace.json")
    assert profiles.summary(path) == {
        "mapped": {"aten::scaled_dot_product_attention": 2, "aten::linear": 1, "aten::mm": 1},
        "skipped": {"aten::add": 1}}
    measured, skipped = profiles.scan(path)
    assert len(measured) == 4 and skipped == {"aten::add": 1}


def test_the_outermost_recognized_op_is_mapped_and_its_kernels_count_once(tmp_path):
    """An unrecognized wrapper (an autograd node) is looked into; a linear's own mm is not mapped again."""
    t = Trace()
    t.op("autograd::engine::evaluate_function: MmBackward0", 100.0, 90.0, [], [])
    t.op("aten::linear", 110.0, 70.0, [[64, 1024], [2048, 1024]], [FP16, FP16])
    t.op("aten::matmul", 115.0, 60.0, [[64, 1024], [1024, 2048]], [FP16, FP16])
    mm = t.op("aten::mm", 120.0, 50.0, [[64, 1024], [1024, 2048]], [FP16, FP16])
    t.kernel(mm, 130.0, 7.0)
    copy = t.op("aten::copy_", 172.0, 3.0, [[64, 2048], [64, 2048], []], [FP16, FP16, "Scalar"])
    t.kernel(copy, 173.0, 1.5, name="void at::native::elementwise_kernel<...>(...)")
    [m] = profiles.read(t.write(tmp_path / "t.json"))
    assert (m.kind, m.dtype, m.shape, m.source) == ("gemm", "fp16", {"m": 64, "n": 2048, "k": 1024},
                                                    "torch trace: aten::linear")
    assert m.time_s == pytest.approx((7.0 + 1.5) * 1e-6, rel=1e-12)  # the copy ran inside the linear


def test_a_kernel_listed_before_its_op_still_counts(tmp_path):
    t = Trace()
    mm = t.op("aten::mm", 100.0, 20.0, [[8, 4096], [4096, 4096]], [BF16, BF16])
    t.kernel(mm, 105.0, 14.0)
    t.events = t.events[:2] + t.events[3:] + [t.events[2]]
    [m] = profiles.read(t.write(tmp_path / "t.json"))
    assert m.time_s == pytest.approx(14e-6)


def test_gemm_variants_fp8_scaled_mm_and_a_plain_matmul_and_bmm(tmp_path):
    t = Trace()
    a = t.op("aten::_scaled_mm", 100.0, 10.0, [[16, 4096], [4096, 8192], [], [], [], [], [], []],
             [FP8, FP8, F32, F32, "", "", "Scalar", "Scalar"])
    t.kernel(a, 101.0, 5.0)
    b = t.op("aten::matmul", 200.0, 10.0, [[2, 7, 512], [512, 256]], [F32, F32])
    t.kernel(b, 201.0, 2.0)
    c = t.op("aten::bmm", 300.0, 10.0, [[1, 32, 128], [1, 128, 64]], [BF16, BF16])
    t.kernel(c, 301.0, 1.0)
    got = profiles.read(t.write(tmp_path / "t.json"))
    assert [(m.dtype, m.shape) for m in got] == [("fp8", {"m": 16, "n": 8192, "k": 4096}),
                                                 ("fp32", {"m": 14, "n": 256, "k": 512}),
                                                 ("bf16", {"m": 32, "n": 64, "k": 128})]


def test_calls_that_do_not_fit_a_class_are_skipped_with_the_reason(tmp_path):
    t = Trace()
    sdpa(t, 1000.0, [1, 32, 512, 128], [1, 32, 512, 128], "False", 40.0)  # not causal
    mask = t.op("aten::scaled_dot_product_attention", 2000.0, 30.0, [[1, 8, 64, 64], [1, 8, 64, 64],
                [1, 8, 64, 64], [1, 1, 64, 64], [], [], [], []], [BF16] * 4 + ["Scalar"] * 2 + ["", "Scalar"],
                ["", "", "", "", "0.", "False", "", "False"])
    t.kernel(mask, 2005.0, 9.0)
    old = t.op("aten::scaled_dot_product_attention", 3000.0, 30.0, [[1, 8, 64, 64]] * 3 + [[]] * 4,
               [BF16] * 3 + [""] * 4, False)
    t.kernel(old, 3005.0, 9.0)
    bmm = t.op("aten::bmm", 4000.0, 20.0, [[32, 64, 128], [32, 128, 64]], [BF16, BF16])
    t.kernel(bmm, 4005.0, 4.0)
    scores = t.op("aten::matmul", 5000.0, 20.0, [[1, 8, 64, 64], [1, 8, 64, 64]], [BF16, BF16])
    t.kernel(scores, 5005.0, 4.0)
    mixed = t.op("aten::mm", 6000.0, 20.0, [[16, 64], [64, 64]], [BF16, F32])
    t.kernel(mixed, 6005.0, 4.0)
    unshaped = t.op("aten::mm", 7000.0, 20.0, None, None)
    t.kernel(unshaped, 7005.0, 4.0)
    measured, skipped = profiles.scan(t.write(tmp_path / "t.json"))
    assert measured == []
    assert skipped == {"aten::scaled_dot_product_attention (not causal)": 1,
                       "aten::scaled_dot_product_attention (a mask tensor)": 1,
                       "aten::scaled_dot_product_attention (is_causal not recorded (a newer torch records it))": 1,
                       "aten::bmm (a batched product)": 1, "aten::matmul (not a 2-D weight product)": 1,
                       "aten::mm (operand types c10::BFloat16/float)": 1,
                       "aten::mm (no Input Dims: profile with record_shapes=True)": 1}


def test_a_trace_where_nothing_maps_lists_what_it_found(tmp_path):
    t = Trace()
    for i in range(3):
        t.kernel(t.op("aten::add", 100.0 * (i + 1), 9.0, [[4, 4], [4, 4], []], [BF16, BF16, "Scalar"]),
                 100.0 * (i + 1) + 1, 2.0)
    t.kernel(None, 900.0, 5.0)  # a kernel no op launched (a CUDA graph replay, say)
    path = t.write(tmp_path / "t.json")
    with pytest.raises(OpgraphError, match=r"t\.json: no kernel maps to a measured class; found aten::add x3, "
                                           r"\(GPU work launched outside any cpu_op\) x1$"):
        profiles.read(path)


def test_a_cpu_only_trace_says_to_profile_cuda(tmp_path):
    t = Trace()
    t.op("aten::mm", 100.0, 20.0, [[8, 64], [64, 64]], [F32, F32])
    with pytest.raises(OpgraphError, match=r"t\.json: no GPU kernels in the trace; profile with activities="):
        profiles.read(t.write(tmp_path / "t.json"))
    assert profiles.summary(tmp_path / "t.json") == {"mapped": {}, "skipped": {"aten::mm (no GPU kernel)": 1}}


def test_measurements_read_dispatches_json_and_json_gz_to_the_trace_reader(tmp_path):
    for name in ("trace.json", "trace.json.gz", "TRACE.JSON"):
        got = measurements.read(model_step().write(tmp_path / name))
        assert [m.kind for m in got] == ["gemm", "gemm", "prefill_attention", "decode_attention"]
    (tmp_path / "m.csv").write_text("class,dtype,m,n,k,time_us\ngemm,bf16,1,4096,4096,20\n")
    assert measurements.read(tmp_path / "m.csv")[0].source == ""


def test_validate_reads_a_trace_end_to_end(tmp_path):
    path = model_step().write(tmp_path / "trace.json")
    r = opgraph("validate", str(path), "--hardware", "h100-sxm", "--format", "json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["rows"]
    assert [row["class"] for row in rows] == ["gemm", "gemm", "prefill_attention", "decode_attention"]
    assert [row["measured_s"] for row in rows] == pytest.approx([412.375e-6, 9.75e-6, 950.5e-6, 21.75e-6])
    assert rows[3]["context"] == 1023
    # the residual add launched GPU work but maps to no class: said, not dropped in silence
    assert json.loads(r.stdout)["notes"] == ["1 traced call with GPU work maps to no measured class and is left "
                                             "out: aten::add x1"]


def bad(tmp_path, name, content: bytes):
    (tmp_path / name).write_bytes(content)
    return tmp_path / name


def dumps(document) -> bytes:
    return json.dumps(document).encode()


ONE_MM = {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 1, "tid": 1, "ts": 1.0, "dur": 5.0,
          "args": {"External id": 1, "Input Dims": [[2, 2], [2, 2]], "Input type": [BF16, BF16]}}


@pytest.mark.parametrize("name, content, says", [
    ("t.json", b"{\"traceEvents\": [", "not JSON: Expecting value: line 1 column 18"),
    ("t.json", b"\xff\xfe", "cannot read the trace"),
    ("t.json", b"[]", "not a PyTorch profiler trace: no \"traceEvents\" list"),
    ("t.json", dumps({"schemaVersion": 1}), "not a PyTorch profiler trace: no \"traceEvents\" list"),
    ("t.json", dumps({"traceEvents": {"ph": "X"}}), "not a PyTorch profiler trace: no \"traceEvents\" list"),
    ("t.json", dumps({"traceEvents": [{"ph": "X", "cat": "Op", "name": "jit_fn", "ts": 1, "dur": 2}]}),
     "not a PyTorch profiler trace: no \"cpu_op\" events"),
    ("t.json", dumps({"traceEvents": [ONE_MM, 7]}), "event 2 is not an object"),
    ("t.json", dumps({"traceEvents": [ONE_MM, {**ONE_MM, "cat": "kernel", "dur": -1.5}]}),
     "event 2 ('aten::mm'): 'dur' is negative (-1.5)"),
    ("t.json", dumps({"traceEvents": [{k: v for k, v in ONE_MM.items() if k != "dur"}]}),
     "event 1 ('aten::mm') has no 'dur'"),
    ("t.json", dumps({"traceEvents": [{**ONE_MM, "ts": "soon"}]}), "event 1 ('aten::mm'): 'ts' is 'soon', not a number"),
    ("t.json", b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    ("t.json.gz", b"{\"traceEvents\": []}", "cannot read the trace: Not a gzipped file"),
    ("t.json.gz", gzip.compress(b"{\"traceEvents\": []}", mtime=0)[:-6], "cannot read the trace"),
])
def test_a_bad_trace_is_one_error_naming_the_file(tmp_path, name, content, says):
    path = bad(tmp_path, name, content)
    with pytest.raises(OpgraphError) as e:
        profiles.read(path)
    assert str(e.value).startswith(str(path)) and says in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_a_missing_trace_or_a_folder_is_named(tmp_path):
    with pytest.raises(OpgraphError, match=r"measurement file '.*nope\.json' does not exist"):
        profiles.read(tmp_path / "nope.json")
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(OpgraphError, match=r"dir\.json is a folder"):
        profiles.read(tmp_path / "dir.json")


def test_huge_traces_are_refused(tmp_path, monkeypatch):
    path = model_step().write(tmp_path / "t.json")
    gz = model_step().write(tmp_path / "t.json.gz")
    monkeypatch.setattr(profiles, "MAX_BYTES", 1000)
    for p in (path, gz):  # a gzip is refused on what it unpacks to
        with pytest.raises(OpgraphError, match=rf"^{re.escape(str(p))}: more than 1,000 bytes of trace; profile fewer steps$"):
            profiles.read(p)
    monkeypatch.setattr(profiles, "MAX_BYTES", 2**30)
    monkeypatch.setattr(profiles, "MAX_EVENTS", 10)
    with pytest.raises(OpgraphError, match=rf"^{re.escape(str(path))}: more than 10 events"):
        profiles.read(path)
    monkeypatch.setattr(profiles, "MAX_EVENTS", 10**6)
    monkeypatch.setattr(profiles, "MAX_ROWS", 3)
    with pytest.raises(OpgraphError, match=rf"^{re.escape(str(path))}: more than 3 measured calls"):
        profiles.read(path)


@pytest.mark.parametrize("content, says", [
    (b"not json", "t.json: not JSON"),
    (b"{}", "t.json: not a PyTorch profiler trace"),
    (dumps({"traceEvents": [ONE_MM, {**ONE_MM, "cat": "kernel", "dur": -1}]}), "'dur' is negative"),
    (dumps({"traceEvents": [ONE_MM]}), "t.json: no GPU kernels in the trace"),
])
def test_the_cli_gives_one_line_and_exit_2(tmp_path, content, says):
    r = opgraph("validate", str(bad(tmp_path, "t.json", content)), "--hardware", "h100-sxm")
    assert r.returncode == 2 and says in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_norms_and_embedding_lookups_are_measurements(tmp_path):
    """aten::rms_norm (input, normalized_shape, weight, eps), aten::layer_norm (input, normalized_shape, weight,
    bias, eps, cudnn_enable) with native_layer_norm inside it, aten::embedding (weight, indices, ...)."""
    t = Trace()
    rms = t.op("aten::rms_norm", 100.0, 30.0, [[4, 128, 4096], [], [4096], []], [BF16, "ScalarList", BF16, "Scalar"])
    t.kernel(rms, 105.0, 7.25, name="triton_red_fused_rms_norm_0")
    t.op("aten::layer_norm", 200.0, 40.0, [[512, 768], [], [768], [768], [], []],
         [F32, "ScalarList", F32, F32, "Scalar", "Scalar"])
    inner = t.op("aten::native_layer_norm", 205.0, 30.0, [[512, 768], [], [768], [768], []],
                 [F32, "ScalarList", F32, F32, "Scalar"])
    t.kernel(inner, 210.0, 5.5, name="void at::native::vectorized_layer_norm_kernel<...>(...)")
    emb = t.op("aten::embedding", 300.0, 20.0, [[128256, 4096], [4, 128], [], [], []],
               [BF16, "long int", "Scalar", "Scalar", "Scalar"])
    t.kernel(emb, 305.0, 3.0, name="void at::native::indexSelectLargeIndex<...>(...)")
    bad = t.op("aten::layer_norm", 400.0, 40.0, [[512, 768], [], [768], [], [], []],  # no shift
               [F32, "ScalarList", F32, "", "Scalar", "Scalar"])
    t.kernel(bad, 405.0, 5.0)
    measured, skipped = profiles.scan(t.write(tmp_path / "trace.json"))
    assert [(m.kind, m.dtype, m.shape, m.time_s) for m in measured] == [
        ("rms_norm", "bf16", {"tokens": 512, "hidden": 4096}, pytest.approx(7.25e-6)),
        ("layer_norm", "fp32", {"tokens": 512, "hidden": 768}, pytest.approx(5.5e-6)),
        ("embedding", "bf16", {"tokens": 512, "vocab": 128256, "hidden": 4096}, pytest.approx(3.0e-6))]
    assert skipped == {"aten::layer_norm (not x [..., d] with a scale and a shift of [d])": 1}
