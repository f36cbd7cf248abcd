"""Every example in the README and in docs/ must actually work: its Python blocks run, its console commands exit 0,
and the sample report is what the program prints today."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from userland import opgraph

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()
# The README and every page of docs/: their examples are one set, all of which must work.
PAGES = [README] + [p.read_text() for p in sorted((ROOT / "docs").glob("*.md"))]
DOCS = "\n".join(PAGES)
BLOCKS = [b for page in PAGES for b in re.findall(r"```(\w*)\n(.*?)```", page, flags=re.S)]
PYTHON = [code for lang, code in BLOCKS if lang == "python" and not code.startswith("# file: ")]
COMMANDS = [line[2:] for lang, code in BLOCKS if lang == "console" for line in code.splitlines()
            if line.startswith("$ ")]
# Installing is what CI itself does; the benchmark is timing, not correctness.
RUNNABLE = [c for c in COMMANDS if not c.startswith(("pip install", "python benchmarks/"))]
# TOML and Python blocks that start with "# file: PATH" are files the console examples use.
FILES = {code.splitlines()[0][len("# file: "):]: code for lang, code in BLOCKS
         if lang in ("toml", "python") and code.startswith("# file: ")}


def test_readme_has_examples():
    assert len(PYTHON) >= 2 and len(RUNNABLE) >= 6
    assert {"path/to/my-gpu.toml", "path/to/my-plan.toml", "parallel.py"} <= set(FILES)
    assert (Path(__file__).parents[2] / "docs" / "llama-3-8b-decode-fused.png").is_file()


@pytest.mark.parametrize("code", PYTHON, ids=[f"python-{i}" for i in range(len(PYTHON))])
def test_python_example_runs(code, tmp_path):
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()


# The commands run as a user's shell runs them: `opgraph` and `python3` are the installed console script and the
# interpreter of the environment the tests run in (its bin folder first on PATH), nothing rewritten.
USER_PATH = os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"])


@pytest.mark.parametrize("command", RUNNABLE)
def test_console_example_runs(command, tmp_path):
    if "dot -T" in command and shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed (rendering is optional)")
    for rel, text in FILES.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    (tmp_path / "benchmarks").symlink_to(ROOT / "benchmarks")  # examples read the shipped measurements
    r = subprocess.run(command, shell=True, capture_output=True, text=True, cwd=tmp_path,
                       env={"PATH": USER_PATH, "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr


def test_sample_report_is_current():
    sample = next(code for lang, code in BLOCKS if lang == "" and "DECODE: batch 32" in code)
    r = opgraph("report", "--phase", "decode")
    actual = r.stdout.splitlines()
    rows = [line for line in sample.splitlines() if line and not line.startswith("fusion:")]
    missing = [line for line in rows if line not in actual]
    assert not missing, "README sample differs from the program's output:\n" + "\n".join(missing)


# An output excerpt that directly follows a one-command console block must match what that command prints.
PAIRS = [(cmd, out) for cmd, out in re.findall(r"```console\n\$ ([^\n]+)\n```\s*```\n(.*?)```", DOCS, flags=re.S)]


@pytest.mark.parametrize("command, excerpt", PAIRS, ids=[c for c, _ in PAIRS])
def test_output_excerpts_are_current(command, excerpt):
    assert command.startswith("opgraph ")
    r = opgraph(*command.split()[1:], cwd=ROOT)
    actual = r.stdout.splitlines()
    missing = [line for line in excerpt.splitlines() if line and line != "..." and line not in actual]
    assert not missing, f"README excerpt of `{command}` is stale:\n" + "\n".join(missing)


def test_excerpts_were_found():
    assert len(PAIRS) >= 2


def test_readme_is_short_and_opens_with_the_two_commands():
    lines = README.splitlines()
    assert len(lines) <= 400
    commands = [line for line in lines if line.startswith("$ ")]
    assert commands[:2] == ['$ pip install . && opgraph report', '$ pip install ".[test]" && pytest']


def test_readme_says_near_the_top_which_models_load():
    from opgraph import models
    from opgraph.models import hf_config
    top = README[:README.index("## Sample report")]
    named = set(re.findall(r"`([\w.-]+)`", top))
    texts = {t for t in hf_config.WRAPPERS.values() if t.endswith("_text")}  # "(and their `_text` models)"
    assert set(hf_config.FAMILIES) - texts <= named
    assert set(hf_config.WRAPPERS) <= named and set(models.names()) <= named


def test_every_docs_page_is_linked_from_the_readme():
    pages = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert pages and all(f"(docs/{name})" in README for name in pages)


def _anchors(text: str) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces to hyphens."""
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#{1,6} (.*)$", text, flags=re.M)}


def test_every_relative_link_resolves():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        text = page.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):  # a web address
                continue
            file, _, anchor = target.partition("#")
            path = (page.parent / file).resolve() if file else page
            if not path.exists() or (anchor and path.suffix == ".md" and anchor not in _anchors(path.read_text())):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken


def test_readme_says_near_the_top_which_gpus_ship_and_which_are_calibrated():
    from opgraph.hardware import names
    from opgraph.hardware.calibration import FOLDER
    top = README[:README.index("## Sample report")]
    section = top[top.index("## Which GPUs"):]
    assert set(names()) <= set(re.findall(r"`([\w.-]+)`", section))
    table = [line for line in section.splitlines() if line.startswith("| `")]
    calibrated = {name for line in table for name in re.findall(r"`([\w.-]+)`", line.split("|")[1])}
    assert calibrated == {p.stem for p in FOLDER.glob("*.toml")}


def _tables(text: str):
    """Each Markdown table of a page outside its code blocks: its lines, the header first."""
    table = []
    for line in re.sub(r"```.*?```", "", text, flags=re.S).splitlines() + [""]:
        if line.startswith("|"):
            table.append(line)
        elif table:
            yield table
            table = []


def test_every_table_row_has_its_header_s_cells():
    """A row with more or fewer cells than its header renders shifted or cut: a figure under the wrong heading."""
    def cells(line):
        return len(line.replace("\\|", "").strip().strip("|").split("|"))
    bad = [f"{page.name}: {row}" for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
           for table in _tables(page.read_text()) for row in table[1:] if cells(row) != cells(table[0])]
    assert not bad, bad
