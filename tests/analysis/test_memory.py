"""Memory capacity: peak activations on graphs small enough to walk by hand, KV-cache and weight bytes from
hand formulas, the capacity verdict both ways, and the largest batch that fits."""

import json


from opgraph import hardware
from opgraph import models
from opgraph import FusionPlan, GraphBuilder, Hardware, Model, Block, Phase, apply, strategy
from opgraph.cli import main
from opgraph.analysis.memory import footprint_of as footprint, max_batch, peak_activations

H100 = hardware.load("h100-sxm")
LLAMA = models.get("llama-3-8b")
FUSED = strategy("fused")
UNFUSED = FusionPlan("eager")  # no rules: every op its own kernel


def tiny(batch=2):
    """x[b,4,8] -> up (16 wide) -> silu -> down (8 wide) -> out = x + down; all bf16 (2 bytes)."""
    b = GraphBuilder(name="tiny")
    x = b.input("x", (batch, 4, 8))
    a = b.linear("up", x, b.weight("w_up", (16, 8)), out="a")
    s = b.elementwise("act", "silu", a, out="s")
    d = b.linear("down", s, b.weight("w_down", (8, 16)), out="d")
    return b.build(outputs=[b.elementwise("residual", "add", x, d, out="out")])


def test_tiny_peak_is_the_most_alive_at_once_not_the_sum_of_writes():
    g = tiny()
    x = out = d = 2 * 4 * 8 * 2  # 128 bytes each
    a = s = 2 * 4 * 16 * 2  # 256 bytes each
    # Eager: step up: x, a | act: x, a, s | down: x, s, d | residual: x, d, out. x lives until `residual` reads it.
    steps = {"up": x + a, "act": x + a + s, "down": x + s + d, "residual": x + d + out}
    peak = peak_activations(g, apply(UNFUSED, g))
    assert peak.bytes == max(steps.values()) == 640
    assert peak.kernel == "act" and set(peak.alive) == {"x", "a", "s"}
    assert peak.bytes < x + a + s + d + out  # the sum of the input and every write would be 896


def test_tiny_peak_when_everything_is_one_kernel():
    g = tiny()
    one = FusionPlan("all", groups=[("up", "act", "down", "residual")])
    peak = peak_activations(g, apply(one, g))
    assert peak.bytes == 2 * (2 * 4 * 8 * 2)  # only the input x and the output out reach memory
    assert set(peak.alive) == {"x", "out"}


def test_kernels_run_in_dependency_order_not_first_op_order():
    """`late` starts before `mid` in topological order but needs mid's output: mid's kernel must run first."""
    b = GraphBuilder(name="order")
    x = b.input("x", (1, 4))
    y = b.input("y", (1, 4))
    a = b.elementwise("early", "silu", x, out="a")  # 8 bytes
    m = b.elementwise("mid", "silu", y, out="m")
    out = b.elementwise("late", "add", a, m, out="out")
    g = b.build(outputs=[out])
    plan = FusionPlan("pair", groups=[("early", "late")])
    part = apply(plan, g)
    assert [k.name for k in part.kernels] == ["mid", "early"]
    # mid runs with x, y and m alive (24 bytes); then early..late with x, m, out (a stays on chip).
    assert peak_activations(g, part).bytes == 24


def llama_kv(batch, tokens):
    """K and V: 2 x layers x batch x tokens x kv_heads x head_dim x 2 bytes (bf16)."""
    return 2 * 32 * batch * tokens * 8 * 128 * 2


LLAMA_WEIGHTS = 8_030_261_248 * 2


def test_llama_decode_footprint_by_hand():
    b, c = 4, 1000
    fp = footprint(LLAMA.build(Phase.decode(b, c)), FUSED, H100)
    assert fp.weight_bytes == LLAMA_WEIGHTS
    assert fp.kv_cache_bytes == llama_kv(b, c + 1)  # after the step: the context plus the new token
    layer = next(x for x in fp.blocks if x.name == "layer")
    # fused: the layer input x and the attention block's output h are written, then h and the layer output
    assert layer.peak.bytes == 2 * b * 4096 * 2
    # the head: its input hidden state and the logits [b, 1, vocab] are alive while lm_head runs
    assert fp.activation_bytes == b * (4096 + 128_256) * 2
    assert fp.total == LLAMA_WEIGHTS + llama_kv(b, c + 1) + b * (4096 + 128_256) * 2
    assert fp.fits


def test_llama_prefill_unfused_peak_holds_scores_and_probabilities():
    b, s = 1, 1024  # long enough that scores [b, 32, s, s] outweigh the MLP's gate, up and act [b, s, 14336]
    fp = footprint(LLAMA.build(Phase.prefill(b, s)), strategy("unfused"), H100)
    layer = next(x for x in fp.blocks if x.name == "layer")
    # while softmax runs: x (until attn_residual), scores [b, 32, s, s] and probs, all bf16
    assert layer.peak.kernel == "softmax"
    assert layer.peak.bytes == b * s * 4096 * 2 + 2 * (b * 32 * s * s * 2)
    assert fp.kv_cache_bytes == llama_kv(b, s)  # prefill writes K and V of every prompt position


