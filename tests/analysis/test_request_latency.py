"""Each request's time outside the engine (`opgraph serve --request-latency-ms`; issue 17 §7's TTFT): the server's
HTTP handling, tokenization and streaming, and the client's. It is added to a request's TTFT and end-to-end latency
and to nothing else: the engine's schedule, its TPOT, inter-token gaps and throughput are those without it. The
expected values follow from that definition: the same run's figures, plus the latency where it belongs."""

import json
import sys
from pathlib import Path

import pytest

from opgraph import hardware, models
from opgraph.analysis.serve import serve, vllm
from opgraph.analysis.serving_validate import Client, validate_serving
from opgraph.choices import serving_row
from opgraph.errors import OpgraphError
from opgraph.files import planfile, serving_measurements
from opgraph.models import BuildOptions
from serving_csv import serving_csv
from userland import opgraph

BENCH = Path(__file__).parents[2] / "benchmarks"


def _served(latency: float, **load):
    hw = hardware.load("h100-sxm")
    build = lambda ph: models.get("llama-3-8b").build(ph, BuildOptions())  # noqa: E731
    return serve(build, planfile.load("vllm"), hw, engine=vllm(hw), prompt=512, output=64,
                 request_latency_s=latency, **load)


@pytest.mark.parametrize("load", [dict(concurrency=8), dict(rate=4.0), dict(concurrency=4, requests=12)])
def test_the_latency_adds_to_ttft_and_end_to_end_and_nothing_else(load):
    plain, late = _served(0.0, **load), _served(0.05, **load)
    for stat in ("mean", "p50", "p90", "p99"):
        assert getattr(late.ttft, stat) == pytest.approx(getattr(plain.ttft, stat) + 0.05, abs=1e-12)
        assert getattr(late.e2e, stat) == pytest.approx(getattr(plain.e2e, stat) + 0.05, abs=1e-12)
    assert (late.tpot, late.itl, late.iteration) == (plain.tpot, plain.itl, plain.iteration)
    assert late.tokens_per_s == plain.tokens_per_s and late.request_latency_s == 0.05
    note, = (n for n in late.notes if "outside the engine" in n)
    assert "50.0 ms added to its TTFT and end-to-end latency" in note
    # a closed loop's engine is refilled at once: the note gives the share of a request's time the slot would idle
    assert ("refilled at once" in note) == ("rate" not in load)
    if "rate" not in load:
        assert f"({0.05 / late.e2e.mean:.1%} of a request's time)" in note
    assert not any("outside the engine" in n for n in plain.notes)


def test_serve_request_latency_option_and_its_errors():
    def run(*extra):
        return opgraph("serve", "llama-3-8b", "--concurrency", "4", "--prompt", "256", "--output", "32", *extra)
    late, plain = (run(*extra, "--format", "json") for extra in (("--request-latency-ms", "40"), ()))
    assert late.returncode == plain.returncode == 0, late.stderr + plain.stderr
    late, plain = json.loads(late.stdout), json.loads(plain.stdout)
    assert late["request_latency_s"] == 0.04 and plain["request_latency_s"] == 0.0
    assert late["ttft_s"] == pytest.approx(plain["ttft_s"] + 0.04, abs=1e-12)
    assert late["tpot_s"] == plain["tpot_s"]
    r = run("--request-latency-ms", "-1")
    assert r.returncode == 2 and "--request-latency-ms must be a finite number >= 0" in r.stderr
    assert "Traceback" not in r.stderr
    with pytest.raises(OpgraphError, match="request_latency_s must be a finite number >= 0"):
        _served(float("nan"), concurrency=2)


def test_a_client_carries_its_latency_to_the_rows_it_serves(tmp_path):
    rows = serving_measurements.read(serving_csv(tmp_path, "max_batch_tokens", "llama-3-8b,h100-sxm,vllm,1,4,256,32,"
                                                 "50.0,10.0,"))
    plain, late = (validate_serving(rows, serving_row, "rows.csv", protocol="by campaign",
                                    per_row=lambda row, c=client: c).predictions[0]
                   for client in ("steady", Client("steady", 0.025)))
    assert late.ttft_s == pytest.approx(plain.ttft_s + 0.025, abs=1e-12) and late.tpot_s == plain.tpot_s
    assert Client.of("wave") == Client("wave", 0.0) and Client.of(Client("wave", 1.0)) == Client("wave", 1.0)


