"""What the user chose, resolved into the records the analyses take: a model source and how to build it, the
phases and sizes, the GPU, the fusion plan. Every mistake is an OpgraphError naming the option and what is
valid. The command line calls these with its options' values; scripts can too.
"""

from __future__ import annotations

import attrs

from opgraph import hardware as specs
from opgraph import models
from opgraph.analysis.plan import has_experts
from opgraph.analysis.sweep import parse_values, sweep_curve
from opgraph.core import checks
from opgraph.pricing.hardware import Hardware
from opgraph.pricing.kinds import moe
from opgraph.pricing.kinds.gemm import CLASSES as GEMM_CLASSES, GEMM
from opgraph.core.model import BuildOptions, expert_layout, no_experts
from opgraph.core.phase import LENGTH_NAMES, PHASES, Phase
from opgraph.core.tensor import BF16, STORAGE_DTYPES, Precision, dtype
from opgraph.errors import OpgraphError
from opgraph.files import planfile

DEFAULT_BATCH = 32
DEFAULT_LENGTH = {"prefill": 1024, "decode": 1024}  # seq_len, context
DEFAULT_BATCHES = "1,2,4,...,512"
GROUPED = ("int4", "int8")  # weight types stored with one fp16 scale per group of a row
# weight types whose GEMMs quantize a wider input to them (DType.quantizes_input) when --weight-dtype gives them
INPUT_QUANTIZED = ("fp8", "nvfp4")
DEFAULT_GROUP = 128
MAX_POINTS = 10**7  # points in one sweep: about 1 GB of results


def own_dtype(source) -> str:
    """The model's own dtype name: a config's, else bf16 (GraphBuilder's default) for a model written in Python."""
    return getattr(source, "dtype", BF16).name


# Engines serve a float32 checkpoint in 16 bits: vLLM's dtype "auto" (vllm/config.py, _get_and_verify_dtype:
# "Following the common practice, we use float16 for float32 models"; bfloat16 instead from v0.10.1); SGLang and
# TensorRT-LLM are taken to do the same. fp16 and bf16 move the same bytes at the same tensor-core rate.
SERVED_FROM_FP32 = "bf16"


def built_dtype(source, serving: bool) -> str:
    """The model's own dtype name as a command builds it: a float32 checkpoint served in 16 bits (SERVED_FROM_FP32)
    where it serves (what the engines call the model's dtype), else own_dtype."""
    return SERVED_FROM_FP32 if serving and served_from_fp32(source) else own_dtype(source)


def served_from_fp32(source) -> bool:
    """Whether serving changes the model's own precision: an unquantized float32 checkpoint, served in 16 bits."""
    return own_dtype(source) == "fp32" and getattr(source, "weight_dtype", None) is None


def served_note(source, dtype_: str | None, weight: str | None, act: str | None) -> tuple[str, ...]:
    """What a serving command says when it serves a float32 checkpoint in 16 bits (the weights or activations
    left to --dtype, and no --dtype given)."""
    if not served_from_fp32(source) or dtype_ is not None or (weight is not None and act is not None):
        return ()
    return (f"{source.name}'s checkpoint is float32; served in {SERVED_FROM_FP32}, as the engines load a float32 "
            f"model (vLLM's dtype auto); give --dtype fp32 to serve it as stored",)


SERVED_REQUESTS = "requests of up to {:,} tokens (prompt and output)"  # what a serving command's context_note names


def context_note(source, longest: int, what: str = SERVED_REQUESTS) -> tuple[str, ...]:
    """What a command says when what it serves or sweeps (`what`, of up to `longest` positions) outruns the context
    window the model's config declares (DecoderConfig.context_window): engines refuse such requests by default."""
    window = getattr(source, "context_window", None)
    if window is None or longest <= window:
        return ()
    return (f"{what.format(longest)} exceed {source.name}'s context window of {window:,} positions (config.json "
            f"max_position_embeddings): engines refuse them by default (vLLM's max_model_len, SGLang's context_length "
            f"and TensorRT-LLM's max_seq_len are derived from it); the figures extrapolate",)


