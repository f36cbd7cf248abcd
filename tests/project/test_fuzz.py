"""Malformed and extreme inputs, in process: every one is a clean refusal (OpgraphError -> exit 2, one line) or a
valid result, never another exception or a hang. A seeded sample of the corpus in tests/fuzzing.py; the whole
corpus runs through the real command line in benchmarks/fuzz_cli.py."""

import contextlib
import io
import json
import random
import signal

import pytest
from fuzzing import BAD, EITHER, OK, corpus

from opgraph.cli import main

SAMPLE = random.Random(11).sample(corpus(), 400)


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang


@pytest.mark.parametrize("case", SAMPLE, ids=[c.label or " ".join(c.argv)[:60] for c in SAMPLE])
def test_bad_input_is_refused_cleanly_and_good_input_works(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    for name, text in case.files:
        (tmp_path / name).write_text(text, encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(30)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(list(case.argv))
            except SystemExit as e:  # --help, --version
                rc = e.code
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert rc in (0, 2)
    if case.expect == BAD:
        assert rc == 2, f"accepted silently: {out.getvalue()[:200]}"
    if case.expect == OK:
        assert rc == 0, err.getvalue()
    if rc == 2:
        assert err.getvalue().startswith("opgraph: error:") and err.getvalue().count("\n") == 1, err.getvalue()
    elif "--format" in case.argv and "json" in case.argv:
        json.loads(out.getvalue())
    assert case.expect in (BAD, OK, EITHER)