def test_fit_protocol_takes_the_median_gap_as_the_latency_and_none_below_zero():
    sys.path.insert(0, str(BENCH))
    try:
        from fit_protocol import fitted
    finally:
        sys.path.remove(str(BENCH))
    # gaps (measured - predicted) of 0.01, 0.03 and 0.08 s: the median, 0.03 s, is the latency; then the TTFT errors
    # are |(0.1 + 0.03) - 0.11| / 0.11, 0, |(0.1 + 0.03) - 0.18| / 0.18
    latency, with_it, without, tpot = fitted([(0.11, 0.10, 0.05), (0.23, 0.20, 0.10), (0.18, 0.10, 0.02)])
    assert latency == pytest.approx(0.03)
    assert with_it == pytest.approx(0.02 / 0.11)
    assert without == pytest.approx(0.03 / 0.23) and tpot == 0.05
    # predicted slower than measured: no negative time outside the engine
    assert fitted([(0.1, 0.2, 0.0), (0.1, 0.3, 0.0), (0.1, 0.12, 0.0)])[0] == 0.0


def _plan(*extra):
    r = opgraph("plan", "llama-3-8b", "--gpus", "2", "--concurrency", "4,16", "--prompt", "1024", "--output", "128",
                "--format", "json", *extra)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_plan_judges_every_candidates_ttft_with_the_latency_in_it():
    plain, late = _plan(), _plan("--request-latency-ms", "60")
    assert late["request_latency_s"] == 0.06 and plain["request_latency_s"] == 0.0
    assert len(late["candidates"]) == len(plain["candidates"])
    for a, b in zip(plain["candidates"], late["candidates"]):
        assert (a["layout"], a["concurrency_per_replica"]) == (b["layout"], b["concurrency_per_replica"])
        assert b["expected_ttft_s"] == pytest.approx(a["expected_ttft_s"] + 0.06, abs=1e-12)
        assert b["expected_tpot_s"] == a["expected_tpot_s"]
    # a TTFT limit the engine meets alone but not with 60 ms more: nothing is within it
    limit = str(1e3 * min(c["expected_ttft_s"] for c in plain["candidates"]) + 30)
    assert _plan("--max-ttft", limit)["best"] is not None
    assert _plan("--max-ttft", limit, "--request-latency-ms", "60")["best"] is None
    # the event run that p90 limits call for carries it too
    early, late = (_plan("--max-ttft-p90", "10000", *extra)["best"] for extra in ((), ("--request-latency-ms", "60")))
    assert (early["layout"], early["concurrency_per_replica"]) == (late["layout"], late["concurrency_per_replica"])
    for key in ("p90_ttft_s", "event_ttft_s"):
        assert late[key] == pytest.approx(early[key] + 0.06, abs=1e-12)
    assert late["p90_tpot_s"] == early["p90_tpot_s"]
    r = opgraph("plan", "llama-3-8b", "--gpus", "2", "--request-latency-ms", "5")
    assert r.returncode == 2 and "--request-latency-ms plans serving in flight: give --concurrency or --rate too" in r.stderr


def test_a_disaggregated_deployment_takes_the_latency_in_its_ttft_closed_form_and_event_run_alike():
    def run(*extra):
        r = opgraph("serve", "llama-3-8b", "--concurrency", "8", "--prompt", "1024", "--output", "64",
                    "--disaggregate", "1p1d", "--format", "json", *extra)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)
    plain, late = run(), run("--request-latency-ms", "30")
    assert late["request_latency_s"] == 0.03 and plain["request_latency_s"] == 0.0
    assert late["ttft_s"] == pytest.approx(plain["ttft_s"] + 0.03, abs=1e-12)
    for key in ("tpot_s", "requests_per_s", "expected_tokens_per_s", "waiting_s", "prefill_s", "transfer_s"):
        assert late[key] == plain[key]
    a, b = plain["event_run"], late["event_run"]
    for key in ("ttft_s_stats", "e2e_s_stats"):
        assert all(b[key][q] == pytest.approx(a[key][q] + 0.03, abs=1e-12) for q in a[key])
    assert b["tpot_s_stats"] == a["tpot_s_stats"] and b["itl_s_stats"] == a["itl_s_stats"]
    note, = (n for n in late["notes"] if "outside the engine" in n)
    assert "30.0 ms added" in note and "refilled at once" in note


def test_validate_adds_a_given_latency_to_every_rows_ttft(tmp_path):
    f = serving_csv(tmp_path, "max_batch_tokens", "llama-3-8b,h100-sxm,vllm,1,4,256,32,50.0,10.0,")

    def run(*extra):
        r = opgraph("validate", str(f), "--format", "json", *extra)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)
    plain, late = run(), run("--request-latency-ms", "25")
    assert late["request_latency_s"] == 0.025 and plain["request_latency_s"] == 0.0
    (p,), (q,) = plain["rows"], late["rows"]
    assert q["expected_ttft_s"] == pytest.approx(p["expected_ttft_s"] + 0.025, abs=1e-12)
    assert q["expected_tpot_s"] == p["expected_tpot_s"]
    kernels = Path(__file__).parents[2] / "benchmarks" / "data" / "h100-sxm-liger.csv"
    r = opgraph("validate", str(kernels), "--request-latency-ms", "5")
    assert r.returncode == 2 and "--request-latency-ms applies to serving rows" in r.stderr