def declared_kv(source) -> str | None:
    """The KV-cache dtype a quantized checkpoint declares (its quantization_config's kv_cache_quant_algo or
    kv_cache_scheme: models.quantization.WeightFormat.kv_cache), as --kv-dtype names it; else None."""
    fmt = getattr(source, "weight_format", None)
    return None if fmt is None or fmt.kv_cache is None else str(fmt.kv_cache)


def precision(source, *, dtype_: str | None = None, weight: str | None = None, act: str | None = None,
              kv: str | None = None, group_size: int | None = None, table: str | None = None,
              state: str | None = None, serving: bool = False, kv_declared: bool = True) -> Precision | None:
    """Storage precision per role from --dtype and the per-role options; None keeps the model's own (`serving`: a
    float32 checkpoint served in 16 bits, as engines load it: SERVED_FROM_FP32). A quantized checkpoint's weights
    stay its own unless --dtype or --weight-dtype is given (--kv-dtype fp8 leaves gpt-oss's MXFP4 experts MXFP4),
    and so does the KV cache it declares (declared_kv) unless --dtype or --kv-dtype is given, or `kv_declared` is
    False (an engine that does not read the declaration: opgraph.analysis.serve.reads_declared_kv), when it takes the
    model's own dtype. The recurrent state (--state-dtype) defaults to the activation dtype (Precision.state)."""
    given = {"weight": weight, "act": act, "kv": kv, "table": table, "state": state}
    from_fp32 = serving and served_from_fp32(source)
    declared = declared_kv(source)
    if dtype_ is None and all(v is None for v in given.values()):
        if group_size is not None:
            raise OpgraphError(f"--group-size applies to int4/int8 weights, but the weights are {own_dtype(source)}; "
                               f"add --weight-dtype int4 or int8")
        if not from_fp32 and (declared is None or kv_declared):
            return None
    own = built_dtype(source, serving)
    base = checks.choice("--dtype", own if dtype_ is None else dtype_, STORAGE_DTYPES)
    kept = declared is not None and kv_declared and dtype_ is None and kv is None  # the declared KV cache kept
    names = {role: checks.choice(f"--{role}-dtype", base if v is None else v, STORAGE_DTYPES)
             for role, v in given.items() if role not in ("table", "state") or v is not None}
    # a quantized checkpoint keeps its own weights unless --dtype or --weight-dtype says otherwise (the model then
    # stores each matrix as its quantization_config says: Model.weight_dtype_for)
    stored = getattr(source, "weight_dtype", None) if dtype_ is None and weight is None else None
    if stored is not None:
        if group_size is not None:
            raise OpgraphError(f"--group-size applies to int4/int8 weights, but the weights are the checkpoint's "
                               f"{stored}; add --weight-dtype int4 or int8")
        w = stored
    elif names["weight"] in GROUPED:
        w = dtype(names["weight"]).grouped(DEFAULT_GROUP if group_size is None else
                                           checks.integer("--group-size", group_size))
    elif group_size is not None:
        raise OpgraphError(f"--group-size applies to int4/int8 weights, but --weight-dtype is {names['weight']}")
    else:
        w = dtype(names["weight"])
        if names["weight"] in INPUT_QUANTIZED and w.bits < dtype(names["act"]).bits:
            w = w.with_input_quantized()  # as engines serve them: vLLM's --quantization fp8 is W8A8
    tables = dtype(names["table"]) if "table" in names else None
    states = dtype(names["state"]) if "state" in names else None
    kv_type = source.weight_format.kv_cache if kept else dtype(names["kv"])
    return Precision(weight=w, act=dtype(names["act"]), kv=kv_type, tables=tables, state=states)


