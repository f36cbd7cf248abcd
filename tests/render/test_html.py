"""`--format html` (issue 19, first part: report): one self-contained page whose embedded data is the JSON output
exactly, every op of the model in its tables, one chart mark per op that has a place on log axes, nothing fetched
from the network, within the size budget; and, where Chromium is installed, the page runs without a script error
and sorts."""

import base64
import gzip
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from userland import opgraph


class Page(HTMLParser):
    """What a test reads of a page: the embedded data, table rows by table, chart marks, external references."""

    def __init__(self):
        super().__init__()
        self.data, self.rows, self.marks, self.external, self._in_data, self._table = "", {}, 0, [], False, None
        self.encoding, self.svg_marks = None, []  # how the data is embedded; marks of each chart in turn
        self.circles, self._title = [], None  # each chart's marks in turn: {x, y, hollow, title}; the title being read
        self._circle = False  # inside a chart mark (its title is its hover text)
        self.cells, self.parts, self.bars = {}, [], 0  # sort values by table and row; memory stacks' widths; bars
        self.graphs, self._graph = {}, None  # each drawn graph: its ops (op, kernel), kernel bands, edges

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script" and a.get("id") == "opgraph-data":
            self._in_data, self.encoding = True, a.get("data-encoding")
        if tag == "svg" and a.get("class") == "graph":
            self._graph = self.graphs[a["data-graph"]] = {"ops": {}, "kernels": [], "edges": []}
        elif tag == "svg":
            self.svg_marks.append(0)
            self.circles.append([])
        if tag == "g" and a.get("class") == "node" and "data-op" in a:
            self._graph["ops"][a["data-op"]] = a["data-kernel"]
        if tag == "rect" and a.get("class") == "kernel":
            self._graph["kernels"].append(a["data-kernel"])
        if tag == "path" and a.get("class") == "edge":
            self._graph["edges"].append((a["data-tensor"], a["data-from"], a["data-to"], a["data-solid"] == "1"))
        if tag == "table" and a.get("id"):
            self._table = a["id"]
            self.rows[self._table] = []
        if tag == "tr" and self._table and "data-op" in a:
            self.rows[self._table].append(a["data-op"])
            self.cells.setdefault(self._table, []).append([])
        if tag == "td" and self._table in self.cells and "data-v" in a:
            self.cells[self._table][-1].append(a["data-v"])
        if tag == "rect" and a.get("class") == "part":
            self.parts.append(float(a["width"]))
        if tag == "rect" and a.get("class") == "bar":
            self.bars += 1
        if tag == "circle" and a.get("class") == "mark":
            self.marks += 1
            self.svg_marks[-1] += 1
            self.circles[-1].append({"x": a["cx"], "y": a["cy"], "hollow": a.get("fill") == "none", "title": ""})
            self._circle = True
        if tag == "title" and self._circle:
            self._title = self.circles[-1][-1]
        for key in ("src", "href"):
            if key in a and re.match(r"(https?:)?//", a[key]):
                self.external.append(a[key])

    def handle_endtag(self, tag):
        if tag == "title":
            self._title = None
        if tag == "circle":
            self._circle = False
        if tag == "svg":
            self._graph = None
        if tag == "script":
            self._in_data = False
        if tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._in_data:
            self.data += data
        if self._title is not None:
            self._title["title"] += data

    def rings(self, chart: int) -> list[dict]:
        """A chart's rings (hollow marks), each with the hover texts of the points it circles: the filled marks at its
        centre (curves that nearly meet may put several there)."""
        dots = {}
        for c in self.circles[chart]:
            if not c["hollow"]:
                dots.setdefault((c["x"], c["y"]), []).append(c["title"])
        return [dict(c, on=dots.get((c["x"], c["y"]), [])) for c in self.circles[chart] if c["hollow"]]

    def record(self):
        """The embedded record, decoded as the page says it is (plain JSON, or gzip and base64)."""
        if self.encoding == "gzip+base64":
            return json.loads(gzip.decompress(base64.b64decode(self.data)))
        assert self.encoding is None
        return json.loads(self.data.replace("<\\/", "</"))


