"""What each command runs: its options (the argparse namespace the CLI parsed) resolved through opgraph.choices,
and one analysis called. The CLI renders what these return."""

from __future__ import annotations

from pathlib import Path

import attrs

from opgraph import choices
from opgraph.analysis import bench
from opgraph.analysis import calibrate as fitting
from opgraph.analysis import crossover, generate, report, sweep, validate
from opgraph.analysis import plan as plan_search
from opgraph.core import checks
from opgraph.core.model import BuildOptions
from opgraph.core.phase import Phase
from opgraph.errors import OpgraphError, counted, noun
from opgraph.files import measurements, planfile, profiles
from opgraph.hardware.calibration import write as write_calibration
from opgraph.render.bench import measurement_csv


def source(a):
    """The command's model; --state-dtype is refused for one without a recurrent state (it would change nothing)."""
    model = choices.model(a.model)
    state = getattr(a, "state_dtype", None)
    if state is not None and checks.choice("--state-dtype", state, choices.STORAGE_DTYPES) \
            and not getattr(model, "recurrent", True):
        raise OpgraphError(f"--state-dtype sets the recurrent state of Mamba-2 and Gated DeltaNet layers, and "
                           f"{getattr(model, 'name', a.model)} has none; leave it out")
    return model


def _precision(a, model, serving: bool):
    """The command line's storage precision for `model` (`serving`: as --engine loads it, choices.precision)."""
    # --state-dtype is the target's: a draft without a recurrent state (an MTP head of attention) takes none
    declared, state = True, getattr(a, "state_dtype", None) if getattr(model, "recurrent", True) else None
    if serving:  # serve, with numpy, only where a command serves
        from opgraph.analysis.serve import reads_declared_kv, served_state_dtype

        declared = reads_declared_kv(a.engine, model)
        if state is None:
            state = served_state_dtype(a.engine, model, _served_act(a, model))
    return choices.precision(model, dtype_=a.dtype, weight=a.weight_dtype, act=a.act_dtype, kv=a.kv_dtype,
                             group_size=a.group_size, table=a.table_dtype, state=state,
                             serving=serving, kv_declared=declared)


def _served_act(a, model) -> str:
    """The activation dtype a serving command serves `model` at: what the engines call the model's dtype."""
    return a.act_dtype or a.dtype or choices.built_dtype(model, serving=True)


def served_notes(a, model) -> tuple[str, ...]:
    """What a serving command says of the precision it serves `model` at (choices.served_note, and the KV cache its
    checkpoint declares: serve.declared_kv_note), of requests longer than its context window (choices.context_note)
    and of an MTP head the checkpoint lacks (choices.draft_note); the lengths are checked before it is called."""
    from opgraph.analysis.serve import declared_kv_note, served_state_note

    longest = sum(_longest(getattr(a, k)) for k in ("prompt", "output"))
    return (choices.served_note(model, a.dtype, a.weight_dtype, a.act_dtype)
            + declared_kv_note(a.engine, model, a.kv_dtype, a.dtype)
            + served_state_note(a.engine, model, getattr(a, "state_dtype", None), _served_act(a, model))
            + choices.context_note(model, longest)
            + choices.draft_note(model, getattr(a, "draft", None)))


def build(a, model=None, serving: bool = False):
    """The model's builder with the command line's options (`model`: another source, such as a draft model;
    `serving`: its precision as an engine loads it)."""
    model = source(a) if model is None else model
    opts = BuildOptions(_precision(a, model, serving), getattr(a, "causal_skip", False),
                        getattr(a, "experts_touched", None), getattr(a, "tp", 1), getattr(a, "dp", 1),
                        getattr(a, "ep", 1), getattr(a, "expert_imbalance", None),
                        getattr(a, "pp", 1), getattr(a, "micro_batches", None),
                        choices.pp_layers(getattr(a, "pp_layers", None)), getattr(a, "sp", False))
    return choices.builder(model, opts)


def knobs(a) -> dict:
    """The command line's time-model options (choices.gpu's knobs), those a command does not take left unset."""
    return {k: getattr(a, k, None) for k in ("launch_us", "overlap", "comm_overlap", "calibration", "marlin_moe")}


