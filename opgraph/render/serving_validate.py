"""`opgraph validate` of serving rows: predicted TTFT and TPOT against measured, by engine, GPU and model."""

from __future__ import annotations

from opgraph.analysis.plan import Layout
from opgraph.analysis.serving_validate import OWN, ServingValidation, serving
from opgraph.analysis.validate import Stats
from opgraph.render import renderer
from opgraph.render.text import header, heading, lines, table, to_csv, to_json
from opgraph.render.validate import stats_record

METRICS = ("tpot", "ttft")


def _cells(s: Stats) -> list[str]:
    return [f"{s.median:.1%}", f"{s.p90:.1%}", f"{s.bias:+.1%}"]


@renderer(ServingValidation, "table", "markdown")
def as_text(v: ServingValidation, fmt: str) -> str:
    skipped = "; ".join(f"{why} x{n:,}" for why, n in v.skipped) or "none"
    out = header(f"opgraph validate: {v.source} (served configurations)", fmt,
                 [f"{len(v.predictions):,} of {v.considered:,} rows" + (f" of GPU {v.gpu}" if v.gpu else "")
                  + f" ({v.rows:,} in the file) predicted by `opgraph serve` with each row's engine "
                  f"(scheduler, defaults, kernels; the row's own token budget, KV dtype, memory setting, MoE kernel, "
                  f"batch waiting and scheduling where it gives them), " + _protocol(v)
                  + (f", {v.request_latency_s * 1e3:,.1f} ms outside the engine added to each TTFT (given)"
                     if v.request_latency_s else "") + "; nothing fitted on these rows",
                  f"skipped: {skipped}",
                  "error = (predicted - measured) / measured of the mean TTFT and TPOT: negative is too fast"])
    rows = [[*key, f"{len(ps):,}", *_cells(v.stats(ps, "tpot")), *_cells(v.stats(ps, "ttft"))]
            for key, ps in v.groups().items()]
    if v.predictions:
        rows.append(["all", "", "", "", f"{len(v.predictions):,}", *_cells(v.stats(v.predictions, "tpot")),
                     *_cells(v.stats(v.predictions, "ttft"))])
    out += ["", table(rows, ["engine", "gpu", "model", "serving", "rows", "TPOT median |error|", "p90",
                             "median error", "TTFT median |error|", "p90", "median error"], fmt,
                      colalign=("left", "left", "left", "left", *("right",) * 7))
            if rows else "no row predicted: each is skipped, for the reasons above"]
    worst = sorted(v.predictions, key=lambda p: abs(p.tpot_error), reverse=True)[:5]
    rows = [[p.row.engine, p.row.gpu, p.row.model, f"{_layout(p.row)}, c {p.row.concurrency}, {p.row.prompt:,} -> "
             f"{p.row.output:,}", f"{p.row.tpot_s * 1e3:,.2f}", f"{p.tpot_s * 1e3:,.2f}", f"{p.tpot_error:+.0%}",
             f"{p.row.ttft_s * 1e3:,.1f}", f"{p.ttft_s * 1e3:,.1f}", f"{p.ttft_error:+.0%}"] for p in worst]
    if rows:
        out += ["", heading("largest TPOT errors", fmt), "",
                table(rows, ["engine", "gpu", "model", "layout and load", "TPOT ms", "predicted", "error", "TTFT ms",
                             "predicted", "error"], fmt, colalign=("left",) * 4 + ("right",) * 6)]
    return lines(out)


@renderer(ServingValidation, "json")
def as_json(v: ServingValidation, fmt: str) -> str:
    return to_json({
        "source": v.source, "protocol": v.protocol, "clients": v.clients(), "request_latency_s": v.request_latency_s,
        "rows_in_file": v.rows, "rows_considered": v.considered,
        "gpu": v.gpu, "units": {"*_s": "s"},
        "skipped": {why: n for why, n in v.skipped},
        "stats": {"all": {m: stats_record(v.stats(v.predictions, m)) for m in METRICS} if v.predictions else {},
                  "by_engine_gpu_model": [{"engine": e, "gpu": g, "model": m, "serving": how,
                                           **{k: stats_record(v.stats(ps, k)) for k in METRICS}}
                                          for (e, g, m, how), ps in v.groups().items()]},
        "rows": [_row(p) for p in v.predictions]})


def _protocol(v: ServingValidation) -> str:
    """How the rows' benchmarks were served, in words: each row under its own client (with how many), or one for all."""
    if v.protocol != OWN:
        return f"protocol {v.protocol}"
    counts = ", ".join(f"{name} x{n:,}" for name, n in v.clients().items())
    return ("each row under its own benchmark client (its client column; steady where it names none"
            + (f": {counts}" if counts else "") + "; --protocol gives one for all)")


def _layout(r) -> str:
    """The row's parallel layout in the plan's words (tp 4 x ep 2 (2 groups of 2), dp 2 x ep 2, 1 GPU); a
    disaggregated row's workers too (1p9d: prefill tp 8 x ep 8, decode tp 8 x ep 8)."""
    decode = Layout(r.tp, r.dp, r.ep, r.pp).describe()
    if not r.disaggregated:
        return decode
    workers, tp, dp, ep = r.prefill
    return f"{workers}p{r.decode_workers}d: prefill {Layout(tp, dp, ep, 1).describe()}, decode {decode}"