def read(argv):
    r = opgraph(*argv)
    assert r.returncode == 0, r.stderr
    p = Page()
    p.feed(r.stdout)
    return r.stdout, p


@pytest.mark.parametrize("argv", [["report"], ["report", "mixtral-8x7b", "--tp", "2", "--phase", "decode"],
                                  ["report", "deepseek-v3", "--hardware", "h200", "--tp", "8"]])
def test_a_report_page_holds_the_json_every_op_and_a_mark_per_drawable_op(argv):
    text, page = read([*argv, "--format", "html"])
    data = page.record()
    assert data == json.loads(opgraph(*argv, "--format", "json").stdout)
    drawable = 0
    for phase, p in data["phases"].items():
        for b in p["blocks"]:
            assert page.rows[f"{phase}-{b['name']}-ops"] == [o["name"] for o in b["ops"]]
            drawable += sum(o["flops"] > 0 and o["bytes"] > 0 and o["intensity"] is not None for o in b["ops"])
    assert page.marks == drawable and not page.external
    assert len(text.encode()) < 2_000_000 and text.startswith("<!DOCTYPE html>")


def test_the_largest_preset_stays_within_two_megabytes():
    text, _ = read(["report", "kimi-k2", "--hardware", "b300", "--tp", "8", "--format", "html"])
    assert len(text.encode()) < 2_000_000


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium): "
                                                             "the page's script is not run and no screenshot taken")
DOCS = Path(__file__).resolve().parents[2] / "docs"
# Before the page's own script: every script error and console error is kept.
WATCH = ("<head><script>window.errs = []; addEventListener('error', function (e) { errs.push(String(e.message)); });"
         "var said = console.error; console.error = function () { errs.push([].join.call(arguments, ' ')); "
         "said.apply(console, arguments); };</script>")


