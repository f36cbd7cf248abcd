"""A seeded generator of malformed and extreme inputs for every command, option, config.json, hardware spec and
plan file, each with what must happen: "bad" must be refused (exit 2, one line), "ok" must succeed (exit 0),
"either" may do either; none may print a traceback or hang. Used by tests/project/test_fuzz.py (in process, a
sample) and benchmarks/fuzz_cli.py (the whole corpus through the real command line)."""

from __future__ import annotations

import json
import random

import attrs

BAD, OK, EITHER = "bad", "ok", "either"


@attrs.frozen
class Case:
    argv: tuple[str, ...]
    expect: str
    files: tuple[tuple[str, str], ...] = ()  # (name, content) written in the working folder first
    label: str = ""


LLAMA = {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
         "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100, "torch_dtype": "bfloat16"}
MIXTRAL = {**LLAMA, "model_type": "mixtral", "num_local_experts": 4, "num_experts_per_tok": 2}
SPEC = {"name": "fuzz-gpu", "display_name": "Fuzz GPU", "memory_bandwidth_GB_per_s": 1000, "memory_capacity_GB": 40,
        "vector_TFLOP_per_s": 10, "source": "made up", "matrix_TFLOP_per_s": {"bf16": 100}}

INT_BAD = ["", " ", "0", "-1", "1.5", "nan", "inf", "abc", "1e3", "9" * 40, "99999999999", "٣", "0x10", "--1"]
INT_OK = ["1", "3", "64"]
FLOAT_BAD = ["", "nan", "inf", "-inf", "-1", "1e400", "abc", "NaN", "1e7"]
NAME_BAD = ["", " ", "H100-SXM", "h100", "ħ100", "b" * 300, "nope", "a/b/c", ".", "..", "/", "x.toml", "x.json"]
LIST_BAD = ["", ",", ",,", "0", "1:0", "1:10000000000", "1:100000000", "1,2,...," + "9" * 31, "a", "1,...,8",
            "3,5,...,10", "1:2:0", "1:2:3:4", "-1", "1.5", "²"]
LIST_OK = ["1,2", "1:4", "1,2,4,...,16", "8"]

# command -> (option -> kind); kinds: int, float, overlap, phase, format, dtype, fusion, fusions, hardware, list
COMMON = {"--batch": "int", "--phase": "phase", "--seq-len": "int", "--context": "int", "--fusion": "fusion",
          "--dtype": "dtype", "--weight-dtype": "dtype", "--act-dtype": "dtype", "--kv-dtype": "dtype",
          "--state-dtype": "dtype", "--table-dtype": "dtype", "--hardware": "hardware", "--tp": "tp", "--dp": "dp", "--ep": "ep",
          "--expert-imbalance": "imbalance", "--pp": "pp", "--micro-batches": "needs_pp", "--pp-layers": "needs_pp"}
TIME = {"--launch-us": "float", "--overlap": "overlap", "--comm-overlap": "overlap", "--experts-touched": "int"}
COMMANDS = {
    "report": {**COMMON, **TIME, "--format": "format"},
    "activations": {k: v for k, v in COMMON.items() if k != "--hardware"},
    "compare": {**COMMON, **TIME, "--fusion": "fusions"},
    "graph": {k: v for k, v in COMMON.items() if k not in ("--hardware",)},
    "sweep": {**COMMON, **TIME, "--batch": "list", "--seq-len": "list", "--context": "list"},
    "crossover": {k: v for k, v in {**COMMON, **TIME}.items() if k != "--seq-len"},
    "memory": dict(COMMON),
    "plan": {"--gpus": "int", "--prompt": "int", "--output": "int", "--batch": "list", "--max-tpot": "limit",
             "--max-ttft": "limit", "--top": "int", "--hardware": "hardware", "--dtype": "dtype", **TIME},
    "generate": {"--batch": "int", "--prompt": "int", "--output": "int", "--hardware": "hardware", "--tp": "tp",
                 "--dp": "dp", "--ep": "ep", "--expert-imbalance": "imbalance", "--pp": "pp", **TIME},
}
# Options each command does not take: giving them is an error, never silently ignored.
FOREIGN = {"activations": ["--launch-us", "--overlap", "--hardware"], "graph": ["--launch-us", "--hardware"],
           "memory": ["--launch-us", "--overlap", "--causal-skip"], "crossover": ["--seq-len"],
           "generate": ["--phase", "--seq-len", "--context"],
           "plan": ["--tp", "--dp", "--ep", "--pp", "--phase", "--seq-len", "--context", "--across-nodes"], "models": ["--batch"], "hardware": ["--phase"]}
SMALL = {"report": ["--batch", "2", "--seq-len", "16", "--context", "16"],
         "activations": ["--batch", "2", "--seq-len", "16", "--context", "16"],
         "compare": ["--batch", "2", "--seq-len", "16", "--context", "16"],
         "graph": [], "sweep": ["--batch", "1,2", "--seq-len", "16", "--context", "16"],
         "crossover": ["--batch", "2", "--context", "16"], "memory": ["--batch", "2", "--seq-len", "16", "--context", "16"],
         "generate": ["--prompt", "8", "--output", "3", "--batch", "2"],
         "plan": ["--gpus", "2", "--prompt", "16", "--output", "3", "--batch", "1,2"]}
REQUIRED = {"generate": {"--prompt", "--output"}, "plan": {"--gpus"}}


def _values(kind: str) -> list[tuple[str, str]]:
    """(value, expectation) for an option of this kind."""
    if kind == "int":
        return [(v, BAD) for v in INT_BAD] + [(v, OK) for v in INT_OK]
    if kind in ("float", "overlap"):
        good = ["0", "0.5", "1"] if kind == "overlap" else ["0", "2.5"]
        return [(v, BAD) for v in FLOAT_BAD + (["2", "-0.1"] if kind == "overlap" else [])] + [(v, OK) for v in good]
    if kind == "phase":
        return [(v, BAD) for v in NAME_BAD + ["train", "PREFILL"]] + [(v, OK) for v in ("prefill", "decode")]
    if kind == "format":
        return [(v, BAD) for v in ["", "xml", "JSON", "dot"]] + [(v, OK) for v in ("json", "csv", "markdown")]
    if kind == "dtype":
        return [(v, BAD) for v in ["", "fp6", "BF16", "float16", "ħ"]] + [(v, OK) for v in ("fp16", "fp32")]
    if kind == "fusion":
        return [(v, BAD) for v in NAME_BAD + ["magic"]] + [(v, OK) for v in ("unfused", "megakernel")]
    if kind == "fusions":
        return [(v, BAD) for v in ["", "fused", ",", "fused,", "fused,magic", "b" * 300]] + [("unfused,fused", OK)]
    if kind == "hardware":
        return [(v, BAD) for v in NAME_BAD] + [(v, OK) for v in ("h200", "a100-sxm")]
    if kind == "tp":  # llama-3-8b: 32 heads, 8 KV heads
        return [(v, BAD) for v in ["", "0", "-1", "3", "abc", "2000", "1.5"]] + [(v, OK) for v in ("1", "2", "8")]
    if kind == "dp":  # replicas need nothing of the model
        return [(v, BAD) for v in ["", "0", "-1", "abc", "2000", "1.5"]] + [(v, OK) for v in ("1", "2", "8")]
    if kind == "ep":  # llama-3-8b has no experts, and --ep must equal --tp x --dp
        return [(v, BAD) for v in ["", "0", "-1", "abc", "2000", "1.5", "2", "8"]] + [("1", OK)]
    if kind == "limit":  # a latency limit in milliseconds
        return [(v, BAD) for v in FLOAT_BAD + ["0"]] + [(v, OK) for v in ("2.5", "1000")]
    if kind == "pp":  # llama-3-8b: 32 layers
        return [(v, BAD) for v in ["", "0", "-1", "abc", "2000", "33", "1.5"]] + [(v, OK) for v in ("1", "2", "4")]
    if kind == "needs_pp":  # --micro-batches and --pp-layers apply only with --pp
        return [(v, BAD) for v in ["", "0", "2", "16,16", "a"]]
    if kind == "imbalance":  # applies only with --ep
        return [(v, BAD) for v in FLOAT_BAD + ["0.5", "1", "2"]]
    if kind == "list":
        return [(v, BAD) for v in LIST_BAD] + [(v, OK) for v in LIST_OK]
    raise ValueError(kind)


def _option_cases() -> list[Case]:
    out = []
    for cmd, options in COMMANDS.items():
        base = SMALL[cmd]
        for opt, kind in options.items():
            for value, expect in _values(kind):
                kept = _without(base, opt)
                if opt == "--phase" and value in ("prefill", "decode"):  # the other phase's length would be refused
                    kept = _without(kept, "--context" if value == "prefill" else "--seq-len")
                argv = [cmd, *kept, f"{opt}={value}"]
                if cmd == "graph" and opt in ("--seq-len", "--context") and expect == OK:
                    expect = EITHER  # a length for the other phase than the one drawn is refused
                if opt in ("--seq-len", "--context", "--batch") and value == "64" and cmd == "crossover":
                    expect = EITHER
                if opt in ("--experts-touched", "--state-dtype") and expect == OK:
                    expect = BAD  # llama-3-8b has no experts and no recurrent state: the option would be ignored
                if opt == "--table-dtype" and value == "fp32" and cmd in ("report", "compare"):
                    expect = OK
                out.append(Case(tuple(argv), expect, label=f"{cmd} {opt} {value[:20]!r}"))
        for opt in FOREIGN.get(cmd, []):
            out.append(Case((cmd, *base, opt, "1"), BAD, label=f"{cmd} does not take {opt}"))
    for cmd in ("models", "hardware", "fusions"):
        out += [Case((cmd,), OK), Case((cmd, "--format", "json"), OK), Case((cmd, "--format", "xml"), BAD),
                Case((cmd, "extra"), BAD)]
        for opt in FOREIGN.get(cmd, []):
            out.append(Case((cmd, opt, "1"), BAD, label=f"{cmd} does not take {opt}"))
    for model in ["", "a" * 300, "gpt-5", "x.py:build", "nope.json", "dir/", "ħ", "llama-3-8b:x", "os:path",
                  "json:loads", "a" * 300 + ".json"]:
        out.append(Case(("report", model, "--phase", "decode"), BAD, label=f"model {model[:20]!r}"))
    out += [Case(("report", "--sp"), BAD, label="--sp without --tp"),
            Case(("report", "--tp", "2", "--sp"), OK, label="--sp with --tp 2"),
            Case(("report", "--tp", "8", "--sp", "--batch", "12", "--phase", "decode"), BAD, label="--sp, batch 12"),
            Case(("report", "--phase", "decode", "--batch", "1000000000", "--context", "1"), EITHER, label="huge batch"),
            Case(("report", "--phase", "prefill", "--batch", "1000000000", "--seq-len", "1024"), BAD,
                 label="more than 10^12 tokens"),
            Case(("sweep", "--batch", "1:1000000", "--context", "1:1000000"), BAD, label="10^12-point sweep"),
            Case(("sweep", "deepseek-v3", "--batch", "1,1000000", "--context", "1,10000000", "--seq-len", "1,100"),
                 OK, label="deepseek-v3 extreme sweep"),
            Case(("crossover", "deepseek-v3", "--context", "10000000"), OK, label="deepseek-v3 long crossover"),
            Case(("generate", "--prompt", "8", "--output", "200000"), BAD, label="too many decode steps"),
            Case(("plot",), BAD), Case(("plot", "roofline"), BAD), Case(("plot", "roofline", "--out", "x.gif"), BAD),
            Case(("plot", "sweep", "--out", "x.png", "--hardware", "h100-sxm,h200"), BAD),
            Case(("plot", "roofline", "--out", "x.png", "--launch-us", "inf"), BAD),
            Case(("bogus",), BAD), Case(("report", "--bogus"), BAD), Case(("--version",), OK)]
    serving = ("plan", "--gpus", "2", "--prompt", "200", "--output", "16")  # the serving plan's options (issue 17)
    for extra, expect in [(("--concurrency", "4", "--disaggregated"), OK), (("--disaggregated",), BAD),
                          (("--concurrency", "4", "--max-batch-tokens", "0"), BAD),
                          (("--concurrency", "4", "--max-batch-tokens", "2048,x"), BAD),
                          (("--concurrency", "4", "--max-batch-tokens", "2048,8192"), OK),
                          (("--concurrency", "4", "--max-ttft-p90", "-1"), BAD),
                          (("--concurrency", "4", "--max-tpot-p90", "nan"), BAD),
                          (("--concurrency", "4", "--max-tpot-p90", "50"), OK), (("--max-ttft-p90", "50"), BAD),
                          (("--concurrency", "4", "--draft", "llama-3-8b"), BAD),
                          (("--concurrency", "4", "--draft", "nope", "--acceptance", "0.5"), BAD),
                          (("--concurrency", "4", "--draft", "llama-3-8b", "--acceptance", "2"), BAD),
                          (("--concurrency", "4", "--draft", "llama-3-8b", "--acceptance", "0.7"), OK),
                          (("--concurrency", "4", "--disaggregated", "--decode-hardware", "h200"), OK),
                          (("--concurrency", "4", "--disaggregated", "--decode-hardware", "nope"), BAD),
                          (("--concurrency", "4", "--decode-hardware", "h200"), BAD),
                          (("--rate", "20"), OK), (("--rate", "0"), BAD), (("--rate", "nan"), BAD),
                          (("--rate", "1e300"), BAD), (("--rate", "20,"), OK), (("--rate", ","), BAD),
                          (("--rate", "20", "--concurrency", "4"), BAD), (("--rate", "1e5"), OK),
                          (("--concurrency", "4", "--memory-fraction", "0.5"), OK),
                          (("--concurrency", "4", "--engine", "trtllm", "--memory-fraction", "0.5"), OK),
                          (("--concurrency", "4", "--memory-fraction", "1.5"), BAD),
                          (("--memory-fraction", "0.5"), BAD),
                          (("--concurrency", "4", "--engine", "trtllm", "--chunked-prefill"), OK),
                          (("--concurrency", "4", "--engine", "sglang", "--no-chunked-prefill"), BAD),
                          (("--no-chunked-prefill",), BAD)]:
        out.append(Case((*serving, *extra), expect, label=" ".join(extra)[:40]))
    apart = ("serve", "--disaggregate", "1p1d", "--prompt", "500", "--output", "20")
    for extra, expect in [(("--rate", "0"), BAD), (("--rate", "1e300"), BAD), (("--rate", "inf"), BAD),
                          (("--rate", "2"), OK), (("--concurrency", "100000"), BAD), (("--concurrency", "4"), OK),
                          (("--concurrency", "4", "--pp", "2"), OK), (("--concurrency", "3", "--pp", "2"), BAD),
                          (("--concurrency", "4", "--decode", "pp=0"), BAD),
                          (("--concurrency", "4", "--max-seqs", "2"), BAD),
                          (("--concurrency", "4", "--max-batch-tokens", "2048"), OK),
                          (("--concurrency", "4", "--memory-fraction", "2"), BAD),
                          (("--concurrency", "4", "--overhead-us", "500"), OK),
                          (("--concurrency", "4", "--overhead-us", "-1"), BAD),
                          (("--concurrency", "4", "--overhead-us", "500", "--scheduling", "sync"), OK),
                          (("--concurrency", "4", "--scheduling", "later"), BAD),
                          (("--concurrency", "4", "--prefix", "400"), OK),
                          (("--concurrency", "4", "--prefix", "501"), BAD),
                          (("--concurrency", "4", "--queue"), OK), (("--rate", "2", "--queue"), BAD),
                          (("--concurrency", "4", "--requests", "12"), OK),
                          (("--concurrency", "4", "--requests", "2"), BAD),
                          (("--concurrency", "4", "--prompt", "1"), OK)]:
        out.append(Case((*apart, *extra), expect, label="disaggregated " + " ".join(extra)))
    alone = ("serve", "--concurrency", "4", "--prompt", "500", "--output", "20")
    for extra, expect in [(("--prefix-hit", "0.5"), OK), (("--prefix-hit", "1"), OK), (("--prefix-hit", "0"), OK),
                          (("--prefix-hit", "-0.1"), BAD), (("--prefix-hit", "nan"), BAD),
                          (("--prefix-hit", "0.5", "--prefix", "100"), BAD), (("--tp", "2", "--sp"), BAD),
                          (("--chunk", "256"), OK), (("--chunk", "0"), BAD), (("--chunk", "1e3"), BAD),
                          (("--chunk", "256", "--engine", "trtllm"), BAD),
                          (("--engine", "trtllm", "--memory-fraction", "0.8"), OK),
                          (("--engine", "trtllm", "--memory-fraction", "0"), BAD),
                          (("--engine", "trtllm", "--memory-fraction", "0.01"), OK),
                          (("--engine", "trtllm", "--memory-fraction", "1e-6"), BAD),
                          (("--engine", "trtllm", "--chunked-prefill"), OK),
                          (("--engine", "trtllm", "--chunked-prefill", "--max-batch-tokens", "20", "--prompt",
                            "5000"), BAD),
                          (("--engine", "trtllm", "--prompt", "20000"), BAD),
                          (("--engine", "trtllm", "--prompt", "20000", "--chunked-prefill"), OK),
                          (("--engine", "trtllm", "--prompt", "20000", "--disaggregate", "1p1d"), BAD),
                          (("--engine", "sglang", "--no-chunked-prefill"), BAD),
                          (("--no-chunked-prefill", "--chunk", "256"), BAD),
                          (("--no-chunked-prefill", "--prompt", "9000"), BAD),
                          (("--chunked-prefill", "--no-chunked-prefill"), OK),
                          (("--pp", "2", "--prompt", "1"), OK)]:
        out.append(Case((*alone, *extra), expect, label=" ".join(extra)))
    m = "class,dtype,m,n,k,batch,seq_len,context,heads,kv_heads,head_dim,time_us,source\n"
    good = m + "".join(f"gemm,bf16,{i},4096,4096,,,,,,,{5 + i},x\n" for i in range(1, 60))
    for argv, expect in [(("validate", "m.csv"), OK), (("validate", "m.csv", "--format", "json"), OK),
                         (("validate", "m.csv", "--hardware", "v100"), BAD), (("validate",), BAD),
                         (("validate", "nope.csv"), BAD), (("validate", "sub"), BAD),
                         (("calibrate", "m.csv"), BAD), (("calibrate", "m.csv", "--out", "c.toml"), OK),
                         (("calibrate", "m.csv", "--out", "c.toml", "--holdout", "nan"), BAD),
                         (("calibrate", "m.csv", "--out", "c.toml", "--holdout", "0"), BAD),
                         (("calibrate", "m.csv", "--out", "c.toml", "--exp-rate", "-1"), BAD),
                         (("calibrate", "m.csv", "--out", "sub/none/c.toml"), BAD),
                         (("report", "--calibration", "m.csv"), BAD), (("report", "--calibration", "nope.toml"), BAD)]:
        out.append(Case(argv, expect, (("m.csv", good),), label=" ".join(argv)))
    for row in ["gemm,bf16,1,4096,,,,,,,,10,", "gemm,bf16,1,4096,4096,,,,,,,0,", "conv,bf16,1,1,1,,,,,,,1,",
                "gemm,bf16,1x,4096,4096,,,,,,,1,", "gemm,bf16,1,4096,4096,8,,,,,,1,", "gemm,fp6,1,1,1,,,,,,,1,",
                "decode_attention,bf16,,,,8,,1023,32,8,,18,", "gemm,bf16,1,1,1,,,,,,,inf,", ""]:
        out.append(Case(("validate", "m.csv"), BAD, (("m.csv", m + row + "\n"),), label=f"measurement {row[:30]!r}"))
    c = "class,dtype,m,gpus,elements,time_us\n"  # collectives
    for row, expect in [("all_reduce,bf16,,8,1024,10", OK), ("all_reduce,bf16,,16,1024,10", OK),
                        ("all_reduce,bf16,,1,1024,10", BAD), ("all_reduce,bf16,,0,1024,10", BAD),
                        ("all_reduce,bf16,,5000,1024,10", BAD), ("all_reduce,bf16,,8,,10", BAD),
                        ("all_reduce,bf16,4,8,1024,10", BAD), ("all_reduce,bf16,,8,1024,-1", BAD),
                        ("all_reduce,bf16,,8,99999999999999,10", BAD)]:
        out.append(Case(("validate", "m.csv"), expect, (("m.csv", c + row + "\n"),), label=f"measurement {row!r}"))
    return out


def _without(argv: list[str], opt: str) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == opt:
            skip = True
            continue
        out.append(a)
    return out


# -- files ---------------------------------------------------------------------------------------------------------
ODD = [None, "", "64", -1, 0, 1.5, True, [], {}, 10**30, float("inf"), float("nan"), "ħ", [64], {"a": 1}]


def _dump(data) -> str:
    return json.dumps(data)  # inf and nan as the Infinity / NaN tokens Python's reader takes


def _deep(n: int, json_syntax: bool = True) -> str:
    return "[" * n + "]" * n if json_syntax else "a = " + "[" * n + "]" * n


def _config_cases(rng: random.Random) -> list[Case]:
    out = []
    for base in (LLAMA, MIXTRAL):
        for key in base:
            for value in ODD:
                data = {**base, key: value}
                expect = BAD
                if key == "torch_dtype" and value is None:
                    expect = OK  # absent: bf16
                if key == "num_key_value_heads" and value is None:
                    expect = OK  # absent: as many as the heads
                if key == "num_key_value_heads" and type(value) is int and value == 1:
                    expect = OK
                for argv in (("report", "c.json", "--phase", "decode", "--batch", "2", "--context", "8"),
                             ("sweep", "c.json", "--batch", "1,4", "--seq-len", "8", "--context", "8,64"),
                             ("generate", "c.json", "--prompt", "8", "--output", "3")):
                    out.append(Case(argv, expect, (("c.json", _dump(data)),), label=f"config {key}={str(value)[:20]} "
                                                                                   f"({argv[0]})"))
        for key in base:
            data = {k: v for k, v in base.items() if k != key}
            expect = OK if key in ("num_key_value_heads", "torch_dtype") else BAD
            out.append(Case(("memory", "c.json", "--phase", "decode", "--batch", "2", "--context", "8"), expect,
                            (("c.json", _dump(data)),), label=f"config without {key}"))
    texts = [("", BAD), ("{", BAD), ("[1, 2]", BAD), ("null", BAD), (_deep(5000), BAD),
             ('{"hidden_size": ' + "9" * 5000 + "}", BAD), ("\ufeff" + _dump(LLAMA), OK), (_dump(LLAMA) * 2, BAD),
             (_dump({**LLAMA, "model_type": "gpt5"}), BAD), (_dump({**MIXTRAL, "num_experts_per_tok": 9}), BAD),
             (_dump({**LLAMA, "num_hidden_layers": 10**9}), OK), (_dump({**LLAMA, "hidden_size": 10**200}), BAD),
             (_dump({**LLAMA, "quantization_config": {"quant_method": "bitsandbytes"}}), BAD),
             (_dump({**LLAMA, "quantization_config": {"quant_method": "gptq"}}), OK)]
    for text, expect in texts:
        out.append(Case(("report", "c.json", "--phase", "decode", "--batch", "2", "--context", "8"), expect,
                        (("c.json", text),), label=f"config text {text[:20]!r}"))
    return out


def _toml(data: dict) -> str:
    lines, tables = [], []
    for k, v in data.items():
        if isinstance(v, dict):
            tables.append(f"[{k}]\n" + "\n".join(f"{kk} = {_toml_value(vv)}" for kk, vv in v.items()))
        else:
            lines.append(f"{k} = {_toml_value(v)}")
    return "\n".join(lines + tables) + "\n"


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v != v:
        return "nan"
    if v == float("inf"):
        return "inf"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    return json.dumps(str(v))


def _spec_cases() -> list[Case]:
    out = []
    numbers = ["memory_bandwidth_GB_per_s", "memory_capacity_GB", "vector_TFLOP_per_s"]
    for key in [*numbers, "matrix_TFLOP_per_s.bf16", "kernel_launch_us", "overlap", "sms"]:
        # tiny and denormal figures (below the physical floor) are refused too, never printed as nan or 0 tokens/s
        tiny = [1e-300, 5e-324, 1e-4] if key in (*numbers, "matrix_TFLOP_per_s.bf16") else []
        for value in [0, -1, float("inf"), float("nan"), 10**200, 1e300, "1", True, [1], *tiny]:
            data = json.loads(json.dumps(SPEC))
            if "." in key:
                data["matrix_TFLOP_per_s"]["bf16"] = value
            else:
                data[key] = value
            expect = OK if key in ("kernel_launch_us", "overlap") and type(value) is int and value == 0 else BAD
            for cmd in ("report", "memory"):
                out.append(Case((cmd, "--hardware", "g.toml", "--phase", "decode", "--batch", "2", "--context", "8"),
                                expect, (("g.toml", _toml(data)),), label=f"spec {key}={str(value)[:12]} ({cmd})"))
    for key in SPEC:
        data = {k: v for k, v in SPEC.items() if k != key}
        out.append(Case(("report", "--hardware", "g.toml", "--phase", "decode"), BAD, (("g.toml", _toml(data)),),
                        label=f"spec without {key}"))
    for text, expect in [("", BAD), ("name = ", BAD), (_deep(3000, False), BAD), (_toml({**SPEC, "extra": 1}), BAD),
                         (_toml({**SPEC, "matrix_TFLOP_per_s": {}}), BAD),
                         (_toml({**SPEC, "matrix_TFLOP_per_s": {"fp4": 1}}), BAD), (_toml(SPEC), OK)]:
        out.append(Case(("report", "--hardware", "g.toml", "--phase", "decode"), expect, (("g.toml", text),),
                        label=f"spec text {text[:20]!r}"))
    out.append(Case(("report", "--hardware", "g.json", "--phase", "decode"), OK, (("g.json", json.dumps(SPEC)),)))
    out.append(Case(("report", "--hardware", "sub/", "--phase", "decode"), BAD, label="spec is a folder"))
    long = "g" * 300  # longer than a file system allows in one name
    for option in ("--hardware", "--fusion", "--calibration"):
        out.append(Case(("report", option, f"{long}.toml", "--phase", "decode"), BAD, label=f"{option} name too long"))
    out.append(Case(("report", f"{long}.json"), BAD, label="config name too long"))
    return out


def _plan_cases() -> list[Case]:
    out = []
    good = {"name": "p", "description": "d", "rule": [{"name": "r", "producer": ["norm"]}]}
    variants = [({**good, "description": 3}, BAD), ({**good, "description": {"a": 1}}, BAD), ({**good, "name": 3}, BAD),
                ({**good, "rule": [{"name": "r", "producer": "norm"}]}, BAD),
                ({**good, "rule": [{"name": "r", "producer": []}]}, BAD),
                ({**good, "rule": [{"name": "r", "producer": ["nope"]}]}, BAD),
                ({**good, "rule": [{"name": "r", "never": "yes"}]}, BAD),
                ({**good, "rule": [{"producer": ["norm"]}]}, BAD), ({**good, "rule": [1]}, BAD),
                ({**good, "rule": {"name": "r"}}, BAD), ({**good, "group": [{"ops": ["q_proj"]}]}, BAD),
                ({**good, "group": [{"ops": ["q_proj", "nope"]}]}, BAD),
                ({**good, "group": [{"ops": ["input_layernorm", "down_proj"]}]}, BAD),
                ({**good, "group": [{"ops": ["q_proj", "k_proj"]}]}, OK), ({**good, "extra": 1}, BAD), (good, OK),
                ({**good, "rule": [{"name": "r", "same_part": True, "single_consumer": True}]}, OK)]
    for data, expect in variants:
        for suffix, text in ((".json", json.dumps(data)), (".toml", _toml_plan(data))):
            out.append(Case(("report", "--fusion", f"p{suffix}", "--phase", "decode", "--batch", "2", "--context", "8"),
                            expect, ((f"p{suffix}", text),), label=f"plan {str(data)[:40]}"))
    return out


def _toml_plan(data: dict) -> str:
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if k not in ("rule", "group")]
    for key in ("rule", "group"):
        items = data.get(key, [])
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            lines.append(f"{key} = {_toml_value(items)}")
            continue
        for item in items:
            lines.append(f"[[{key}]]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in item.items()]
    return "\n".join(lines) + "\n"


def corpus(seed: int = 0) -> list[Case]:
    """Every case, in a fixed order for a seed."""
    rng = random.Random(seed)
    cases = _option_cases() + _config_cases(rng) + _spec_cases() + _plan_cases()
    rng.shuffle(cases)
    return cases