def gpu(a):
    hw = choices.gpu(a.hardware, **knobs(a))
    return choices.group_fits(hw, getattr(a, "tp", 1), getattr(a, "across_nodes", False), getattr(a, "ep", 1))


def gpu_list(a):
    return [choices.group_fits(hw, a.tp, a.across_nodes, a.ep)
            for hw in choices.gpus(a.hardware, **knobs(a))]


def phases(a):
    names = choices.phase_names(a.phase, seq_len=getattr(a, "seq_len", None), context=a.context)
    return choices.phases(names, batch=a.batch, seq_len=getattr(a, "seq_len", None), context=a.context)


def models(a):
    make = build(a)
    return [make(ph) for ph in phases(a)]


def one_phase(a):
    if a.phase == "both":
        raise OpgraphError("opgraph graph draws one phase: --phase prefill or --phase decode")
    return models(a)[0]


def sweep_report(a):
    names = choices.phase_names(a.phase, seq_len=a.seq_len, context=a.context)
    batches, lengths = choices.sweep_axes(names, batch=a.batch, seq_len=a.seq_len, context=a.context)
    gpus = gpu_list(a)
    swept = sweep.sweep(build(a), choices.plan(a.fusion), gpus, list(names), batches, lengths)
    # positions a point holds: a prompt's, or the context and the step's new token
    longest = max(max(lengths[n]) + (n == "decode") for n in names)
    return attrs.evolve(swept, notes=choices.context_note(source(a), longest, "points of up to {:,} positions"))


def _no_sp_in_search(a, study: str) -> None:
    """A one-line error for --sp in a study that searches sizes from 1 up, which do not split over --tp."""
    if getattr(a, "sp", False):
        raise OpgraphError(f"--sp: {study} searches batch sizes and prompt lengths from 1 up, which do not split into "
                           f"--tp {a.tp} equal slices of tokens; study sequence parallelism with 'opgraph sweep' or "
                           f"'opgraph report' at sizes divisible by {a.tp}")


def crossover_report(a):
    _no_sp_in_search(a, "opgraph crossover")
    names = choices.phase_names(a.phase, context=a.context)
    [ph] = choices.phases(["decode"], batch=a.batch, context=a.context)
    return crossover.crossover_report(build(a), choices.plan(a.fusion), gpu(a), list(names), batch=ph.batch,
                                      context=ph.past, curves=a.format not in ("table", "markdown"))


def _unplaced(a, model, serving: bool = False) -> BuildOptions:
    """The command line's build options for `model`, without a layout (an arranger adds tp, dp and ep)."""
    return BuildOptions(_precision(a, model, serving), a.causal_skip, a.experts_touched)


def _arranged(a, serving: bool = False):
    """What a command that lays the model out itself needs: the model, its build options without a layout (the
    arranger adds tp, dp and ep), and the GPU."""
    model = source(a)
    opts = _unplaced(a, model, serving)
    return model, opts, choices.gpu(a.hardware, **knobs(a))


MOST_RATES = 64


def _rates(text: str) -> list[float]:
    """plan --rate: a list of request rates, "0.5,1,2,4" (decimals allowed, unlike the integer axes)."""
    parts = [s.strip() for s in text.split(",") if s.strip()]
    if not parts or len(parts) > MOST_RATES:
        raise OpgraphError(f"--rate: give 1 to {MOST_RATES} rates, comma-separated (requests a second), got "
                           f"{text[:60]!r}")
    out = []
    for s in parts:
        try:
            value = float(s)
        except ValueError:
            raise OpgraphError(f"--rate: {s[:20]!r} is not a number (in {text[:60]!r})") from None
        out.append(checks.number("--rate", value, above=0, maximum=1e6))
    return out


