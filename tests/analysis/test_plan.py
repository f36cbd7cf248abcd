"""`opgraph plan`: every candidate's figures checked against the same layout costed directly, step by step; the
search's layouts, limits, fits and refusals."""

import json

import pytest

from opgraph import Phase, analyze, choices, hardware, models, strategy
from opgraph.analysis.memory import footprint_of
from opgraph.analysis.plan import Layout, has_experts, layouts, search
from opgraph.core.model import BuildOptions
from userland import opgraph

H100 = hardware.load("h100-sxm")
FUSED = strategy("fused")


def plan_of(name: str, gpus: int, **kw):
    model = models.get(name)
    moe = has_experts(model.build(Phase.decode(1, 1)))
    return search(choices.arranger(model, BuildOptions(), H100), FUSED, H100, gpus=gpus, moe=moe, name=name, **kw)


def test_layouts_are_every_split_of_the_gpus():
    splits = {(tp, pp, 8 // (tp * pp)) for tp in (1, 2, 4, 8) for pp in (1, 2, 4, 8) if tp * pp <= 8}
    dense = layouts(8, moe=False)
    assert {(x.tp, x.pp, x.dp) for x in dense} == splits and len(dense) == len(splits) == 10
    assert all(x.gpus == 8 and x.ep == 1 for x in dense)
    experts = [x for x in layouts(8, moe=True) if x.ep > 1]  # experts over each stage's data-parallel GPUs
    assert experts == [Layout(1, 8, 8, 1), Layout(1, 4, 4, 2), Layout(1, 2, 2, 4),
                       Layout(8, 1, 8, 1), Layout(4, 1, 4, 2), Layout(2, 1, 2, 4),
                       # or over ep groups of each stage's tensor-parallel group: 2 or 4 of tp 8, 2 of tp 4
                       Layout(8, 1, 2, 1), Layout(8, 1, 4, 1), Layout(4, 1, 2, 2)]
    assert Layout(8, 1, 2).describe() == "tp 8 x ep 2 (2 groups of 4)" and Layout(8, 1, 8).describe() == "tp 8 x ep 8"
    assert layouts(1, moe=True) == [Layout(1, 1, 1)]


def test_each_candidate_is_what_its_layout_costs_step_by_step():
    """Prompt 512, 4 output tokens: TTFT is the prefill; then 3 decode steps at contexts 512, 513, 514, each
    costed here by building and analyzing its own model; throughput = replicas x batch x 4 / total / 8 GPUs."""
    s = plan_of("llama-3-70b", 8, prompt=512, output=4, batches=[1, 16, 64])
    assert s.ranked
    for c in s.ranked:
        build = choices.builder(models.get("llama-3-70b"), BuildOptions(tp=c.layout.tp, dp=c.layout.dp, pp=c.layout.pp))
        ttft = analyze(build(Phase.prefill(c.batch, 512)), FUSED, H100).totals.expected_s
        steps = [analyze(build(Phase.decode(c.batch, ctx)), FUSED, H100).totals.expected_s for ctx in (512, 513, 514)]
        assert c.ttft_s == pytest.approx(ttft, rel=1e-9)
        assert c.tpot_s == pytest.approx(sum(steps) / 3, rel=1e-9)
        assert c.tokens_per_s_per_gpu == pytest.approx(c.layout.dp * c.batch * 4 / (ttft + sum(steps)) / 8, rel=1e-9)
        last = footprint_of(build(Phase.decode(c.batch, 515)), FUSED, H100).total
        assert last <= c.memory_bytes <= H100.capacity
    assert any(c.layout.pp > 1 for c in s.ranked)  # pipelines are among the candidates, checked the same way


def test_ranked_best_first_and_what_does_not_fit_is_counted():
    s = plan_of("llama-3-70b", 8, prompt=1024, output=64)
    rates = [c.tokens_per_s_per_gpu for c in s.ranked]
    assert rates == sorted(rates, reverse=True)
    # one GPU holds all 141 GB of Llama-3-70B's bf16 weights without tp or pp: no batch of that layout fits;
    # split over 4 stages of 20 layers (35 GB each) it does
    assert not [c for c in s.ranked if c.layout.tp == c.layout.pp == 1]
    assert [c for c in s.ranked if c.layout.tp == 1 and c.layout.pp == 4]
    assert s.evaluated + s.too_big == 10 * 10  # ten layouts (tp x pp x dp = 8), ten batches each
    assert s.evaluated == len(s.ranked) + s.too_slow


def test_a_latency_limit_drops_the_slow_candidates():
    free = plan_of("llama-3-8b", 2, prompt=256, output=32)
    limit = sorted(c.tpot_s for c in free.ranked)[len(free.ranked) // 2]
    capped = plan_of("llama-3-8b", 2, prompt=256, output=32, max_tpot_s=limit)
    assert capped.ranked and all(c.tpot_s <= limit for c in capped.ranked)
    assert capped.too_slow == len(free.ranked) - len(capped.ranked) > 0


def test_moe_models_get_the_expert_parallel_layout_and_bad_splits_are_dropped_with_their_reason():
    s = plan_of("mixtral-8x7b", 8, prompt=256, output=16, batches=[8])
    assert any(c.layout.ep == 8 for c in s.ranked)
    three = plan_of("llama-3-8b", 3, prompt=128, output=8, batches=[1])
    reasons = {d.layout.tp: d.reason for d in three.dropped}
    assert "--tp 3 does not divide the attention heads (32)" in reasons[3]


def test_the_command_line_ranks_and_refuses_clearly():
    r = opgraph("plan", "llama-3-8b", "--gpus", "2", "--prompt", "128", "--output", "8", "--batch", "1,8",
                "--format", "json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["gpus"] == 2 and out["ranked"][0]["expected_tokens_per_s_per_gpu"] >= out["ranked"][-1]["expected_tokens_per_s_per_gpu"]
    for args, says in ((["--gpus", "0"], "--gpus"), ([], "--gpus"), (["--gpus", "2", "--max-tpot", "-1"], "--max-tpot"),
                       (["--gpus", "2", "--tp", "2"], "--tp"), (["--gpus", "2", "--batch", "0"], "--batch")):
        bad = opgraph("plan", "llama-3-8b", *args)
        assert bad.returncode == 2 and says in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