def _row(p) -> dict:
    r = p.row
    return {"row": r.row, "engine": r.engine, "gpu": r.gpu, "model": r.model, "tp": r.tp, "pp": r.pp, "dp": r.dp,
            "ep": r.ep, "serving": serving(r), "decode_workers": r.decode_workers or None,
            # a disaggregated row's prefill workers and their layout (null for an aggregated row)
            "prefill_workers": r.prefill[0] or None,
            **{f"prefill_{k}": x if r.disaggregated else None for k, x in zip(("tp", "dp", "ep"), r.prefill[1:])},
            "concurrency": r.concurrency, "prompt_tokens": r.prompt, "output_tokens": r.output, "gemm": r.gemm,
            # the engine settings the row gave (null: the engine's default)
            "max_batch_tokens": r.max_batch_tokens or None, "kv_dtype": r.kv_dtype or None,
            "moe_kernel": r.moe_kernel or None, "batch_wait_ratio": r.batch_wait[0] or None,
            "batch_wait_iters": r.batch_wait[1] or None, "memory_fraction": r.memory_fraction or None,
            "scheduling": r.scheduling or None, "chunked_prefill": r.chunked_prefill or None, "protocol": p.protocol,
            "measured_ttft_s": r.ttft_s, "expected_ttft_s": p.ttft_s, "ttft_error": p.ttft_error,
            "measured_tpot_s": r.tpot_s, "expected_tpot_s": p.tpot_s, "tpot_error": p.tpot_error, "source": r.source}


@renderer(ServingValidation, "csv")
def as_csv(v: ServingValidation, fmt: str) -> str:
    rows = [_row(p) for p in v.predictions]
    columns = list(rows[0]) if rows else ["row"]
    return to_csv(columns, ([r[c] for c in columns] for r in rows))


@renderer(ServingValidation, "html")
def as_html(v: ServingValidation, fmt: str) -> str:
    """Predicted against measured TPOT and TTFT, log-log, one colour an engine, each row on hover; the errors by
    engine, GPU and model. The page's data is the JSON."""
    import json

    from opgraph.render.html import esc, legend, page, palette, table
    from opgraph.render.validate import versus

    data = as_json(v, "json")
    d = json.loads(data)
    colour = palette(sorted({r["engine"] for r in d["rows"]}))

    def hover(r: dict, metric: str) -> str:
        pools = (f", disaggregated {r['prefill_workers']}p{r['decode_workers']}d (prefill tp {r['prefill_tp']}, "
                 f"decode tp {r['tp']})" if r["serving"] == "disaggregated" else f", tp {r['tp']}")
        return (f"row {r['row']}: {r['engine']} {r['model']} on {r['gpu']}{pools}, concurrency "
                f"{r['concurrency']}, {r['prompt_tokens']:,} -> {r['output_tokens']:,} tokens; measured "
                f"{r[f'measured_{metric}_s'] * 1e3:,.1f} ms, expected {r[f'expected_{metric}_s'] * 1e3:,.1f} ms, "
                f"error {r[f'{metric}_error']:+.0%}")

    charts = "".join(
        f"<h2>{name}</h2>" + versus([(r[f"measured_{m}_s"] * 1e3, r[f"expected_{m}_s"] * 1e3, colour[r["engine"]],
                                      hover(r, m)) for r in d["rows"]], f"measured {name} (ms)",
                                    f"expected {name} (ms)")
        for m, name in (("tpot", "TPOT"), ("ttft", "TTFT"))) if d["rows"] else "<p class=\"note\">no row predicted</p>"
    groups = d["stats"]["by_engine_gpu_model"] + [{"engine": "all", "gpu": "", "model": "", "serving": "",
                                                   **d["stats"]["all"]}]
    rows = [([(g["engine"], g["engine"]), (g["gpu"], g["gpu"]), (g["model"], g["model"]), (g["serving"], g["serving"]),
              (f"{g['tpot']['count']:,}", g["tpot"]["count"]),
              *((f"{g[m]['median_abs_error']:.1%} ({g[m]['median_error']:+.1%})", g[m]["median_abs_error"])
                for m in ("tpot", "ttft"))], {"data-op": " ".join(x for x in (g["engine"], g["gpu"], g["model"]) if x)})
            for g in groups if g.get("tpot", {}).get("count")]  # "all" is empty when no row is predicted
    skipped = "; ".join(f"{why} x{n}" for why, n in d["skipped"].items())
    title = f"opgraph validate: {d['source']}, measured serving ({d['protocol']} protocol)"
    note = (f"{len(d['rows']):,} of {d['rows_considered']:,} rows predicted, each served as measured (nothing "
            f"fitted); error = (expected - measured) / measured" + (f"; skipped: {esc(skipped)}" if skipped else "")
            + ".")
    body = (legend(colour) + charts + "<h2>errors by engine, GPU and model</h2>"
            + table("errors", ["engine", "GPU", "model", "serving", "rows", "TPOT median |error| (signed)",
                               "TTFT median |error| (signed)"], rows))
    return page(title, note, body, data)