def planning(a):
    """`opgraph plan`: the layouts of --gpus GPUs, ranked."""
    serving = a.concurrency is not None or a.rate is not None
    model, opts, hw = _arranged(a, serving=serving)
    probe = choices.builder(model, opts)(Phase.decode(1, 1))
    batches = sweep.parse_values(a.batch, "--batch") if a.batch is not None else list(plan_search.DEFAULT_BATCHES)
    ms = {k: None if getattr(a, k) is None else checks.number(f"--{k.replace('_', '-')}", getattr(a, k), above=0,
                                                               maximum=1e6) / 1e3
          for k in ("max_tpot", "max_ttft", "max_tpot_p90", "max_ttft_p90")}
    top = checks.integer("--top", a.top, maximum=10**6)
    if serving:
        from opgraph.analysis import serve, serving_plan

        if a.batch is not None:
            raise OpgraphError("--batch plans a static batch and --concurrency or --rate serving in flight: give one")
        if a.concurrency is not None and a.rate is not None:
            raise OpgraphError("--concurrency plans closed loops and --rate open ones: give one")
        figures, drafted, decode = _acceptance(a), None, None

        def draft_on(gpu):  # the draft laid out on `gpu` (each pool's own)
            draft_model = choices.draft(model, a.draft)
            arrange = choices.arranger(draft_model, _unplaced(a, draft_model, serving=True), gpu)
            return serving_plan.Draft(arrange, a.draft, a.draft_tokens, figures)
        if figures is not None:
            drafted = draft_on(hw)
        if a.decode_hardware is not None:
            if not a.disaggregated:
                raise OpgraphError("--decode-hardware applies to the splits of --disaggregated: add it")
            try:
                decode_hw = choices.gpu(a.decode_hardware, **knobs(a))
            except OpgraphError as e:
                raise OpgraphError(f"--decode-hardware {a.decode_hardware}: {e}") from None
            decode = (choices.arranger(model, opts, decode_hw), decode_hw,
                      None if figures is None else draft_on(decode_hw))
        found = serving_plan.search_serving(
            choices.arranger(model, opts, hw), hw, gpus=checks.integer("--gpus", a.gpus, maximum=1024),
            moe=plan_search.has_experts(probe), name=probe.name, prompt=checks.integer("--prompt", a.prompt),
            output=checks.integer("--output", a.output), engine=a.engine,
            plan=None if a.fusion is None else choices.plan(a.fusion),
            concurrencies=[] if a.concurrency is None else [
                checks.integer("--concurrency", c, maximum=100_000)
                for c in sweep.parse_values(a.concurrency, "--concurrency")],
            rates=[] if a.rate is None else _rates(a.rate),
            max_ttft_s=ms["max_ttft"], max_tpot_s=ms["max_tpot"], disaggregated=a.disaggregated,
            batch_tokens=sweep.parse_values(a.max_batch_tokens, "--max-batch-tokens") if a.max_batch_tokens else (),
            draft=drafted, max_tpot_p90_s=ms["max_tpot_p90"], max_ttft_p90_s=ms["max_ttft_p90"],
            request_latency_s=_request_latency(a), decode=decode,
            configure=lambda engine: serve.with_limits(_chunking(a, _hosted(a, engine)), memory_fraction=_memory(a)))
        return attrs.evolve(found, top=top, notes=served_notes(a, model) + found.notes + setting_notes(a, hw))
    for flag in ("disaggregated", "max_batch_tokens", "draft", "acceptance", "max_tpot_p90", "max_ttft_p90",
                 "request_latency_ms", "decode_hardware", "overhead_us", "overhead_per_request_us", "host_launch_us",
                 "scheduling", "memory_fraction", "chunked_prefill"):
        # given: anything but the default (None; --disaggregated's False), a 0 or --no-chunked-prefill too
        if getattr(a, flag) is not (False if flag == "disaggregated" else None):
            raise OpgraphError(f"--{flag.replace('_', '-')} plans serving in flight: give --concurrency or --rate "
                               f"too")
    if a.engine != "vllm":
        raise OpgraphError("--engine applies to serving plans: give --concurrency or --rate too")
    return attrs.evolve(plan_search.search(choices.arranger(model, opts, hw), choices.plan(a.fusion or planfile.DEFAULT), hw,
                              gpus=checks.integer("--gpus", a.gpus, maximum=1024),
                              moe=plan_search.has_experts(probe),
                              name=probe.name, prompt=checks.integer("--prompt", a.prompt),
                              output=checks.integer("--output", a.output), batches=batches,
                              max_tpot_s=ms["max_tpot"], max_ttft_s=ms["max_ttft"]), top=top)


