"""`opgraph bench`: which kernels a model runs (derived by hand from Llama-3-8B's shapes), and a clear line where
there is no torch or no GPU. The timing itself needs a GPU and is not run here."""

import json

from userland import opgraph, python

from opgraph import Phase, models
from opgraph.analysis.bench import kernels


def test_llama_kernels_at_one_size():
    build = models.get("llama-3-8b").build
    specs = kernels([build(Phase.prefill(1, 1024)), build(Phase.decode(1, 1024))])
    gemms = {dict(s.shape)["m"]: set() for s in specs if s.kind == "gemm"}
    for s in specs:
        if s.kind == "gemm":
            gemms[dict(s.shape)["m"]].add((dict(s.shape)["n"], dict(s.shape)["k"]))
    layer = {(4096, 4096), (1024, 4096), (14336, 4096), (4096, 14336)}  # q and o; k and v; gate and up; down
    assert gemms == {1024: layer, 1: layer | {(128256, 4096)}}  # lm_head sees one position per sequence
    attention = {(s.kind, s.shape) for s in specs if s.kind != "gemm"}
    assert attention == {
        ("prefill_attention", (("batch", 1), ("seq_len", 1024), ("heads", 32), ("kv_heads", 8), ("head_dim", 128))),
        ("decode_attention", (("batch", 1), ("context", 1024), ("heads", 32), ("kv_heads", 8), ("head_dim", 128)))}


def test_mla_attention_is_not_passed_off_as_sdpa():
    build = models.get("deepseek-v2-lite").build
    specs = kernels([build(Phase.prefill(1, 64)), build(Phase.decode(1, 64))])
    assert specs and all(s.kind == "gemm" for s in specs)


def test_dry_run_lists_without_measuring():
    r = opgraph("bench", "--dry-run", "--batch", "1", "--lengths", "1024", "--format", "json")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["kernels"]) == 11 and all(k["time_us"] is None for k in json.loads(r.stdout)["kernels"])


def test_without_torch_it_says_how_to_install(tmp_path):
    code = ("import sys; sys.modules['torch'] = None\nfrom opgraph.cli import main\n"
            f"sys.exit(main(['bench', '--batch', '1', '--lengths', '16', '--out', {str(tmp_path / 'm.csv')!r}]))")
    r = python(code)
    assert r.returncode == 2 and 'pip install "opgraph[gpu]"' in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not (tmp_path / "m.csv").exists()