def pp_layers(text: str | None) -> tuple[int, ...] | None:
    """--pp-layers: layers per stage, comma-separated positive integers."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isascii() and p.isdigit() and len(p) <= 10 for p in parts):
        raise OpgraphError(f"--pp-layers: {text[:40]!r} is not a list of layer counts, e.g. 63,63")
    return tuple(checks.integer("--pp-layers", int(p)) for p in parts)


def by_rows(texts: list[str] | None) -> dict[str, tuple[int, ...]]:
    """--by-rows CLASS=N,N,...: GEMM classes fitted one table per range of rows, split at rising bounds."""
    out = {}
    gemms = sorted(c.name for c in GEMM_CLASSES)
    for text in texts or ():
        kind, _, bounds = text.partition("=")
        if kind not in gemms:
            raise OpgraphError(f"--by-rows {text[:40]!r}: {kind[:30]!r} is not a GEMM class; valid: {', '.join(gemms)}")
        parts = [p.strip() for p in bounds.split(",")]
        if not all(p.isascii() and p.isdigit() and len(p) <= 9 for p in parts) or kind in out:
            raise OpgraphError(f"--by-rows {text[:40]!r}: give each class once, with rising row counts, e.g. "
                               f"{GEMM}_fp8=16,64,128")
        values = [checks.integer("--by-rows", int(p)) for p in parts]
        if values != sorted(set(values)):
            raise OpgraphError(f"--by-rows {text[:40]!r}: the row counts must rise, e.g. {GEMM}_fp8=16,64,128")
        out[kind] = tuple(values)
    return out


def builder(source, options: BuildOptions):
    """phase -> the Model of `source` for that phase, built with `options`.

    Data parallelism needs nothing of the model's builder: `dp` replicas of its (tp-GPU) group each serve their
    own batch, so the group grows by dp and stores dp copies. Expert parallelism (ep = tp x dp, or ep dividing tp
    without dp: ep groups of tp / ep GPUs) is built by the model's MoE layers, which then lay out the whole group
    themselves."""
    tp, dp, ep, pp = (checks.integer(f"--{k}", getattr(options, k), maximum=1024) for k in ("tp", "dp", "ep", "pp"))
    if options.micro_batches is not None:
        checks.integer("--micro-batches", options.micro_batches, maximum=10**6)
    if pp == 1 and (options.micro_batches is not None or options.pp_layers is not None):
        raise OpgraphError(f"--{'micro-batches' if options.micro_batches is not None else 'pp-layers'} applies to "
                           f"pipeline parallelism; add --pp N")
    if not expert_layout(tp, dp, ep):
        flat = source.build(Phase.decode(1, 1), BuildOptions(precision=options.precision))  # on this error path only
        if not has_experts(flat):  # the first thing to say: a layout of experts cannot help a model without them
            raise no_experts(ep, flat.name)
        groups = "/".join(str(d) for d in range(2, tp + 1) if tp % d == 0)
        within = f"--ep {groups} with --tp {tp}" if tp > 1 else f"--tp {ep} --ep {ep}"
        raise OpgraphError(f"--ep {ep} must equal --tp x --dp ({tp} x {dp} = {tp * dp}), the experts spread over "
                           f"every GPU of the group, or divide --tp without --dp, the experts spread over ep groups "
                           f"of tp / ep GPUs (give {within}, or --dp {ep} --ep {ep} without --tp)")
    if options.expert_imbalance is not None:
        checks.number("--expert-imbalance", options.expert_imbalance, minimum=1, maximum=1024)
        if ep == 1:
            raise OpgraphError("--expert-imbalance applies with --ep (the busiest expert-parallel GPU's load); "
                               "add --ep N --dp N")

    def build(phase: Phase):
        model = source.build(phase, options)
        if dp > 1 and ep == 1:  # replicas of the model's group, each on its own batch
            whole = model.whole_weight_bytes if model.gpus > 1 else model.weight_bytes()
            where = f"{model.parallel}, " if model.parallel else ""
            model = attrs.evolve(model, gpus=model.gpus * dp, replicas=dp, whole_weight_bytes=whole,
                                 parallel=f"{where}data parallel x {dp}",
                                 notes=(*model.notes, f"data parallel: {dp} replicas of the model, each serving its "
                                                      f"own batch of {phase.batch}; every figure is one GPU's"))
        return model

    if options.sp and tp == 1:
        raise OpgraphError("--sp splits the tokens over a tensor-parallel group; add --tp N (N >= 2)")
    parallel = tp != 1 or ep != 1 or pp != 1
    if options.experts_touched is not None:
        checks.integer("--experts-touched", options.experts_touched)
    if not parallel and options.experts_touched is None:
        return build
    # one small decode step shows whether the builder honoured the options (--sp splits its sequences over tp, in
    # each micro-batch of a pipeline)
    probe = build(Phase.decode(tp * (options.micro_batches or pp) if options.sp else 1, 1))
    if parallel:
        if not any(op.kind == "collective" for op in probe.ops()):
            option = f"--tp {tp}" if tp != 1 else f"--ep {ep}" if ep != 1 else f"--pp {pp}"
            raise OpgraphError(f"{option}: {probe.name} was built without any communication between GPUs, "
                               f"so its builder ignored the option (pieces take tp=... and ep=...)")
        if options.sp and not any(op.fn == "reduce_scatter" for op in probe.ops()):
            raise OpgraphError(f"--sp: {probe.name} was built without reduce-scatters, so its builder ignored the "
                               f"option (pieces take sp=...)")
        if pp != 1 and not probe.stages:
            raise OpgraphError(f"--pp {pp}: {probe.name} was built as one stage, so its builder ignored the option "
                               f"(a pipeline model lists its stages: opgraph.core.model.Stage)")
    if options.experts_touched is not None and not has_experts(probe):
        raise OpgraphError(f"--experts-touched applies to mixture-of-experts models; {probe.name} has no ops "
                           f"tagged 'moe'")
    return build


def gpu(name: str, *, launch_us: float | None = None, overlap: float | None = None, comm_overlap: float | None = None,
        calibration: str | None = None, marlin_moe: bool | None = None) -> Hardware:
    """A GPU spec with its time model (`calibration`, else the shipped one) and the command line's knobs applied."""
    hw = specs.load(name, calibration)
    if marlin_moe:  # an engine setting of which kernel runs MXFP4 experts, not a change of the fitted parameters
        if hw.timing.table(moe.MARLIN) != moe.MARLIN:
            held = (f"the {hw.name} time model ({hw.timing.name})" if hw.timing.calibrated else
                    f"{hw.name} has no calibration (its times are the roofline's), so it")
            raise OpgraphError(f"--marlin-moe: {held} has no {moe.MARLIN} table (fitted on measured Marlin MoE "
                               f"calls); the shipped H100 SXM and H200 calibrations have it")
        hw = attrs.evolve(hw, timing=hw.timing.priced_as(*moe.marlin("--marlin-moe")))
    knobs, fields, said = {}, {}, []
    if launch_us is not None:
        fields["latency_s"] = checks.number("--launch-us", launch_us, minimum=0, maximum=10**6) * 1e-6
        said.append(f"--launch-us {launch_us:g}")
    if overlap is not None:
        fields["overlap"] = checks.number("--overlap", overlap, minimum=0, maximum=1)
        said.append(f"--overlap {overlap:g}")
    if fields:  # overrides of the expected time's parameters, in every class; the roofline stays the ideal
        knobs["timing"] = hw.timing.overridden(" ".join(said), **fields)
    if comm_overlap is not None:
        knobs["comm_overlap"] = checks.number("--comm-overlap", comm_overlap, minimum=0, maximum=1)
    return attrs.evolve(hw, **knobs) if knobs else hw