def setting_notes(a, hw) -> tuple[str, ...]:
    """What a serving plan says of the engine settings given beside its searched ones: its memory setting
    (--memory-fraction), in that engine's terms, and its chunked prefill (--chunked-prefill)."""
    from opgraph.analysis import serve

    notes = ()
    if a.memory_fraction is not None:
        leaves = serve.ENGINES[a.engine](hw).memory_setting == "kv_share"
        share = ("of what the weights and activations leave, for its KV cache (free_gpu_memory_fraction)" if leaves
                 else "of each GPU's memory, for weights, activations and KV cache")
        notes += (f"the engine's memory setting: {a.memory_fraction:g} {share}, given (--memory-fraction)",)
    if a.chunked_prefill is not None:
        engine = _chunking(a, serve.ENGINES[a.engine](hw))
        notes += (f"the engine's scheduler: {engine.rules}, given (--{'' if a.chunked_prefill else 'no-'}"
                  f"chunked-prefill)",)
    return notes


def _longest(text) -> int:
    """The longest of a length or a range LOW:HIGH (already checked)."""
    span = _span("", str(text))
    return span if isinstance(span, int) else max(span)


def _span(name: str, text: str) -> int | tuple[int, int]:
    """A length, or a range LOW:HIGH."""
    parts = text.split(":")
    if len(parts) > 2 or not all(p.strip().isdigit() for p in parts):
        raise OpgraphError(f"{name}: {text!r} is neither a number of tokens nor a range LOW:HIGH")
    values = [int(p) for p in parts]
    return values[0] if len(values) == 1 else (values[0], values[1])


def _layout(flag: str, text: str | None, a):
    """A pool's layout and GPU: tp=N,dp=N,ep=N,pp=N (any of them; the others 1) and gpu=NAME (default: --hardware), or
    the command's own --tp, --dp, --ep, --pp."""
    from opgraph.analysis.plan import Layout

    if text is None:
        return Layout(a.tp, a.dp, a.ep, getattr(a, "pp", 1)), a.hardware
    sizes, gpu_name = {"tp": 1, "dp": 1, "ep": 1, "pp": 1}, a.hardware
    for part in text.split(","):
        key, _, value = (x.strip() for x in part.partition("="))
        if key == "gpu" and value:
            gpu_name = value
            continue
        if key not in sizes or not value.isdigit():
            raise OpgraphError(f"{flag}: {text!r} is not a layout; give tp=N, dp=N, ep=N and pp=N (and gpu=NAME for "
                               f"a GPU other than --hardware) separated by commas, e.g. tp=8, tp=4,pp=2 or "
                               f"dp=16,ep=16,gpu=h200")
        sizes[key] = checks.integer(f"{flag} {key}", int(value))
    return Layout(sizes["tp"], sizes["dp"], sizes["ep"], sizes["pp"]), gpu_name


def _acceptance(a) -> tuple[float, ...] | None:
    """--acceptance as one figure a draft token (one figure given: for each of --draft-tokens); None without --draft."""
    if a.draft is None:
        if a.acceptance is not None:
            raise OpgraphError("--acceptance applies to speculative decoding: give --draft MODEL too")
        return None
    try:
        figures = [float(x) for x in a.acceptance.split(",")] if a.acceptance else []
    except ValueError:
        raise OpgraphError(f"--acceptance: {a.acceptance!r} is not a list of numbers from 0 to 1") from None
    if not figures:
        raise OpgraphError("--draft needs --acceptance: the chance a draft token is accepted (one figure, or one "
                           "per draft token, comma-separated), which only a measurement of your models can give")
    k = a.draft_tokens  # Speculation checks it, and the figures against it
    return tuple(figures * k if len(figures) == 1 and k > 0 else figures)


def _limited(a, engine, **more):
    """The engine with the limits the command line gives (--max-batch-tokens, --max-seqs, --memory-fraction; `more`
    beside them) and its host's time and scheduling (--overhead-us, --scheduling), checked."""
    from opgraph.analysis import serve

    return serve.with_limits(
        _chunking(a, _hosted(a, engine)),
        max_batched_tokens=None if a.max_batch_tokens is None else checks.integer("--max-batch-tokens",
                                                                                 a.max_batch_tokens),
        max_seqs=None if a.max_seqs is None else checks.integer("--max-seqs", a.max_seqs),
        memory_fraction=_memory(a), **more)


