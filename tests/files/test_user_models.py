"""Models written in Python run through every command: `opgraph CMD path/to/file.py:NAME`. The expected values
come from the block's own dimensions and from analyze() on the same graph, never from the command's output."""

import json
from pathlib import Path

import pytest
from userland import opgraph

from opgraph import BF16, GraphBuilder, Phase, analyze, apply, hardware, models, strategy
from opgraph.core.model import BuildOptions
from opgraph.files import usermodel
from opgraph.models import pieces

DATA = Path(__file__).parent
REF = f"{DATA / 'parallel_block.py'}:build"
D, KV, FFN, LAYERS = 4096, 1024, 14336, 32


def test_the_parallel_block_loads_and_counts_its_parameters():
    m = models.get(REF).build(Phase.decode(1, 16))
    # per layer: q and o (D x D), k and v (KV x D), gate, up and down (D x FFN), one norm scale (D)
    assert m.params() == LAYERS * (2 * D * D + 2 * KV * D + 3 * D * FFN + D)


def test_fused_plan_keeps_the_two_branches_apart():
    """`fused` says: a norm fuses into its consumers and an op into its only consumer, within one part. The
    shared norm feeds two parts, so it is its own kernel; each branch is a kernel; the sum and the residual
    (untagged) are one more."""
    g = models.get(REF).build(Phase.decode(8, 128)).blocks[0].graph
    kernels = [set(k.ops) for k in apply(strategy("fused"), g).kernels]
    attention = {n for n, op in g.ops.items() if op.part == "attention"}
    mlp = {n for n, op in g.ops.items() if op.part == "mlp"}
    assert kernels == [{"ln"}, attention, mlp, {"branch_sum", "residual"}]
    assert len(apply(strategy("megakernel"), g).kernels) == 1


@pytest.mark.parametrize("args", [
    ["report", "--phase", "decode", "--format", "json"],
    ["sweep", "--batch", "1,8", "--context", "128,4096", "--format", "json"],
    ["generate", "--prompt", "100", "--output", "8", "--batch", "4", "--format", "json"],
    ["crossover", "--phase", "decode", "--format", "json"],
    ["memory", "--phase", "decode", "--format", "json"],
])
def test_every_command_runs_a_model_from_a_file(args):
    r = opgraph(args[0], REF, *args[1:])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)


def test_report_of_a_user_model_is_analyze_of_it():
    r = opgraph("report", REF, "--phase", "decode", "--batch", "8", "--context", "512", "--format", "json")
    got = json.loads(r.stdout)["phases"]["decode"]["model"]
    want = analyze(models.get(REF).build(Phase.decode(8, 512)), strategy("fused"), hardware.load("h100-sxm"))
    assert (got["flops"], got["bytes"], got["roofline_s"]) == (want.totals.flops, want.totals.bytes, want.totals.time_s)


def test_crossover_compares_the_tagged_parts_not_the_first_residual():
    r = opgraph("crossover", REF, "--phase", "decode", "--batch", "32", "--format", "json")
    at = json.loads(r.stdout)["phases"]["decode"]["attention_overtakes_ffn_at_context"]
    hw, plan, build = hardware.load("h100-sxm"), strategy("fused"), models.get(REF).build

    def attention_minus_ffn(context):
        ops = analyze(build(Phase.decode(32, context)), plan, hw).blocks[0].ops
        return (sum(o.cost.time_s for o in ops if o.part == "attention")
                - sum(o.cost.time_s for o in ops if o.part == "mlp"))

    assert at > 1 and attention_minus_ffn(at) > 0 >= attention_minus_ffn(at - 1)


def test_the_same_piece_twice_in_one_block():
    b = GraphBuilder(BF16, name="two_mlps")
    x = b.input("x", (2, 3, 64))
    y1 = pieces.gated_mlp(b, x, d_ffn=128, name="mlp1.")
    y2 = pieces.gated_mlp(b, x, d_ffn=256, name="mlp2.")
    g = b.build(outputs=[b.elementwise("sum", "add", y1, y2, out="y")])
    assert {"mlp1.gate_proj", "mlp2.gate_proj", "mlp1.down_proj", "mlp2.down_proj"} <= set(g.ops)
    assert g.params() == 3 * 64 * 128 + 3 * 64 * 256  # two separate sets of weights, nothing shared
    assert all(g.ops[n].part == "mlp" for n in g.ops if n != "sum")


