"""`--format html` (issue 19, first part: report): one self-contained page whose embedded data is the JSON output
exactly, every op of the model in its tables, one chart mark per op that has a place on log axes, nothing fetched
from the network, within the size budget; and, where Chromium is installed, the page runs without a script error
and sorts."""

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from userland import opgraph


class Page(HTMLParser):
    """What a test reads of a page: the embedded data, table rows by table, chart marks, external references."""

    def __init__(self):
        super().__init__()
        self.data, self.rows, self.marks, self.external, self._in_data, self._table = "", {}, 0, [], False, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script" and a.get("id") == "opgraph-data":
            self._in_data = True
        if tag == "table" and a.get("id"):
            self._table = a["id"]
            self.rows[self._table] = []
        if tag == "tr" and self._table and "data-op" in a:
            self.rows[self._table].append(a["data-op"])
        if tag == "circle" and a.get("class") == "mark":
            self.marks += 1
        for key in ("src", "href"):
            if key in a and re.match(r"(https?:)?//", a[key]):
                self.external.append(a[key])

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_data = False
        if tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._in_data:
            self.data += data


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
    data = json.loads(page.data.replace("<\\/", "</"))
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


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium): the page's script "
                                             "is not run")
def test_the_page_runs_in_chromium_without_a_script_error_and_sorts(tmp_path):
    """Headless Chromium loads the page with a check appended: it clicks the expected-time column's button of the
    decode layer's table twice and reports the first row each time (descending after the second click), and any
    script error."""
    text, _ = read(["report", "--format", "html"])
    probe = """<script>
      var out = [], errors = [];
      window.addEventListener('error', function (e) { errors.push(String(e.message)); });
      var t = document.getElementById('decode-layer-ops'), b = t.querySelectorAll('th button')[7];
      b.click(); out.push(t.tBodies[0].rows[0].getAttribute('data-op'));
      b.click(); out.push(t.tBodies[0].rows[0].getAttribute('data-op'));
      document.title = JSON.stringify({first: out, errors: errors});
    </script></body>"""
    page = tmp_path / "report.html"
    page.write_text(text.replace("</body>", probe))
    r = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
                       capture_output=True, text=True, timeout=120)
    title = re.search(r"<title>(.*?)</title>", r.stdout, re.S)
    assert title, r.stderr[-2000:]
    result = json.loads(title.group(1).replace("&quot;", '"'))
    assert result["errors"] == []
    data = json.loads(opgraph("report", "--format", "json").stdout)
    ops = data["phases"]["decode"]["blocks"][0]["ops"]
    fastest = min(ops, key=lambda o: o["expected_s"])["expected_s"]
    slowest = max(ops, key=lambda o: o["expected_s"])["name"]
    first, second = result["first"]
    assert next(o for o in ops if o["name"] == first)["expected_s"] == fastest and second == slowest


def test_a_serving_plan_page_holds_the_json_and_a_mark_per_candidate():
    argv = ["plan", "llama-3-8b", "--gpus", "2", "--concurrency", "1,4,16,64", "--prompt", "500", "--output", "64",
            "--max-tpot", "15"]
    text, page = read([*argv, "--format", "html"])
    data = json.loads(page.data.replace("<\\/", "</"))
    json_output = json.loads(opgraph(*argv, "--format", "json").stdout)
    assert data.pop("search_s") > 0 and json_output.pop("search_s") > 0  # wall time: the one figure runs differ in
    assert data == json_output
    assert page.rows["candidates"] == [f"{c['layout']}@{c['concurrency_per_replica']}" for c in data["candidates"]]
    assert page.marks == len(data["candidates"]) and not page.external and "best within the limits" in text


def test_a_validation_page_holds_the_json_and_a_mark_per_row(tmp_path):
    f = tmp_path / "k.csv"
    f.write_text("class,dtype,time_us,m,n,k\ngemm,bf16,10,8,4096,4096\ngemm,bf16,60,512,4096,4096\n"
                 "gemm,bf16,900,8192,4096,4096\n")
    text, page = read(["validate", str(f), "--format", "html"])
    data = json.loads(page.data.replace("<\\/", "</"))
    assert data == json.loads(opgraph("validate", str(f), "--format", "json").stdout)
    assert page.marks == 3 and page.rows["errors"] == ["gemm", "all"] and not page.external


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