def _chunking(a, engine):
    """The engine running long prompts in chunks or only whole as --chunked-prefill / --no-chunked-prefill say (not
    given: its own way)."""
    from opgraph.analysis import serve

    on = a.chunked_prefill
    if on is None:
        return engine
    if not on and engine.name == "sglang":
        raise OpgraphError("--no-chunked-prefill: SGLang without chunked prefill (--chunked-prefill-size -1) runs "
                           "prompts up to its max_prefill_tokens an iteration, which is not modelled; give "
                           "--max-batch-tokens for its chunk")
    if not on and getattr(a, "chunk", None) is not None:
        raise OpgraphError("--chunk caps a prompt's chunks, and --no-chunked-prefill runs prompts whole: give one")
    return serve.with_chunking(engine, on)


def _memory(a) -> float | None:
    """--memory-fraction, checked (None when not given)."""
    return None if a.memory_fraction is None else checks.number("--memory-fraction", a.memory_fraction, above=0,
                                                                 maximum=1)


def _hosted(a, engine):
    """The engine with the host's time per iteration (and per request it runs), per kernel of a prompt's iteration,
    and its scheduling the command line gives (--overhead-us, --overhead-per-request-us, --host-launch-us,
    --scheduling), checked."""
    from opgraph.analysis import serve

    flags, figures = {}, {}
    for given in ("overhead_us", "overhead_per_request_us", "host_launch_us"):  # µs given: the engine's seconds
        name, flag, us = given.removesuffix("_us") + "_s", "--" + given.replace("_", "-"), getattr(a, given)
        flags[name] = flag
        figures[name] = None if us is None else checks.number(flag, us, minimum=0, maximum=10**6) * 1e-6
    flags["scheduling"] = "--scheduling"
    figures["scheduling"] = None if a.scheduling is None else checks.choice("--scheduling", a.scheduling,
                                                                             serve.SCHEDULING)
    return engine.given(lambda name: f"given ({flags[name]})", **figures)


def _batch_wait(text: str, engine: str) -> tuple[float, int]:
    """--batch-wait RATIO,ITERS: TensorRT-LLM's batch waiting, checked."""
    if engine != "trtllm":
        raise OpgraphError(f"--batch-wait: batch waiting is TensorRT-LLM's (--engine trtllm), not {engine}'s")
    parts = text.split(",")
    if len(parts) != 2:
        raise OpgraphError(f"--batch-wait: {text!r} is not RATIO,ITERS (a share of the token budget and a number of "
                           f"iterations, e.g. 0.9,20)")
    try:
        ratio, iters = float(parts[0]), int(parts[1])
    except ValueError:
        raise OpgraphError(f"--batch-wait: {text!r} is not RATIO,ITERS (a number and a whole number, e.g. "
                           f"0.9,20)") from None
    return (checks.number("--batch-wait's RATIO", ratio, above=0, maximum=1),
            checks.integer("--batch-wait's ITERS", iters))


def _request_latency(a) -> float:
    """--request-latency-ms in seconds (0 when not given)."""
    given = a.request_latency_ms
    return 0.0 if given is None else checks.number("--request-latency-ms", given, minimum=0, maximum=60_000) * 1e-3