@pytest.mark.parametrize("text, message", [
    ("missing.py:build", "file 'missing.py' does not exist"),
    ("tests_data_parallel_block.py:build", "does not exist"),
    (f"{DATA / 'parallel_block.py'}:nope", "has no 'nope'; it defines: build, layer"),
    (f"{DATA / 'parallel_block.py'}:D", "is a int; it must be a function"),
    ("json:loads", "building the decode model raised"),
    ("no_such_module_xyz:build", "cannot import module 'no_such_module_xyz'"),
])
def test_bad_references_are_one_line_errors(text, message):
    r = opgraph("report", text, "--phase", "decode")
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1


def test_a_build_that_raises_says_where(tmp_path):
    (tmp_path / "broken.py").write_text("def build(phase, options):\n    return 1 / 0\n")
    r = opgraph("report", "broken.py:build", cwd=tmp_path)
    assert r.returncode == 2 and "ZeroDivisionError" in r.stderr and "broken.py:2" in r.stderr, r.stderr


def test_reference_syntax():
    assert usermodel.looks_like_reference("a/b.py:build") and usermodel.looks_like_reference("pkg.mod:cfg")
    assert not usermodel.looks_like_reference("llama-3-8b") and not usermodel.looks_like_reference("C:\\x\\c.json")
    assert models.get(REF).build(Phase.prefill(1, 4), BuildOptions()).name == "parallel-8b"


HAZARDS = '''
import math
from opgraph import BF16, Block, GraphBuilder, Model, size_function
from opgraph.models import pieces


@size_function
def width_for(batch):  # any Python, evaluated exactly once per distinct batch
    return {1: 256, 2: 512}.get(batch, 1024)


def layer(phase, width):
    if not isinstance(phase.batch, int):
        raise TypeError("batch must be an int")
    b = GraphBuilder(BF16, name="layer")
    x = b.input("x", (phase.batch, phase.new_tokens, 64))
    return b.build(outputs=[pieces.gated_mlp(b, x, d_ffn=width)])


def lookup(phase, options):  # a size looked up in a dict: must fail loudly in a sweep
    return Model("lookup", phase, [Block("layer", 2, layer(phase, {1: 256, 2: 512}.get(phase.batch, 1024)))])


def exponential(phase, options):  # math.exp on a size: must fail loudly in a sweep
    return Model("exp", phase, [Block("layer", 2, layer(phase, 64 + int(math.exp(phase.batch / 64))))])


def wrapped(phase, options):  # the same lookup in a size function: exact everywhere
    return Model("wrapped", phase, [Block("layer", 2, layer(phase, width_for(phase.batch)))])
'''


@pytest.mark.parametrize("name, what", [("lookup", "hashed"), ("exponential", "converted to float")])
def test_a_block_that_freezes_a_size_fails_loudly_in_a_sweep(tmp_path, name, what):
    (tmp_path / "hazards.py").write_text(HAZARDS)
    ok = opgraph("report", f"hazards.py:{name}", "--phase", "decode", "--batch", "2", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr  # one point, no tracing: plain ints
    r = opgraph("sweep", f"hazards.py:{name}", "--phase", "decode", "--batch", "1,2,3", cwd=tmp_path)
    assert r.returncode == 2 and what in r.stderr and "@opgraph.size_function" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_a_size_function_and_isinstance_sweep_exactly(tmp_path):
    (tmp_path / "hazards.py").write_text(HAZARDS)
    r = opgraph("sweep", "hazards.py:wrapped", "--phase", "decode", "--batch", "1,2,3", "--context", "64",
                "--format", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for point in json.loads(r.stdout)["points"]:
        one = opgraph("report", "hazards.py:wrapped", "--phase", "decode", "--batch", str(point["batch"]),
                      "--context", "64", "--format", "json", cwd=tmp_path)
        model = json.loads(one.stdout)["phases"]["decode"]["model"]
        assert (point["flops"], point["bytes"], point["roofline_s"]) == (model["flops"], model["bytes"],
                                                                           model["roofline_s"])


def test_a_user_model_that_ignores_tp_is_refused():
    r = opgraph("report", REF, "--tp", "8", "--phase", "decode")
    assert r.returncode == 2 and "--tp 8" in r.stderr and "ignored the option" in r.stderr, r.stderr


def test_tp_on_the_command_line():
    r = opgraph("report", "llama-3-70b", "--tp", "8", "--phase", "decode", "--format", "json")
    assert r.returncode == 0, r.stderr
    decode = json.loads(r.stdout)["phases"]["decode"]
    assert decode["gpus"] == 8
    assert {op["name"] for op in decode["blocks"][0]["ops"] if op["kind"] == "collective"} == {"o_allreduce",
                                                                                                "down_allreduce"}
