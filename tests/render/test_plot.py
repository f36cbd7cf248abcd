"""Plots: the files are written, and what is drawn is the report's data (point coordinates, bar heights)."""

import json
import math

import pytest

pytest.importorskip("matplotlib")

from userland import opgraph, python  # noqa: E402
from opgraph import hardware  # noqa: E402
from opgraph import models  # noqa: E402
from opgraph import BF16, Phase, analyze, strategy  # noqa: E402
from opgraph.cli import main  # noqa: E402
from opgraph.render.plot import breakdown, breakdown_data, matmul_dtype, roofline, roofline_data, save  # noqa: E402

H100 = hardware.load("h100-sxm")
FUSED = strategy("fused")


@pytest.fixture(scope="module")
def results():
    cfg = models.get("llama-3-8b")
    return [analyze(cfg.build(ph), FUSED, H100) for ph in (Phase.prefill(32, 1024), Phase.decode(32, 1024))]


def report_json(*args):
    r = opgraph("report", "--format", "json", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_roofline_points_are_the_reports_intensity_and_flops_over_expected_time(results):
    fig, data = roofline(results, BF16)
    report = report_json()
    expected = {}
    for phase, p in report["phases"].items():
        for b in p["blocks"]:
            for op in b["ops"]:
                if op["flops"]:
                    x = math.inf if op["intensity"] is None else op["intensity"]
                    expected[(phase, b["name"], op["name"])] = (x, op["flops"] / op["expected_s"])
    drawn = {(pt.phase, pt.block, pt.op): (pt.intensity, pt.attainable) for pt in data.points}
    assert drawn.keys() == expected.keys()
    for key, (x, y) in expected.items():
        assert drawn[key][0] == pytest.approx(x, rel=1e-12) and drawn[key][1] == pytest.approx(y, rel=1e-12)
    # only ops that do no arithmetic are left out: the embedding lookups and prefill's last-position slice
    assert sorted(data.skipped) == ["decode embed_head.embedding: does no arithmetic",
                                    "prefill embed_head.embedding: does no arithmetic",
                                    "prefill embed_head.last_position: does no arithmetic"]
    assert data.ridge == pytest.approx(989e12 / 3350e9)
    # what the axes hold: the finite points at their coordinates, the ridge marked, log axes
    ax = fig.axes[0]
    offsets = [tuple(xy) for c in ax.collections for xy in c.get_offsets()]
    for (x, y) in expected.values():
        if not math.isinf(x):
            assert any(math.isclose(ox, x, rel_tol=1e-9) and math.isclose(oy, y, rel_tol=1e-9) for ox, oy in offsets)
    ridge = [ln for ln in ax.lines if ln.get_marker() == "*"]
    assert len(ridge) == 1 and ridge[0].get_xdata()[0] == pytest.approx(data.ridge)
    assert ax.get_xscale() == ax.get_yscale() == "log"
    labels = " ".join(t.get_text() for t in ax.texts)
    for name in ("q_proj", "qk", "av", "lm_head", "down_proj"):
        assert name in labels


def test_breakdown_bars_are_model_expected_time_per_op(results):
    fig, data = breakdown(results)
    report = report_json()
    for i, (phase, p) in enumerate(report["phases"].items()):
        per_op = {}
        for b in p["blocks"]:
            for op in b["ops"]:
                per_op[op["name"]] = per_op.get(op["name"], 0.0) + b["count"] * op["expected_s"]
        for name, times in data.segments:
            if not name.startswith("other"):
                assert times[i] == pytest.approx(per_op[name], rel=1e-12)
        assert sum(t[i] for _, t in data.segments) == pytest.approx(p["model"]["expected_s"], rel=1e-9)
        assert data.totals[i] == p["model"]["expected_s"]
        # the bars drawn on this phase's axis are those segments, in ms, stacked to the model time
        heights = [bar.get_height() for bar in fig.axes[i].patches]
        assert heights == pytest.approx([t[i] * 1e3 for _, t in data.segments], rel=1e-12)
    assert "other" in data.segments[-1][0] and "softmax" in data.other


@pytest.mark.parametrize("kind", ["roofline", "breakdown"])
@pytest.mark.parametrize("suffix,magic", [(".png", b"\x89PNG"), (".svg", b"<svg")])
def test_cli_writes_the_file(tmp_path, capsys, kind, suffix, magic):
    out = tmp_path / f"{kind}{suffix}"
    assert main(["plot", kind, "--batch", "4", "--seq-len", "256", "--context", "256", "--out", str(out)]) == 0
    assert out.is_file() and magic in out.read_bytes()[:400]
    assert capsys.readouterr().out.startswith(f"wrote {out}")


@pytest.mark.parametrize("args", [["plot"], ["plot", "roofline"], ["plot", "roofline", "--out", "x.jpg"],
                                  ["plot", "breakdown", "--out", "no/such/folder/x.png"], ["plot", "pie", "--out", "x.png"]])
def test_cli_errors_are_one_line(capsys, args):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_missing_matplotlib_says_how_to_install(tmp_path):
    code = ("import sys; sys.modules['matplotlib'] = None\n"  # makes `import matplotlib` raise ImportError
            "from opgraph.cli import main\n"
            f"sys.exit(main(['plot', 'roofline', '--out', {str(tmp_path / 'r.png')!r}]))")
    r = python(code)
    assert r.returncode == 2 and 'pip install "opgraph[plot]"' in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and not (tmp_path / "r.png").exists()


def test_no_other_command_imports_matplotlib():
    code = ("import sys\nfrom opgraph.cli import main\n"
            "for argv in (['report'], ['memory', '--phase', 'decode'], ['generate', '--prompt', '8', '--output', '2'],"
            " ['models'], ['hardware']):\n"
            "    assert main(argv) == 0\n"
            "assert 'matplotlib' not in sys.modules, 'matplotlib was imported'\n")
    r = python(code)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("preset", models.names())
def test_every_preset_has_plot_data(preset):
    """Every op with FLOPs is a point and the bars add up to the model time (rendering is the same code for all;
    it is exercised for a multi-block MoE/MLA model below)."""
    cfg = models.get(preset)
    res = [analyze(cfg.build(ph), FUSED, H100) for ph in (Phase.prefill(2, 64), Phase.decode(2, 64))]
    points = roofline_data(res, matmul_dtype(cfg.build(Phase.decode(2, 64)))).points
    assert len(points) == sum(1 for p in res for b in p.blocks for o in b.ops if o.cost.flops)
    bars = breakdown_data(res)
    for i, p in enumerate(res):
        assert sum(t[i] for _, t in bars.segments) == pytest.approx(p.totals.expected_s, rel=1e-9)


def test_multi_block_model_renders_with_block_qualified_labels(tmp_path):
    """DeepSeek-V3 has dense and MoE layers with the same attention ops: their labels name the block."""
    cfg = models.get("deepseek-v3")
    res = [analyze(cfg.build(ph), FUSED, H100) for ph in (Phase.prefill(2, 64), Phase.decode(2, 64))]
    fig, data = roofline(res, matmul_dtype(cfg.build(Phase.decode(2, 64))))
    labels = {pt.label for pt in data.points}
    assert {"dense_layer.q_a_proj", "moe_layer.q_a_proj", "experts.down_proj"} <= labels
    save(fig, tmp_path / "deepseek.png")
    assert (tmp_path / "deepseek.png").read_bytes()[:4] == b"\x89PNG"


def test_sweep_plot_data_are_the_sweep_and_its_crossovers(tmp_path, capsys):
    from opgraph.analysis.crossover import crossovers
    from opgraph.analysis.sweep import sweep_curve as sweep_data
    from opgraph.render.plot import sweep

    cfg, hw, plan = models.get("llama-3-8b"), hardware.load("h100-sxm"), strategy("fused")
    batches = [1, 16, 128, 256, 512]
    curve = sweep_data(cfg.build, plan, hw, "decode", batches, 1024)
    for x, t in zip(batches, curve.model_s):
        assert t == analyze(cfg.build(Phase.decode(x, 1024)), plan, hw).totals.expected_s
    layer = dict(curve.blocks)["layer"]
    assert layer[1] == 32 * analyze(cfg.build(Phase.decode(16, 1024)), plan, hw).blocks[0].totals.expected_s
    # lm_head's block crosses at 321 (in range), the layer never does at context 1024.
    expected = {x.label: x.at for x in crossovers(cfg.build, plan, hw, "decode", 1024)}
    assert dict(curve.crossovers) == {"embed_head": expected["embed_head"]}
    fig, _ = sweep([curve], "test")
    ax = fig.axes[0]
    drawn = {line.get_label(): (tuple(line.get_xdata()), tuple(line.get_ydata())) for line in ax.lines}
    assert drawn["model, expected"] == (tuple(batches), tuple(t * 1e3 for t in curve.model_s))
    assert drawn["model, roofline"] == (tuple(batches), tuple(t * 1e3 for t in curve.roofline_s))
    assert ax.get_ylabel() == "expected time (ms)"
    out = tmp_path / "sweep.png"
    assert main(["plot", "sweep", "--phase", "decode", "--batch", "1,4,...,256", "--out", str(out)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG")
    assert "crossovers decode: embed_head from batch 321" not in capsys.readouterr().out  # 321 > 256: out of range


def test_sweep_plot_holds_one_value_fixed(capsys):
    assert main(["plot", "sweep", "--phase", "prefill", "--batch", "1,2", "--out", "x.png"]) == 2
    assert "--batch is held fixed in a prefill sweep plot" in capsys.readouterr().err


def test_validate_plot_draws_every_measured_kernel(tmp_path):
    csv = tmp_path / "m.csv"
    csv.write_text("class,dtype,m,n,k,batch,seq_len,context,heads,kv_heads,head_dim,time_us,source\n"
                   "gemm,bf16,1,4096,4096,,,,,,,14,x\ngemm,bf16,4096,4096,4096,,,,,,,180,x\n"
                   "decode_attention,bf16,,,,8,,1023,32,8,128,18,x\n")
    out = tmp_path / "v.png"
    code = main(["plot", "validate", str(csv), "--out", str(out)])
    assert code == 0 and out.stat().st_size > 10_000
    from opgraph import hardware
    from opgraph.analysis.validate import validate
    from opgraph.files.measurements import read
    from opgraph.render.plot import validation
    fig = validation(validate(read(csv), hardware.load("h100-sxm")))
    roofline_panel, expected_panel = fig.axes
    # one point per kernel in each panel, at (measured, predicted) in microseconds
    from matplotlib.collections import PathCollection
    points = [tuple(xy) for c in expected_panel.collections if isinstance(c, PathCollection) for xy in c.get_offsets()]
    assert sorted(x for x, _ in points) == pytest.approx([14, 18, 180])


def test_pareto_draws_every_serving_candidate_and_its_front(tmp_path, capsys):
    """One point a candidate (filled within the limits, hollow outside), the front's line through exactly the
    candidates the plan marks, the best starred."""
    from opgraph import choices
    from opgraph.analysis.serving_plan import search_serving
    from opgraph.core.model import BuildOptions
    from opgraph.render.plot import pareto
    model, hw = models.get("llama-3-8b"), hardware.load("h100-sxm")
    s = search_serving(choices.arranger(model, BuildOptions(), hw), hw, gpus=2, moe=False, name=model.name,
                       prompt=500, output=64, concurrencies=[1, 4, 16, 64], max_tpot_s=0.012)
    fig = pareto(s)
    ax = fig.axes[0]
    drawn = sum(len(c.get_offsets()) for c in ax.collections)
    assert drawn == len(s.candidates) + (s.best is not None)
    (line,) = [ln for ln in ax.lines if ln.get_label() == "Pareto front"]
    assert len(line.get_xdata()) == len(s.front) and "tokens/s per GPU" in ax.get_ylabel()
    assert main(["plot", "pareto", "--gpus", "2", "--concurrency", "1,4", "--prompt", "500", "--output", "64",
                 "--out", str(tmp_path / "p.png")]) == 0
    assert "on the Pareto front" in capsys.readouterr().out and (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