def disaggregated_run(a):
    """`opgraph serve --disaggregate XpYd`: prefill and decode workers apart, the KV cache moved between them."""
    import re

    from opgraph.analysis import serve
    from opgraph.analysis.disaggregated import decode_holds, one_node, served, side, with_request_latency
    from opgraph.analysis.serving_plan import Draft

    match = re.fullmatch(r"(\d+)p(\d+)d", a.disaggregate.strip().lower())
    if not match:
        raise OpgraphError(f"--disaggregate: {a.disaggregate!r} is not XpYd (prefill and decode workers, e.g. 1p2d)")
    if a.chunk is not None:
        raise OpgraphError("--chunk with --disaggregate is not modelled (a prefill worker's prompts run in chunks of "
                           "its budget, --max-batch-tokens); give --max-batch-tokens for the prefill workers' chunks")
    if a.prefix_hit:
        raise OpgraphError("--prefix-hit with --disaggregate is not modelled (which worker holds a request's own "
                           "cached tokens, and what moves, depends on the router); give --prefix for a prefix every "
                           "prompt shares, cached on every worker")
    if a.batch_wait is not None:
        raise OpgraphError("--batch-wait does not apply with --disaggregate: TensorRT-LLM's batch waiting holds new "
                           "prompts back while requests decode beside them, and a prefill worker runs no decodes, a "
                           "decode worker no prompts")
    if a.queue and a.rate is not None:
        raise OpgraphError("--queue lets a closed loop hold more than the decode replicas run at once: an open loop's "
                           "arrivals (--rate) wait for room already; give --concurrency with it, or no --queue")
    if getattr(a, "micro_batches", None) is not None:
        raise OpgraphError("--micro-batches does not apply to serving: with pipeline stages the engine keeps one batch "
                           "in flight a stage")
    model, opts, hw = _arranged(a, serving=True)
    prompts = serve.length_range("--prompt", _span("--prompt", a.prompt))
    outputs = serve.length_range("--output", _span("--output", a.output), minimum=2)
    # the closed form at the mean lengths; the event run draws each request's from the ranges
    prompt, output = (prompts[0] + prompts[1]) // 2, (outputs[0] + outputs[1]) // 2
    longest = prompts[1] + outputs[1]
    prefix = serve.checked_prefix(a.prefix, prompts[0])
    figures, sides = _acceptance(a), []
    draft_model = None if figures is None else choices.draft(model, a.draft)
    for flag, text, workers in (("--prefill", a.prefill, int(match[1])), ("--decode", a.decode, int(match[2]))):
        layout, gpu_name = _layout(flag, text, a)
        try:
            pool_hw = hw if gpu_name == a.hardware else choices.gpu(gpu_name, **knobs(a))
        except OpgraphError as e:
            raise OpgraphError(f"{flag} gpu={gpu_name}: {e}") from None
        build_, group_hw = choices.arranger(model, opts, pool_hw)(layout)
        engine = _limited(a, serve.ENGINES[checks.choice("--engine", a.engine, serve.ENGINES)](group_hw))
        engine.check_layout(layout.tp, layout.ep)
        fusion = choices.plan(a.fusion or engine.plan)
        # the draft laid out as its pool is: it prefills beside the target, and drafts
        if draft_model is not None:
            serve.check_drafting(layout.pp, pool=True)
        drafting = None if draft_model is None else Draft(
            choices.arranger(draft_model, _unplaced(a, draft_model, serving=True), pool_hw), a.draft, a.draft_tokens,
            figures).at(layout, fusion, engine.timed(group_hw))
        sides.append(side(build_, fusion, group_hw, engine, layout, checks.integer(flag, workers), prompt, pool_hw,
                          drafting=drafting, prefix=prefix))
        if flag == "--decode":  # requests one decode replica's KV cache holds (a shared prefix once)
            holds = decode_holds(sides[-1], build_, fusion, group_hw, longest, prompts[0],
                                 drafting.speculation.build if drafting else None)
    sides[0].engine.check_prompt(prompts[1], prompts[1] - sides[0].cached(prompts[1]))  # the prefill workers'
    gpus = sum(s.workers * s.gpus for s in sides)
    same_gpu = sides[0].hw.name == sides[1].hw.name
    d = served(sides[0].pricer.model, hw, *sides, prompts=prompts, outputs=outputs, holds=holds,
               same_node=same_gpu and one_node(hw, gpus), concurrency=a.concurrency, rate=a.rate, queue=a.queue,
               requests=a.requests, seed=a.seed)
    d = attrs.evolve(d, notes=served_notes(a, model) + d.notes)
    if prompts[0] != prompts[1] or outputs[0] != outputs[1]:
        d = attrs.evolve(d, notes=d.notes + (
            f"lengths drawn uniformly from prompts of {prompts[0]:,} to {prompts[1]:,} tokens and outputs of "
            f"{outputs[0]:,} to {outputs[1]:,}: the closed form takes the means ({prompt:,} and {output:,}), the event "
            f"run draws each request's (seed {a.seed})",))
    if a.requests is not None:
        d = attrs.evolve(d, notes=d.notes + (
            f"the event run is a benchmark of {a.requests:,} requests (--requests): the first {a.concurrency:,} per "
            f"decode replica sent at once to the prefill queue, a new one as each finishes while any are left, every "
            f"one counted, first wave and drain included; the closed form is an endless loop's steady state",))
    return with_request_latency(d, _request_latency(a))