def test_sliding_window_and_mla_cache_sizes():
    b, c = 2, 10_000
    mistral = footprint(models.get("mistral-7b").build(Phase.decode(b, c)), FUSED, H100)
    assert mistral.kv_cache_bytes == 2 * 32 * b * 4096 * 8 * 128 * 2  # the window's 4096 tokens, not 10,001
    ds = footprint(models.get("deepseek-v2-lite").build(Phase.decode(b, c)), FUSED, H100)
    assert ds.kv_cache_bytes == 27 * b * (c + 1) * (512 + 64) * 2  # latent + rope key per token and layer


def test_verdict_both_ways():
    assert footprint(LLAMA.build(Phase.decode(1, 1024)), FUSED, H100).fits
    big = footprint(models.get("llama-3.1-405b").build(Phase.decode(1, 1024)), FUSED, H100)
    assert big.weight_bytes == 405_853_388_800 * 2 and not big.fits


def test_largest_batch_solved_exactly_for_llama():
    c = 4096
    per_seq = llama_kv(1, c + 1) + (4096 + 128_256) * 2  # KV after the step + the head's peak activations
    expected = (80 * 2**30 - LLAMA_WEIGHTS) // per_seq  # the H100's 80 GB are binary, as its datasheet counts
    mb = max_batch(LLAMA.build, lambda n: Phase.decode(n, c), FUSED, H100)
    assert (mb.batch, mb.method) == (expected, "linear")
    assert mb.fits.total <= H100.capacity < mb.over.total
    assert mb.over.phase.batch == expected + 1


def test_largest_batch_is_zero_when_the_weights_alone_do_not_fit():
    mb = max_batch(models.get("llama-3.1-405b").build, lambda n: Phase.decode(n, 128), FUSED, H100)
    assert mb.batch == 0 and mb.fits is None and not mb.over.fits


def test_largest_batch_by_search_when_memory_is_not_linear():
    """A made-up block whose activations grow with batch squared: the line through batch 1 and 2 is wrong."""
    def build(phase):
        b = GraphBuilder(name="square")
        x = b.input("x", (phase.batch * phase.batch, 8))  # 16 * batch^2 bytes
        y = b.linear("proj", x, b.weight("w", (8, 8)))  # 128 bytes of weights, 16 * batch^2 of output
        return Model("square", phase, [Block("layer", 1, b.build(outputs=[y]))])
    cap = 128 + 32 * 10**2  # exactly batch 10
    gpu = Hardware("toy", "toy", {"bf16": 1e12}, 1e12, 1e12, cap, "test")
    mb = max_batch(build, lambda n: Phase.decode(n, 1), UNFUSED, gpu)
    assert (mb.batch, mb.method) == (10, "search")
    assert mb.fits.total == cap and mb.over.total == 128 + 32 * 11**2


def test_cli_json(capsys):
    assert main(["memory", "--phase", "decode", "--batch", "4", "--context", "1000", "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    dec = d["phases"]["decode"]
    assert (d["capacity_bytes"], dec["batch"], dec["context"]) == (80 * 2**30, 4, 1000)
    assert dec["kv_cache_bytes"] == llama_kv(4, 1001) and dec["weight_bytes"] == LLAMA_WEIGHTS
    assert dec["total_bytes"] == dec["weight_bytes"] + dec["kv_cache_bytes"] + dec["activation_bytes"]
    assert dec["fits"] is True
    assert dec["max_batch"]["total_bytes"] <= 80 * 2**30 < dec["max_batch"]["next_batch_total_bytes"]


def test_cli_says_plainly_when_it_does_not_fit(capsys):
    assert main(["memory", "llama-3.1-405b", "--phase", "decode", "--batch", "8"]) == 0
    text = capsys.readouterr().out
    total = next(line for line in text.splitlines() if line.startswith("total"))
    assert "DOES NOT FIT" in total and "the GPU has 85.9 GB (80 GiB)" in total
    assert "largest batch that fits at context 1,024: none" in text

# One-line errors and every preset: tests/test_generate.py covers both commands.


def test_a_parallel_group_reports_per_gpu_and_the_whole_groups_largest_batch():
    """TP 4 x DP 2: each replica's largest batch is one GPU's; the group of 8 serves two such batches."""
    import json
    from userland import opgraph
    r = opgraph("memory", "llama-3-70b", "--tp", "4", "--dp", "2", "--phase", "decode", "--format", "json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["gpus"] == 8 and out["replicas"] == 2
    mb = out["phases"]["decode"]["max_batch"]
    assert mb["group_sequences"] == 2 * mb["batch"] > 0


def test_memory_says_what_the_model_counts_and_leaves_out():
    """`opgraph memory` carries the builder's notes of each phase, as `report` does: a multimodal checkpoint's vision
    tower is not in the weights it counts, and a context beyond the config's max_position_embeddings (Llama-3-8B's
    8,192) is one an engine refuses by default."""
    from userland import opgraph

    r = opgraph("memory", "gemma-3-12b", "--phase", "decode")
    assert r.returncode == 0 and "note: the language model (text_config) is costed; the vision tower" in r.stdout
    long = opgraph("memory", "llama-3-8b", "--phase", "decode", "--context", "8192", "--format", "json")
    notes = json.loads(long.stdout)["phases"]["decode"]["notes"]
    assert any("8,193 positions exceed the model's context window of 8,192" in n for n in notes)
    within = opgraph("memory", "llama-3-8b", "--phase", "decode", "--context", "8191", "--format", "json")
    assert not any("context window" in n for n in json.loads(within.stdout)["phases"]["decode"]["notes"])
