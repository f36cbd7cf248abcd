"""Pipeline parallelism, derived by hand for Llama-3.1-405B on 2 x 8 H100 SXM (TP 8 within a node, PP 2 across
the two): each stage's weights and KV cache, the hand-over between stages over the network, and the step time
from the stages' times."""

import json

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from opgraph import Phase, analyze, choices, hardware, models, strategy
from opgraph.analysis.memory import footprint
from opgraph.core.model import BuildOptions
from opgraph.errors import OpgraphError
from opgraph.models import LlamaConfig
from userland import opgraph

L405 = models.get("llama-3.1-405b")  # d 16384, 128 heads, 8 KV heads of 128, FFN 53248, 126 layers, vocab 128256
H100 = hardware.load("h100-sxm")
FUSED = strategy("fused")
D, HD, FFN, VOCAB = 16384, 128, 53248, 128256
PIPE = BuildOptions(tp=8, pp=2)


def test_each_stage_holds_its_63_layers_an_eighth_each_and_its_end_of_the_model():
    cost = analyze(L405.build(Phase.decode(32, 1024), PIPE), FUSED, H100)
    layer = 2 * (16 * HD * D) + 2 * (1 * HD * D) + 3 * (FFN // 8 * D) + 2 * D  # q, o; k, v; gate, up, down; 2 norms
    first = 2 * (63 * layer + VOCAB // 8 * D)  # bf16; the embedding's vocabulary split eight ways
    last = 2 * (63 * layer + D + VOCAB // 8 * D)  # the final norm and lm_head
    assert [s.weight_bytes for s in cost.stages] == [first, last]
    assert [(s.stage.first_layer, s.stage.layers) for s in cost.stages] == [(0, 63), (63, 63)]
    assert cost.gpus == 16


def test_the_hand_over_between_stages_crosses_the_network():
    cost = analyze(L405.build(Phase.decode(32, 1024), PIPE), FUSED, H100)
    send = next(o for b in cost.blocks if b.name == "send" for o in b.ops)
    buffer = 16 * 1 * D * 2  # one micro-batch of 16 sequences' hidden states, bf16
    assert send.cost.wire_bytes == buffer
    assert send.cost.comm_s == pytest.approx(buffer / 50e9, rel=1e-12)  # 16 GPUs span two nodes


@pytest.mark.parametrize("phase", [Phase.decode(32, 1024), Phase.prefill(4, 512)], ids=["decode", "prefill"])
def test_the_step_is_the_pipeline_of_the_stage_times(phase):
    """Stage times from an unpipelined TP-8 model at one micro-batch (half the batch): 63 layers, plus the
    embedding's ops (stage 0) or the head's (stage 1), plus the hand-over for stage 0. Decode keeps both
    micro-batches in flight: max(2 x slowest, sum); prefill fills and drains: sum + (2 - 1) x slowest."""
    half = Phase.of(phase.name, phase.batch // 2, phase.length)
    plain = analyze(L405.build(half, BuildOptions(tp=8)), FUSED, H100)
    layer = plain.blocks[0].totals.expected_s
    ops = {o.name: o.cost for o in plain.blocks[-1].ops}
    embed = sum(ops[n].expected_s for n in ("embedding", "embedding_allreduce"))
    head = sum(c.expected_s for n, c in ops.items() if n not in ("embedding", "embedding_allreduce"))
    cost = analyze(L405.build(phase, PIPE), FUSED, H100)
    send = next(b for b in cost.blocks if b.name == "send").totals.expected_s
    t0, t1 = 63 * layer + embed + send, 63 * layer + head
    assert [s.totals.expected_s for s in cost.stages] == pytest.approx([t0, t1], rel=1e-9)
    step = max(2 * max(t0, t1), t0 + t1) if phase.past else t0 + t1 + max(t0, t1)
    assert cost.totals.expected_s == pytest.approx(step, rel=1e-9)



@pytest.mark.parametrize("phase", [Phase("decode", 6, 1, 0), Phase("prefill", 6, 512, 3000)],
                         ids=["one-token prompt", "chunk over cached tokens"])
def test_a_micro_batch_is_the_phase_with_fewer_sequences(phase):
    """Serving builds phases no report does: a one-token prompt (one new token over an empty cache) and a prompt's
    chunk over tokens already cached. A stage's micro-batch keeps both as they are, its batch ceil(6 / 4) = 2
    sequences (it once rebuilt them from their length alone: the first refused as a decode without a context, the
    second lost its cached keys)."""
    micro = L405.build(phase, BuildOptions(tp=8, pp=2, micro_batches=4)).micro
    assert (micro.phase.batch, micro.phase.new_tokens, micro.phase.past) == (2, phase.new_tokens, phase.past)
    alone = L405.build(Phase(phase.name, 2, phase.new_tokens, phase.past), BuildOptions(tp=8))
    flops = lambda model: sum(op.flops for op in model.blocks[0].graph.ops.values())  # noqa: E731
    assert flops(micro) == flops(alone)


def test_serve_with_a_pipeline_takes_one_token_prompts():
    r = opgraph("serve", "llama-3-8b", "--pp", "2", "--concurrency", "8", "--prompt", "1", "--output", "16",
                "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["ttft_s"] > 0

def test_the_group_does_the_work_of_the_unpipelined_model():
    phase = Phase.decode(32, 1024)
    piped = analyze(L405.build(phase, PIPE), FUSED, H100)
    plain = analyze(L405.build(phase, BuildOptions(tp=8)), FUSED, H100)
    assert piped.group.flops == plain.group.flops  # every layer once, on eight GPUs each; the sends add no FLOPs


def test_each_stage_caches_its_own_layers_for_the_whole_batch():
    phase = Phase.decode(32, 1024)
    fp = footprint(analyze(L405.build(phase, PIPE), FUSED, H100))
    kv = 63 * 2 * 32 * 1025 * 1 * HD * 2  # K and V, 63 layers, 32 x (1024 + 1) tokens, one KV head per GPU, bf16
    assert fp.kv_cache_bytes == kv
    assert fp.weight_bytes == 2 * (63 * (2 * 16 * HD * D + 2 * HD * D + 3 * FFN // 8 * D + 2 * D) + D + VOCAB // 8 * D)


def test_uneven_stages_and_batches():
    cfg = models.get("llama-3-8b")
    m = cfg.build(Phase.prefill(4, 64), BuildOptions(pp=3))
    assert [s.layers for s in m.stages] == [11, 11, 10]
    assert m.micro_batches == 3 and m.micro.phase.batch == 2  # ceil(4 / 3): costed at the largest micro-batch
    assert any("does not split evenly" in n for n in m.notes)
    given = cfg.build(Phase.decode(8, 64), BuildOptions(pp=2, pp_layers=(20, 12), micro_batches=4))
    assert [s.layers for s in given.stages] == [20, 12] and given.micro.phase.batch == 2


def test_pp_one_is_todays_report():
    phase = Phase.decode(16, 2048)
    a = analyze(L405.build(phase, BuildOptions(tp=8)), FUSED, H100)
    b = analyze(L405.build(phase, BuildOptions(tp=8, pp=1)), FUSED, H100)
    assert (a.totals.flops, a.totals.expected_s, a.weight_bytes) == (b.totals.flops, b.totals.expected_s, b.weight_bytes)


@pytest.mark.parametrize("args, says", [
    (["--pp", "33"], "exceeds the 32 layers"),
    (["--pp", "2", "--pp-layers", "10,20"], "add up to the 32 layers"),
    (["--pp", "2", "--pp-layers", "a,b"], "--pp-layers"),
    (["--micro-batches", "2"], "add --pp N"),
    (["--pp-layers", "16,16"], "add --pp N"),
    (["--pp", "2", "--micro-batches", "0"], "--micro-batches"),
])
def test_bad_pipeline_options_are_one_line_errors(args, says):
    r = opgraph("report", "llama-3-8b", *args)
    assert r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_user_model_that_ignores_pp_is_refused(tmp_path):
    from opgraph.core.graph import GraphBuilder
    from opgraph.core.model import Block, Model

    class OneStage:  # honours tp (it has a collective) but not pp
        def build(self, phase, options):
            b = GraphBuilder()
            x = b.all_reduce("ar", b.input("x", (phase.batch, 8)), group=2, out="y")
            return Model("one", phase, [Block("b", 1, b.build(outputs=[x]))], gpus=2)

    with pytest.raises(OpgraphError, match="ignored the option"):
        choices.builder(OneStage(), BuildOptions(tp=2, pp=2))


def test_the_command_line_reports_the_stages():
    r = opgraph("report", "llama-3.1-405b", "--tp", "8", "--pp", "2", "--phase", "decode", "--format", "json")
    assert r.returncode == 0, r.stderr
    p = json.loads(r.stdout)["phases"]["decode"]
    assert [s["layers"] for s in p["pipeline"]["stages"]] == [63, 63] and p["pipeline"]["micro_batches"] == 2
    assert p["group"]["gpus"] == 16
    text = opgraph("report", "llama-3.1-405b", "--tp", "8", "--pp", "2", "--phase", "decode").stdout
    assert "pipeline: 2 micro-batches of 16; per micro-batch stage 0 (layers 0-62)" in text


def test_the_group_caches_every_sequence_once_per_kv_head():
    """The group's KV cache: 126 layers x 8 KV heads x 128 x K and V x 2 bytes for each of 32 x 1,025 tokens,
    whether split over two stages of eight (PP 2 x TP 8) or over sixteen (TP 16, where 16 > 8 KV heads and each
    head is cached twice)."""
    phase = Phase.decode(32, 1024)
    once = 126 * 8 * HD * 2 * 2 * 32 * 1025
    piped = footprint(analyze(L405.build(phase, PIPE), FUSED, H100))
    assert piped.group_kv_cache_bytes == once
    wide = footprint(analyze(L405.build(phase, BuildOptions(tp=16)), FUSED, H100))
    assert wide.group_kv_cache_bytes == 2 * once
    text = opgraph("report", "llama-3.1-405b", "--tp", "8", "--pp", "2", "--phase", "decode").stdout
    assert "16.9 GB of KV cache" in text


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 12), st.integers(2, 4), st.integers(1, 8), st.booleans(),
       st.one_of(st.builds(Phase.prefill, st.integers(1, 8), st.integers(1, 32)),
                 st.builds(Phase.decode, st.integers(1, 8), st.integers(1, 64))))
def test_a_pipeline_does_the_models_work_once_and_stores_its_weights_once(layers, pp, micro, tied, phase):
    """Any number of stages over any layers, any micro-batching that splits the batch evenly: the group's FLOPs
    are one GPU's whole model's, and its stages' weights are the model's, a tied table stored by both ends."""
    assume(pp <= layers and phase.batch % min(micro, phase.batch) == 0)
    cfg = LlamaConfig("random", d_model=64, n_heads=4, n_kv_heads=2, head_dim=16, d_ffn=96, n_layers=layers,
                      vocab_size=300, tie_embeddings=tied)
    whole = analyze(cfg.build(phase), FUSED, H100)
    piped = analyze(cfg.build(phase, BuildOptions(pp=pp, micro_batches=micro)), FUSED, H100)
    assert piped.group.flops == whole.totals.flops
    table = 300 * 64 * 2 if tied and pp > 1 else 0  # the embedding table, also lm_head's, on the last stage too
    assert sum(s.weight_bytes for s in piped.stages) == whole.weight_bytes + table
    assert [s.stage.layers for s in piped.stages] == [layers // pp + (i < layers % pp) for i in range(pp)]