def _chunk(tokens: int, engine) -> int:
    """--chunk: one prompt's tokens an iteration at most, vLLM's long_prefill_token_threshold; the other engines have
    no such cap apart from their budget, said with what to give instead."""
    if engine.name == "sglang":
        raise OpgraphError("--chunk: SGLang's chunk is its chunked_prefill_size, which is its token budget an "
                           "iteration: give --max-batch-tokens")
    if engine.name != "vllm":
        raise OpgraphError(f"--chunk: {engine.name} caps no prompt's chunk below its token budget (with "
                           f"--chunked-prefill its chunks take the budget left); --chunk applies to --engine vllm")
    tokens = checks.integer("--chunk", tokens)
    if tokens > engine.max_batched_tokens:
        raise OpgraphError(f"--chunk {tokens:,}: more than the token budget an iteration "
                           f"({engine.max_batched_tokens:,}, --max-batch-tokens), which caps every chunk already; give "
                           f"at most that")
    return tokens


def serving_run(a):
    from opgraph.analysis import serve

    if a.sp:  # the options are report's; each iteration's tokens vary, where --sp needs them to split evenly
        raise OpgraphError("--sp: serve does not model sequence parallelism (an iteration's tokens change from one to "
                           "the next, and an engine that splits them over the group pads them to it); give --sp to "
                           "report, sweep or generate, with a batch divisible by --tp")
    if a.disaggregate is not None:
        return disaggregated_run(a)
    for flag in ("prefill", "decode"):
        if getattr(a, flag) is not None:
            raise OpgraphError(f"--{flag} lays out one side of a disaggregated deployment: give --disaggregate XpYd")
    if getattr(a, "micro_batches", None) is not None:
        raise OpgraphError("--micro-batches does not apply to serving: with --pp the engine keeps one batch in flight "
                           "a stage, each with its share of the requests")
    hw = gpu(a)
    engine = serve.ENGINES[checks.choice("--engine", a.engine, serve.ENGINES)](hw)
    engine.check_layout(a.tp, a.ep)
    engine = _limited(a, engine, batch_wait=None if a.batch_wait is None else _batch_wait(a.batch_wait, engine.name))
    if a.chunk is not None:  # within the budget as given
        engine = serve.with_limits(engine, chunk=_chunk(a.chunk, engine))
    figures, model = _acceptance(a), source(a)
    draft = None if figures is None else choices.draft(model, a.draft)
    if draft is not None:  # before the draft is built into stages
        serve.check_drafting(a.pp)
    speculation = None if draft is None else serve.Speculation(build(a, draft, serving=True), a.draft, a.draft_tokens,
                                                               figures)
    served = serve.serve(build(a, model, serving=True), choices.plan(a.fusion or engine.plan), hw, concurrency=a.concurrency,
                         rate=a.rate, prompt=_span("--prompt", a.prompt), output=_span("--output", a.output),
                         engine=engine, seed=a.seed, prefix=a.prefix, speculation=speculation, requests=a.requests,
                         queue=a.queue, request_latency_s=_request_latency(a), prefix_hit=a.prefix_hit)
    return attrs.evolve(served, notes=served_notes(a, model) + served.notes)


def generation(a):
    sizes = {k: checks.integer(f"--{k}", getattr(a, k)) for k in ("batch", "prompt", "output")}
    return generate.estimate(build(a), choices.plan(a.fusion), gpu(a), **sizes)


def picture(a) -> str:
    from opgraph.render import plot  # matplotlib, only when a picture is asked for
    path = plot.check_path(a.out)
    plot.require()
    if a.plot == "validate":
        return plot.validation_file(validation(a), path)
    if a.plot == "pareto":
        if a.concurrency is None and a.rate is None:
            raise OpgraphError("plot pareto draws serving plans: give --concurrency (requests in flight per replica "
                               "to try, a list) or --rate (requests a second in all, a list)")
        return plot.pareto_file(planning(a), path)
    if a.plot != "sweep":
        r = report.report(build(a), phases(a), choices.plan(a.fusion), gpu(a))
        return (plot.roofline_file if a.plot == "roofline" else plot.breakdown_file)(r.costs, path)
    _no_sp_in_search(a, "opgraph plot sweep (each block's crossover marked)")
    gpus = gpu_list(a)
    if len(gpus) != 1:
        raise OpgraphError("opgraph plot sweep draws one GPU: give one --hardware")
    make, fusion = build(a), choices.plan(a.fusion)
    curves = choices.sweep_curves(make, fusion, gpus[0], a.phase, batch=a.batch, seq_len=a.seq_len, context=a.context)
    tm = gpus[0].timing
    title = (f"{make(Phase.decode(1, 1)).name} on {gpus[0].display_name}, fusion {fusion.name}: expected time "
             f"({tm.name if tm.calibrated else 'no calibration: the roofline'}), roofline dashed")
    return plot.sweep_file(curves, title, path)