def group_fits(hw: Hardware, tp: int, across_nodes: bool = False, ep: int = 1) -> Hardware:
    """A group whose collectives (a --tp group's all-reduces, an --ep group's all-to-alls) span nodes runs them
    over the network, several times slower than the links inside a node; that is allowed only when asked for,
    never by accident. (Data-parallel replicas do not talk to each other, so --dp alone spans nothing.)"""
    link = hw.interconnect
    option, n = (f"--ep {ep}", ep) if ep > tp else (f"--tp {tp}", tp)
    if across_nodes and (n == 1 or (link is not None and n <= link.gpus_per_node)):
        within = "one GPU" if n == 1 else f"one node of {link.gpus_per_node} {hw.name} GPUs"
        raise OpgraphError(f"--across-nodes: {option} fits in {within}, so nothing crosses nodes; drop it")
    if link is not None and n > link.gpus_per_node and not across_nodes:
        nodes = -(-n // link.gpus_per_node)
        what = "all-to-alls" if ep > tp else "all-reduces"
        raise OpgraphError(f"{option} spans {nodes} nodes of {link.gpus_per_node} {hw.name} GPUs: its {what} "
                           f"would cross the network ({link.network_bandwidth / 1e9:g} GB/s per GPU, against "
                           f"{link.link_bandwidth / 1e9:g} GB/s within a node); use {option.split()[0]} "
                           f"{link.gpus_per_node} or less, or add --across-nodes to model it anyway")
    return hw


def arranger(source, options: BuildOptions, hw: Hardware):
    """For `opgraph plan`: layout -> (the model builder for that parallel layout, the hardware its collectives run
    on); a group that spans nodes is allowed, since the search weighs it against the others."""
    def arrange(layout):
        link = hw.interconnect
        crosses = link is not None and max(layout.tp, layout.ep) > link.gpus_per_node
        group_hw = group_fits(hw, layout.tp, crosses, layout.ep)
        options_ = attrs.evolve(options, tp=layout.tp, dp=layout.dp, ep=layout.ep, pp=layout.pp)
        return builder(source, options_), group_hw
    return arrange


def gpus(text: str | None, **knobs) -> list[Hardware]:
    """Several GPUs, separated by commas (a calibration file, if given, applies to each)."""
    names = [n.strip() for n in (specs.DEFAULT if text is None else text).split(",")]
    if not all(names):
        raise OpgraphError(f"--hardware: empty name in {text!r}; give names separated by commas")
    return [gpu(n, **knobs) for n in names]


def phase_names(phase: str, *, seq_len=None, context=None) -> tuple[str, ...]:
    """The phases asked for; a length option for a phase not being run is an error, not silently ignored."""
    names = PHASES if checks.choice("--phase", phase, (*PHASES, "both")) == "both" else (phase,)
    for ph, value in (("prefill", seq_len), ("decode", context)):
        if value is not None and ph not in names:
            flag = "--" + LENGTH_NAMES[ph].replace("_", "-")
            raise OpgraphError(f"{flag} applies to {ph}, but --phase is {phase}; drop it or use --phase {ph} or both")
    return names


def phases(names, *, batch: int, seq_len: int | None = None, context: int | None = None) -> list[Phase]:
    lengths = {"prefill": seq_len, "decode": context}
    out = []
    for ph in names:
        flag = "--" + LENGTH_NAMES[ph].replace("_", "-")
        length = DEFAULT_LENGTH[ph] if lengths[ph] is None else checks.integer(flag, lengths[ph])
        out.append(Phase.of(ph, checks.integer("--batch", batch), length))
    for p in out:
        checks.integer(f"{p.name} tokens (batch x {p.length_name})", p.tokens, maximum=checks.MAX_TOKENS)
    return out


def plan(name: str):
    return planfile.load(name)


def plans(text: str) -> list:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if len(names) < 2:
        raise OpgraphError(f"--fusion needs at least two plans to compare, separated by commas; got {text!r}")
    return [planfile.load(n) for n in names]


def sweep_axes(names, *, batch: str | None, seq_len: str | None, context: str | None) -> tuple[list, dict]:
    """The sweep's batch list and each phase's length list, bounded so the grid fits in memory."""
    batches = parse_values(DEFAULT_BATCHES if batch is None else batch, "--batch")
    given = {"prefill": seq_len, "decode": context}
    lengths = {ph: parse_values(str(DEFAULT_LENGTH[ph]) if given[ph] is None else given[ph],
                                "--" + LENGTH_NAMES[ph].replace("_", "-")) for ph in names}
    points = sum(len(batches) * len(v) for v in lengths.values())
    if points > MAX_POINTS:
        raise OpgraphError(f"the sweep has {points:,} points; the most is {MAX_POINTS:,} (narrow --batch or the "
                           f"lengths, or use a coarser step such as 1:100000:1000)")
    return batches, lengths


PLOT_AXES = {"decode": ("--batch", "1,2,4,...,512", "--context", "1024"),  # varied (default), held (default)
             "prefill": ("--seq-len", "128,256,...,8192", "--batch", "1")}


def sweep_curves(build, plan, hw: Hardware, phase: str, *, batch=None, seq_len=None, context=None) -> list:
    """The curves of `opgraph plot sweep`: per phase, its varied size as a list against one held value."""
    given = {"--batch": batch, "--seq-len": seq_len, "--context": context}
    curves = []
    for ph in phase_names(phase, seq_len=seq_len, context=context):
        varied, default, held, held_default = PLOT_AXES[ph]
        xs = parse_values(given[varied] or default, varied)
        fixed = parse_values(given[held] or held_default, held)
        if len(fixed) != 1:
            other = next(o for o in PLOT_AXES if o != ph)
            raise OpgraphError(f"{held} is held fixed in a {ph} sweep plot: give one value, got {len(fixed)}"
                               + (f" (or --phase {other}, whose plot varies {held})" if PLOT_AXES[other][0] == held
                                  and phase != ph else ""))
        curves.append(sweep_curve(build, plan, hw, ph, xs, fixed[0]))
    return curves


def model(text: str):
    """The model source MODEL names: a preset, a config.json, or file.py:NAME (see opgraph.models.get)."""
    return models.get(text)


def draft_note(target, text: str | None) -> tuple[str, ...]:
    """What `--draft mtp` says of a target whose checkpoint ships no multi-token-prediction module
    (DecoderConfig.mtp_layers): the head it prices is one the model would need trained."""
    if text != "mtp" or getattr(target, "mtp_layers", None) != 0:
        return ()
    return (f"--draft mtp: {target.name}'s checkpoint ships no multi-token-prediction module (its config names no "
            f"num_nextn_predict_layers); the head priced is one it would need trained, made as DeepSeek-V3's is (its "
            f"last layer's kind, with enorm, hnorm and eh_proj)",)


def draft(target, text: str):
    """The draft model of `serve --draft`: mtp or eagle, a head made of the target (DecoderConfig.draft_head);
    else a model source as MODEL names it."""
    if text not in models.decoder.DRAFT_HEADS:
        found = model(text)
        ours, theirs = getattr(target, "vocab_size", None), getattr(found, "vocab_size", None)
        if ours is not None and theirs is not None and ours != theirs:
            raise OpgraphError(f"--draft {text}: its vocabulary ({theirs:,} tokens) is not {target.name}'s ({ours:,}); "
                               f"a draft proposes the target's token ids, so engines refuse a draft of another "
                               f"vocabulary (vLLM's SpeculativeConfig.verify_equal_vocab_size_if_draft_model): give a "
                               f"draft of the target's family, or --draft mtp or eagle")
        return found
    if not hasattr(target, "draft_head"):
        raise OpgraphError(f"--draft {text}: a head made of the target needs a preset or a config.json model, not "
                           f"one written in Python; give its head as --draft MODEL")
    return target.draft_head(text)


# Checkpoints a serving row's GEMM label stands for where the label alone does not say how they are stored:
# (preset, gemm_quant_mode) -> the quantization_config of the checkpoint the campaign served (its shapes are the
# preset's). Kimi-K2.5 (and K2-Thinking) store the routed experts' weights as INT4, one bf16 scale per 32, from
# quantization-aware training, and keep attention, the shared expert, the dense layer and lm_head in bf16 (the
# model cards: "native INT4 quantization ... on the MoE components"; group size 32, compressed-tensors
# pack-quantized, as vLLM and SGLang load them). GLM-5's fp8 rows served zai-org/GLM-5-FP8 (InferenceX's
# glm5-fp8-h200-sglang config): 128 x 128 fp8 blocks, its 712 modules_to_not_convert (aiconfigurator-core's copy of
# its config.json) written once for every layer; it names the indexer's weight projection indexers_proj, opgraph's
# graph indexer.weights_proj (DeepSeek-V3.2's name).
CHECKPOINT_FORMATS = {
    ("glm-5", "fp8"): {
        "quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic", "weight_block_size": [128, 128],
        "modules_to_not_convert": [
            "lm_head", "model.embed_tokens", "model.norm", "model.layers.*.input_layernorm",
            "model.layers.*.post_attention_layernorm", "model.layers.*.self_attn.q_a_layernorm",
            "model.layers.*.self_attn.kv_a_layernorm", "model.layers.*.self_attn.indexer.k_norm",
            "model.layers.*.self_attn.indexer.weights_proj", "model.layers.*.mlp.gate"],
    },
    ("kimi-k2", "int4_wo"): {
        "quant_method": "compressed-tensors", "format": "pack-quantized",
        "config_groups": {"group_0": {"targets": ["Linear"], "input_activations": None, "output_activations": None,
                                      "weights": {"num_bits": 4, "type": "int", "strategy": "group", "group_size": 32,
                                                  "symmetric": True, "dynamic": False}}},
        "ignore": ["lm_head", "re:.*self_attn.*", "re:.*shared_experts.*", "re:.*mlp\\.(gate|up|gate_up|down)_proj.*"],
    },
}


def serving_row(row):
    """A measured serving row's model builder and GPU (opgraph.analysis.serving_validate.Resolve): its preset built
    at its parallel layout (tp, pp, dp, ep) with its GEMMs' storage, on its shipped GPU; an OpgraphError names what
    is missing.

    The storage: the preset's own for an empty label, fp8 weights whose GEMMs quantize their bf16 input (W8A8) for
    fp8 and fp8_block (serving_validate.precision; the checkpoint's own where it stores fp8, as DeepSeek-R1 does),
    the checkpoint's own 4-bit weights for nvfp4 where the preset's checkpoint stores fp4 weights (the label
    aiconfigurator gives gpt-oss's MXFP4 experts, which Hopper runs with bf16 activations), and a CHECKPOINT_FORMATS
    entry where one is known."""
    from opgraph.analysis.serve import served_state_dtype
    from opgraph.analysis.serving_validate import FP8_GEMMS, precision
    from opgraph.models import quantization

    if row.model not in models.names():
        raise OpgraphError(f"model {row.model} is not a preset")
    if row.gpu not in specs.names():
        raise OpgraphError(f"GPU {row.gpu} is not shipped")
    preset, stored = models.get(row.model), None
    own = getattr(preset, "weight_dtype", None)
    if (row.model, row.gemm) in CHECKPOINT_FORMATS:
        fmt = quantization.read(CHECKPOINT_FORMATS[row.model, row.gemm], f"{row.model} as {row.gemm} checkpoint")
        preset = attrs.evolve(preset, weight_dtype=fmt.dtype, weight_format=fmt)
    elif row.gemm in FP8_GEMMS and own is not None and own.name == "fp8":
        stored = attrs.evolve(precision(row), weight=own)  # the checkpoint's own fp8 (DeepSeek's blocks), W8A8
    elif not (row.gemm == "nvfp4" and own is not None and own.name == "fp4"):
        stored = precision(row)
    # the recurrent state as the row's engine keeps it (serve.served_state_dtype), as `opgraph serve` serves it
    state = served_state_dtype(row.engine, preset, own_dtype(preset) if stored is None else stored.act.name)
    if state is not None:
        stored = attrs.evolve(preset.precision(BuildOptions()) if stored is None else stored, state=dtype(state))
    options = BuildOptions(stored, tp=row.tp, pp=row.pp, dp=row.dp, ep=row.ep)
    return builder(preset, options), specs.load(row.gpu)