def in_chromium(text: str, probe: str, tmp_path, screenshot: Path | None = None, height: int = 900) -> dict:
    """Load the page in headless Chromium with `probe` appended, a script whose `check()` returns a result (or a
    Promise of one); returns {"result": ..., "errors": [...]}, and saves a screenshot (1280 px wide) if asked: one
    launch does both."""
    script = ("<script>" + probe + "; Promise.resolve().then(check).then(function (r) { document.title = "
              "JSON.stringify({result: r, errors: errs}); }, function (e) { errs.push(String(e)); document.title = "
              "JSON.stringify({result: null, errors: errs}); });</script></body>")
    page = tmp_path / "page.html"
    page.write_text(text.replace("<head>", WATCH, 1).replace("</body>", script))
    shot = [f"--screenshot={screenshot}", f"--window-size=1280,{height}"] if screenshot else []
    r = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--virtual-time-budget=10000", *shot, "--dump-dom", page.as_uri()],
                       capture_output=True, text=True, timeout=120)
    title = re.search(r"<title>(\{.*?)</title>", r.stdout, re.S)
    assert title, r.stderr[-2000:]
    return json.loads(title.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@needs_chromium
def test_the_page_runs_in_chromium_without_a_script_error_and_sorts(tmp_path):
    """Headless Chromium loads the page with a check appended: it clicks the expected-time column's button of the
    decode layer's table twice and reports the first row each time (descending after the second click). The same
    launch takes the report's screenshot in docs/."""
    text, _ = read(["report", "--format", "html"])
    probe = """function check() {
      var out = [], t = document.getElementById('decode-layer-ops'), b = t.querySelectorAll('th button')[7];
      b.click(); out.push(t.tBodies[0].rows[0].getAttribute('data-op'));
      b.click(); out.push(t.tBodies[0].rows[0].getAttribute('data-op'));
      return out;
    }"""
    got = in_chromium(text, probe, tmp_path, DOCS / "report-html.png", height=1100)
    assert got["errors"] == []
    data = json.loads(opgraph("report", "--format", "json").stdout)
    ops = data["phases"]["decode"]["blocks"][0]["ops"]
    fastest = min(ops, key=lambda o: o["expected_s"])["expected_s"]
    slowest = max(ops, key=lambda o: o["expected_s"])["name"]
    first, second = got["result"]
    assert next(o for o in ops if o["name"] == first)["expected_s"] == fastest and second == slowest


# For every other kind of page: the page's data read back by its own script (opgraphData: plain or compressed)
# equals the JSON output, and the first numeric column of its first sortable table sorts both ways.
SORTS = """function check() {
  var t = document.querySelector('table.sortable'), sorted = [];
  if (!t) { return window.opgraphData().then(function (d) { return {data: d, column: -1, sorted: []}; }); }
  var rows = function () { return Array.prototype.map.call(t.tBodies[0].rows, function (r) { return r; }); };
  var col = -1, n = t.tHead.rows[0].cells.length;
  for (var c = 0; c < n && col < 0; c++) {
    var vs = rows().map(function (r) { return r.cells[c].getAttribute('data-v'); });
    if (vs.every(function (v) { return v !== '' && !isNaN(parseFloat(v)); }) && new Set(vs).size > 1) { col = c; }
  }
  var b = t.querySelectorAll('th button')[col];
  [0, 1].forEach(function () {
    b.click();
    sorted.push(rows().map(function (r) { return parseFloat(r.cells[col].getAttribute('data-v')); }));
  });
  return window.opgraphData().then(function (d) { return {data: d, column: col, sorted: sorted}; });
}"""

PAGES = {  # kind: (argv, the screenshot it takes in docs/, or None)
    "sweep": (["sweep", "--phase", "decode", "--batch", "1:100", "--context", "100:10000:100"], "sweep-html.png"),
    "serving plan": (["plan", "llama-3-70b", "--gpus", "8", "--concurrency", "1,2,4,...,512", "--prompt", "2048",
                      "--output", "256", "--max-tpot", "50"], "plan-html.png"),
    "crossover": (["crossover", "--phase", "decode"], "crossover-html.png"),
    "compare": (["compare", "--phase", "decode"], None),
    "memory": (["memory", "gemma-3-27b", "--phase", "decode", "--batch", "8", "--context", "16384"], None),
    "static plan": (["plan", "--gpus", "4", "--batch", "1,8,64"], None),
    "serve": (["serve", "--concurrency", "16", "--prompt", "512", "--output", "64"], None),
    "generate": (["generate", "--prompt", "512", "--output", "64"], None),  # no table to sort
    "disaggregated": (["serve", "--disaggregate", "1p2d", "--concurrency", "8", "--prompt", "500", "--output", "50"],
                      None),
}


@needs_chromium
@pytest.mark.parametrize("kind", list(PAGES))
def test_every_kind_of_page_runs_in_chromium_reads_its_data_back_and_sorts(kind, tmp_path):
    argv, shot = PAGES[kind]
    text, page = read([*argv, "--format", "html"])
    got = in_chromium(text, SORTS, tmp_path, DOCS / shot if shot else None)
    assert got["errors"] == [] and got["result"]["data"] == page.record()  # its script decodes what it holds
    if kind == "generate":
        assert got["result"]["column"] == -1 and 'class="sortable"' not in text
        return
    up, down = got["result"]["sorted"]
    assert got["result"]["column"] >= 0 and up == sorted(up) and down == sorted(up, reverse=True) and up != down


def test_a_serving_plan_page_holds_the_json_and_a_mark_per_candidate():
    argv = ["plan", "llama-3-8b", "--gpus", "2", "--concurrency", "1,4,16,64", "--prompt", "500", "--output", "64",
            "--max-tpot", "15"]
    text, page = read([*argv, "--format", "html"])
    data = page.record()
    json_output = json.loads(opgraph(*argv, "--format", "json").stdout)
    assert data.pop("search_s") > 0 and json_output.pop("search_s") > 0  # wall time: the one figure runs differ in
    assert data == json_output
    assert page.rows["candidates"] == [f"{c['layout']}@{c['concurrency_per_replica']}/{c['max_batch_tokens']}"
                                       for c in data["candidates"]]
    assert page.marks == len(data["candidates"]) and not page.external and "best within the limits" in text
    assert ": within to the right" in text  # the TPOT limit drawn: 1 / 15 ms of tokens/s per user


def test_a_validation_page_holds_the_json_and_a_mark_per_row(tmp_path):
    f = tmp_path / "k.csv"
    f.write_text("class,dtype,time_us,m,n,k\ngemm,bf16,10,8,4096,4096\ngemm,bf16,60,512,4096,4096\n"
                 "gemm,bf16,900,8192,4096,4096\n")
    text, page = read(["validate", str(f), "--format", "html"])
    data = page.record()
    assert data == json.loads(opgraph("validate", str(f), "--format", "json").stdout)
    assert page.marks == 3 and page.rows["errors"] == ["gemm", "all"] and not page.external


def test_a_serving_validation_page_holds_the_json_and_a_mark_per_row_on_each_chart(tmp_path):
    f = tmp_path / "s.csv"
    f.write_text("model,gpu,engine,tp,pp,concurrency,prompt_tokens,output_tokens,ttft_ms,tpot_ms\n"
                 "llama-3-8b,h100-sxm,vllm,1,1,4,500,16,50,10\nllama-3-8b,h100-sxm,sglang,1,1,8,500,16,60,12\n"
                 "llama-3-8b,h100-sxm,vllm,1,1,5,500,16,50,10\n")
    text, page = read(["validate", str(f), "--format", "html"])
    data = page.record()
    assert data == json.loads(opgraph("validate", str(f), "--format", "json").stdout) and not page.external
    assert len(data["rows"]) == 3 and page.svg_marks == [3, 3]  # TPOT and TTFT: a mark per row on each
    assert page.rows["errors"] == ["sglang h100-sxm llama-3-8b", "vllm h100-sxm llama-3-8b", "all"]


def test_out_writes_the_page_to_a_file_and_says_so(tmp_path):
    out = tmp_path / "report.html"
    r = opgraph("report", "--format", "html", "--out", str(out))
    assert r.returncode == 0 and r.stdout == f"wrote {out} ({out.stat().st_size:,} bytes)\n"
    assert out.read_text() == opgraph("report", "--format", "html").stdout
    for bad, says in ((tmp_path, "is a folder"), (tmp_path / "no" / "x.html", "does not exist")):
        r = opgraph("report", "--format", "html", "--out", str(bad))
        assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr
    plan = tmp_path / "plan.html"  # plan has --output too: --out is its own option
    assert opgraph("plan", "--gpus", "2", "--concurrency", "1,4", "--output", "16", "--format", "html", "--out",
                   str(plan)).returncode == 0 and plan.read_text().startswith("<!DOCTYPE html>")


def _sweep_ids(points):
    return [f"{p['hardware']}:{p['phase']}:{p['batch']}:{p.get('seq_len', p.get('context'))}" for p in points]


def _first_compute_bound(points):
    """Per grid (GPU and phase, in order): each curve's first point, along the axis with more values (the batch on a
    tie), at which the model is compute-bound; one entry a curve that has one."""
    grids = {}
    for p in points:
        grids.setdefault((p["hardware"], p["phase"]), []).append(p)
    out = []
    for pts in grids.values():
        length = "seq_len" if "seq_len" in pts[0] else "context"
        x = "batch" if len({p["batch"] for p in pts}) >= len({p[length] for p in pts}) else length
        curve = length if x == "batch" else "batch"
        firsts = {}
        for p in sorted(pts, key=lambda p: p[x]):
            if p["bound"] == "compute":
                firsts.setdefault(p[curve], p)
        out.append([firsts[v] for v in sorted(firsts)])
    return out


def test_a_sweep_page_holds_the_json_every_point_and_a_mark_per_point_on_each_chart():
    argv = ["sweep", "--batch", "1,8,64,512", "--context", "128,4096", "--seq-len", "256", "--phase", "both",
            "--hardware", "h100-sxm,h200"]
    text, page = read([*argv, "--format", "html"])
    data = page.record()
    assert page.encoding is None and data == json.loads(opgraph(*argv, "--format", "json").stdout)
    assert page.rows["points"] == _sweep_ids(data["points"])
    # four grids (2 GPUs x 2 phases), three charts each (time, throughput, intensity), every point on each, and a
    # ring on each curve at its first compute-bound point, if it has one
    per_grid, turns = {}, _first_compute_bound(data["points"])
    for p in data["points"]:
        per_grid[(p["hardware"], p["phase"])] = per_grid.get((p["hardware"], p["phase"]), 0) + 1
    assert page.svg_marks == [n + len(t) for n, t in zip(per_grid.values(), turns) for _ in range(3)]
    assert all(turns)  # some rings on every grid: prefill of 256 tokens, or decode at context 128, at batch 512
    for chart, firsts in enumerate(t for t in turns for _ in range(3)):
        rings = page.rings(chart)  # each circles the curve's own point there: batch and length in its hover text
        length = [k for k in ("seq_len", "context") if k in firsts[0]][0]
        assert [[t.split(":")[0] for t in r["on"]] for r in rings] == [
            [f"batch {p['batch']:,}, {length} {p[length]:,}"] for p in firsts]
        assert all("compute-bound from batch" in r["title"] for r in rings)
    assert not page.external and "roofline" in text and "FLOP/byte" in text and "turns compute-bound" in text


def test_a_sweep_of_ten_thousand_points_draws_at_most_the_cap_and_stays_under_two_megabytes():
    argv = ["sweep", "--phase", "decode", "--batch", "1:100", "--context", "100:10000:100"]
    text, page = read([*argv, "--format", "html"])
    data = page.record()
    assert len(data["points"]) == 10_000 and data == json.loads(opgraph(*argv, "--format", "json").stdout)
    assert page.encoding == "gzip+base64" and len(text.encode()) < 2_000_000 and not page.external
    # 7 curves (one a colour) of the 100 contexts, each at all 100 batches, none compute-bound (no ring); the table
    # every 20th point
    assert _first_compute_bound(data["points"]) == [[]]
    assert page.svg_marks == [700, 700, 700] and "7 of the 100 values of context drawn" in text
    assert page.rows["points"] == _sweep_ids(data["points"])[::20]


def _crossover_marks(data):
    """Per phase, in order, each chart's (points, rings): the step time (the model and each block: a point a size),
    throughput and intensity (the model), then the crossover rows (a mark an op or block that turns compute-bound).
    Rings: on the time chart one a block and size at which it or its ops turn compute-bound, on the model's curves
    one a size at which any does; and the first size at which the whole model is compute-bound, on each."""
    out = []
    for p in data["phases"].values():
        c = p["curves"]
        sizes, finite = c[p["variable"]], [x for x in p["crossovers"] if x["at"] is not None]
        model = [x for x, bound in zip(sizes, c["bound"]) if bound == "compute"][:1]
        on_blocks = {(x["op"].split(".")[0], x["at"]) for x in finite}
        on_model = {x["at"] for x in finite} | set(model)
        out += [(len(sizes) * (1 + len(c["block_total_expected_s"])), len(on_blocks) + len(model)),
                (len(sizes), len(on_model)), (len(sizes), len(on_model)), (len(finite), 0)]
    return out


def _crossover_counts(page):
    return [(len(marks) - len(page.rings(i)), len(page.rings(i))) for i, marks in enumerate(page.circles)]


@pytest.fixture(scope="module")
def crossover_page():
    """mixtral-8x7b at TP 2, both phases: its ops' names hold dots (layer.experts.gate_proj)."""
    argv = ["crossover", "mixtral-8x7b", "--tp", "2"]
    text, page = read([*argv, "--format", "html"])
    return text, page, json.loads(opgraph(*argv, "--format", "json").stdout)


def test_a_crossover_page_marks_each_op_that_turns_compute_bound_and_lists_them_all(crossover_page):
    text, page, json_output = crossover_page
    data = page.record()
    assert data == json_output
    for phase, p in data["phases"].items():
        assert page.rows[f"{phase}-crossovers"] == [x["op"] for x in p["crossovers"]]
    assert _crossover_counts(page) == _crossover_marks(data)
    assert "never (up to 1,048,576)" in text and not page.external


def test_a_crossover_page_rings_each_crossover_on_its_curve_at_its_size(crossover_page):
    """Each ring circles the point of its curve at the size its hover names, and names every op and block that turns
    compute-bound there: on the time chart those of the block whose curve it is on, on the throughput and intensity
    charts (the model's curve) all of them; or it is the first size at which the whole model is compute-bound."""
    _, page, data = crossover_page
    for n, p in enumerate(data["phases"].values()):
        var, crossing = p["variable"], {}
        for x in p["crossovers"]:
            if x["at"] is not None:
                crossing.setdefault(x["at"], set()).add(x["op"])
        for chart in (4 * n, 4 * n + 1, 4 * n + 2):
            for r in page.rings(chart):
                circled = {re.match(rf"(.+) at {var} ([\d,]+): ", t).groups() for t in r["on"]}  # (curve, size)
                if "compute-bound from here" not in r["title"]:  # the whole model, where it turns compute-bound
                    [size] = [s for curve, s in circled if curve == "the model"]
                    assert f"the whole model is compute-bound from {var} {size}" in r["title"]
                    continue
                size = int(r["title"].split(":")[0].removeprefix(f"{var} ").replace(",", ""))
                named = set(re.split(r";| \(", r["title"].split("compute-bound from here: ")[1])[0].split(", "))
                if chart == 4 * n:  # the time chart: on its block's curve
                    [block] = {op.split(".")[0] for op in named}
                    assert (f"{block} (all its repeats)", f"{size:,}") in circled
                    assert named == {op for op in crossing[size] if op.split(".")[0] == block}
                else:
                    assert ("the model", f"{size:,}") in circled and named == crossing[size]


@needs_chromium
def test_a_crossover_page_draws_its_curves_and_rings_in_chromium(crossover_page, tmp_path):
    """As the browser lays the page out: each chart's points and rings (hollow marks) are those the JSON calls for."""
    text, _, data = crossover_page
    probe = """function check() {
      return Array.prototype.map.call(document.querySelectorAll('svg:not(.graph)'), function (svg) {
        var marks = svg.querySelectorAll('circle.mark'), rings = svg.querySelectorAll('circle.mark[fill=none]');
        return [marks.length - rings.length, rings.length];
      });
    }"""
    got = in_chromium(text, probe, tmp_path)
    assert got["errors"] == [] and [tuple(c) for c in got["result"]] == _crossover_marks(data)


def _same_page_and_json(argv, wall=()):
    """The page and its record, which equals the JSON output but for the `wall` times, which runs differ in."""
    text, page = read([*argv, "--format", "html"])
    data, json_output = page.record(), json.loads(opgraph(*argv, "--format", "json").stdout)
    assert [data.pop(k) > 0 for k in wall] == [json_output.pop(k) > 0 for k in wall] == [True] * len(wall)
    assert data == json_output and not page.external
    return text, page, data


def test_a_compare_page_holds_the_plans_the_fate_changes_and_kernels_whose_savings_add_up():
    _, page, data = _same_page_and_json(["compare", "--phase", "decode"])
    p = data["phases"]["decode"]
    assert page.rows["decode-plans"] == data["fusions"] and page.bars == len(data["fusions"])
    assert page.rows["decode-fates"] == [f"{f['block']}.{f['tensor']}" for f in p["fate_changes"]]
    saved = page.cells["decode-saved"]  # fusion, block, kernel, ops, first plan's time of the ops, kernel's, saved
    for plan in p["plans"][1:]:
        mine = [r for r in saved if r[0] == plan["fusion"]]
        assert len(mine) == sum(plan["kernels_per_block"].values())
        assert sum(float(r[5]) for r in mine) == pytest.approx(plan["expected_s"], rel=1e-6)
        assert sum(float(r[6]) for r in mine) == pytest.approx(plan["expected_saved_s"], rel=1e-6)


def _stacks_match(parts, footprints):
    """Each stack's three widths (weights, KV cache, activations) are in proportion to its bytes."""
    assert len(parts) == 3 * len(footprints)
    for i, fp in enumerate(footprints):
        widths, sizes = parts[3 * i:3 * i + 3], [fp["weight_bytes"], fp["kv_cache_bytes"], fp["activation_bytes"]]
        scale = 744 / max(fp["total_bytes"], fp["capacity_bytes"])  # the drawing's width between its margins
        assert widths == pytest.approx([b * scale for b in sizes], abs=0.06)


def test_memory_pages_and_the_report_draw_the_stack_in_proportion_to_the_bytes():
    _, page, data = _same_page_and_json(["memory", "gemma-3-27b", "--phase", "decode", "--batch", "8", "--context",
                                         "16384"])
    _stacks_match(page.parts, list(data["phases"].values()))
    assert page.rows["decode-blocks"] == [b["name"] for b in data["phases"]["decode"]["blocks"]]
    text, page = read(["report", "--format", "html"])
    _stacks_match(page.parts, [p["memory"] for p in page.record()["phases"].values()])


def test_a_generate_page_draws_every_decode_step_and_memory_at_both_ends():
    _, page, data = _same_page_and_json(["generate", "--prompt", "512", "--output", "64"])
    assert page.svg_marks[0] == data["decode"]["steps"] == 63
    _stacks_match(page.parts, data["memory"])


def test_a_static_plan_page_holds_every_candidate():
    text, page, data = _same_page_and_json(["plan", "--gpus", "4", "--batch", "1,8,64"], wall=["search_s"])
    assert page.rows["ranked"] == [f"{c['layout']}@{c['batch_per_replica']}" for c in data["ranked"]]
    assert page.marks == len(data["ranked"]) and "best: " in text


def test_a_serve_page_holds_the_percentiles_and_the_time_by_class():
    text, page, data = _same_page_and_json(["serve", "--concurrency", "16", "--prompt", "512", "--output", "64"])
    assert page.rows["latency"] == ["ttft", "tpot", "itl", "e2e"]
    for row, m in zip(page.cells["latency"], ("ttft", "tpot", "itl", "e2e")):  # sort values: 9 digits
        assert [float(v) for v in row[1:]] == pytest.approx(list(data[f"{m}_s_stats"].values()), rel=1e-8)
    assert page.bars == len(data["share_of_iteration_time_by_class"])


def test_a_disaggregated_page_holds_the_pools_and_draws_the_ttft_in_its_parts():
    text, page, data = _same_page_and_json(["serve", "--disaggregate", "1p1d", "--decode", "tp=1,gpu=h200",
                                            "--concurrency", "8", "--prompt", "500", "--output", "50"])
    assert page.rows["pools"] == ["prefill", "decode"] and page.bars == 3  # waiting, prefill, transfer
    assert [row[3] for row in page.cells["pools"]] == [p["hardware"] for p in data["pools"]] == ["h100-sxm", "h200"]
    assert data["ttft_s"] == pytest.approx(data["waiting_s"] + data["prefill_s"] + data["transfer_s"], rel=1e-12)


def test_a_report_page_draws_each_block_graph_with_its_kernels_and_each_tensor_fate():
    """Against the report's JSON (each op's kernel) and `opgraph activations` (each tensor's fate): every op is drawn
    in its kernel's band, one band a kernel, an edge solid exactly where it crosses kernels (or leaves the block's
    inputs, or reaches its kept outputs), never solid for a tensor kept on chip, and a solid edge into every kernel
    that reads a materialized tensor back."""
    for fusion in ("fused", "unfused"):
        _, page = read(["report", "--fusion", fusion, "--format", "html"])
        data = page.record()
        acts = json.loads(opgraph("activations", "--fusion", fusion, "--format", "json").stdout)
        for phase, p in data["phases"].items():
            fates = {b["name"]: {t["tensor"]: t for t in b["tensors"]} for b in acts["phases"][phase]["blocks"]}
            for b in p["blocks"]:
                g, kernel = page.graphs[f"{phase}-{b['name']}"], {o["name"]: o["kernel"] for o in b["ops"]}
                assert g["ops"] == kernel and sorted(g["kernels"]) == sorted(set(kernel.values()))
                for tensor, src, dst, solid in g["edges"]:
                    assert solid == (src not in kernel or dst not in kernel or kernel[src] != kernel[dst])
                    f = fates[b["name"]].get(tensor)
                    assert f is None or (f["producer"] == src and (f["fate"] == "materialized" or not solid))
                for t in fates[b["name"]].values():
                    for reader in t["consumer_kernels"]:
                        first_op = reader.split("..")[0]  # a kernel's label: its first op..its last; its name: the first
                        assert any(e[0] == t["tensor"] and e[3] and kernel.get(e[2]) == first_op for e in g["edges"])