def benchmark(a):
    make = build(a)
    batches = sweep.parse_values(a.batch or "1,8,32,128", "--batch")
    lengths = sweep.parse_values(a.lengths or "128,1024,4096", "--lengths")
    if len(batches) * len(lengths) > 400:
        raise OpgraphError(f"--batch x --lengths is {len(batches) * len(lengths):,} sizes; the most is 400")
    models = [make(ph) for ph in bench.phases(batches, lengths)]
    specs, left = tuple(bench.kernels(models)), tuple(bench.left_out(models).items())
    if a.dry_run:
        return bench.Bench(models[0].name, specs, left_out=left)
    if not a.out:
        raise OpgraphError("opgraph bench: say where to write the measurements: --out FILE.csv (or --dry-run)")
    rows = bench.measure(specs, repeats=checks.integer("--repeats", a.repeats, maximum=1000),
                         calls=checks.integer("--calls", a.calls, maximum=10**5))
    result = bench.Bench(models[0].name, specs, tuple(rows), a.out, left)
    try:
        Path(a.out).write_text(measurement_csv(result))
    except OSError as e:
        raise OpgraphError(f"--out {a.out!r}: cannot write: {e.strerror or e}") from None
    return result


def validation(a):
    from opgraph.files import serving_measurements

    if serving_measurements.is_serving(a.measurements):
        from opgraph.analysis import serving_validate

        if not hasattr(a, "protocol"):
            raise OpgraphError(f"{a.measurements} holds serving results; 'plot validate' draws kernel rows: use "
                               f"'opgraph validate' for serving rows")
        if a.calibration is not None:
            raise OpgraphError("--calibration applies to kernel rows; serving rows use each GPU's shipped calibration")
        rows = serving_measurements.read(a.measurements)
        gpu_name = None if a.hardware is None else choices.gpu(a.hardware).name
        return serving_validate.validate_serving(
            rows, choices.serving_row, a.measurements, protocol=a.protocol, gpu=gpu_name,
            limit=None if a.limit is None else checks.integer("--limit", a.limit),
            request_latency_s=_request_latency(a))
    if a.hardware is None:
        from opgraph import hardware
        a.hardware = hardware.DEFAULT
    notes = []
    if profiles.is_trace(a.measurements):
        rows, skipped = profiles.read_noting(a.measurements)
        if skipped:
            calls = sum(skipped.values())
            notes.append(f"{counted(calls, 'traced call')} with GPU work {noun(calls, 'maps', 'map')} to no "
                         f"measured class and {noun(calls, 'is', 'are')} left out: "
                         + ", ".join(f"{label} x{n:,}" for label, n in skipped.most_common()))
    else:
        rows = measurements.read(a.measurements)
    for flag in ("protocol", "limit", "request_latency_ms"):
        if getattr(a, flag, None) is not None:
            raise OpgraphError(f"--{flag.replace('_', '-')} applies to serving rows (a CSV with ttft_ms and tpot_ms); "
                               f"{a.measurements} holds kernel timings")
    return validate.validate(rows, gpu(a), a.measurements, notes)


def calibration(a):
    holdout = checks.number("--holdout", a.holdout, above=0, maximum=0.9)
    rate = None if a.exp_rate is None else checks.number("--exp-rate", a.exp_rate, above=0, maximum=1e18)
    by_rows = choices.by_rows(a.by_rows)
    rows = measurements.read(a.measurements)
    result = fitting.calibrate(rows, choices.gpu(a.hardware), holdout=holdout, seed=a.seed,
                               source=a.source or a.measurements, exp_rate=rate, by_rows=by_rows)
    write_calibration(result.model, a.out)
    return result
