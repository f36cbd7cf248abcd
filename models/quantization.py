"""Weight formats of quantized checkpoints, read from their `quantization_config` block.

`read(q, where)` turns the `quantization_config` of a Hugging Face config.json (or the `quantization` block of
NVIDIA ModelOpt's hf_quant_config.json, or that whole file) into a WeightFormat: the DType the linear layers'
weight matrices are stored in, with their scales laid out as the checkpoint stores them (opgraph.core.tensor
counts them exactly), and the modules kept at the model's own dtype. Every quant_method below is read field by
field: a field that would change bytes and is not understood, an unknown method or a bad value is an
OpgraphError naming the field, the file (`where`) and the valid choices.

quant_method    what the linear weights are                                    layout source
--------------  -------------------------------------------------------------  ---------------------------------------
fp8             e4m3 + one fp32 scale per weight_block_size block (DeepSeek-V3  DeepSeek-V3 / Qwen3-FP8 checkpoints
                [128, 128], Qwen3-FP8); without weight_block_size one fp32      (weight_scale_inv [ceil(N/128),
                scale per matrix (vLLM's Fp8Config)                             ceil(K/128)]); vLLM Fp8LinearMethod
mxfp4           MXFP4: e2m1 + one e8m0 scale per 32 values (gpt-oss)            gpt-oss *_blocks / *_scales; OCP MX v1.0
mxfp8           MXFP8: e4m3 + one e8m0 scale per 32 values of a row             MiniMax-M3-MXFP8 (weight_scale_inv uint8
                (weight_block_size [1, 32]; MiniMax-M3's release)               [out, in / 32]); OCP MX v1.0
modelopt        quant_algo NVFP4: e2m1 + fp8 e4m3 scale per 16 + fp32 global    ModelOpt unified HF checkpoint (weight,
                scale per matrix; FP8: fp32 scale per matrix; FP8_PB_WO: 128 x  weight_scale, weight_scale_2); vLLM
                128 fp32 blocks; FP8_PER_CHANNEL_PER_TOKEN: fp32 scale per row;  modelopt.py
                MXFP8: e4m3 + e8m0 scale per 32; MIXED_PRECISION: each module
                as quantized_layers names it (one of those, W4A16_NVFP4:
                NVFP4 weight-only, UNQUANTIZED), an unlisted one unquantized
awq             int4 packed + fp16 scale and packed int4 zero per group          AutoAWQ WQLinear_GEMM: qweight
                (zero_point false: no zeros)                                     [K, N/8], scales [K/g, N] fp16, qzeros
                                                                                 [K/g, N/8] int32; vLLM awq.py
gptq            int4/int8 packed + fp16 scale and packed zero (bits) per group,  AutoGPTQ/GPTQModel QuantLinear:
                + g_idx, one int32 per input column                              qweight [K*bits/32, N], scales [K/g, N]
                                                                                 fp16, qzeros [K/g, N*bits/32], g_idx
                                                                                 [K] int32; vLLM gptq.py
compressed-     format nvfp4-pack-quantized: NVFP4 (weight_global_scale);       compressed-tensors compressors
tensors         mxfp4-pack-quantized: MXFP4 (e2m1, a ue8m0 scale per 32:        (weight_packed, weight_scale,
                Kimi-K3's experts); pack-quantized (int4/int8, group or          weight_zero_point, weight_g_idx,
                channel): packed values, one 16-bit scale per group (the         weight_shape)
                model's bf16/fp16), zeros if not symmetric, g_idx if actorder
                is "group", weight_shape int32 [2] per matrix

Which GEMMs quantize their input to the weights' type (DType.quantizes_input: W8A8, W4A4), as the engines' linear
methods run them on a GPU with matrix units for that type (one without runs them weight-only: Graph.weight_only):
fp8, either activation_scheme (dynamic: per-token or per-token-group scales; static: a per-tensor input_scale; vLLM's
Fp8LinearMethod); modelopt NVFP4, FP8, FP8_PER_CHANNEL_PER_TOKEN and MXFP8 (vLLM's modelopt.py); compressed-tensors
whose group has input_activations of the weights' bits and type. Weight-only (multiplied at the activations' type):
modelopt FP8_PB_WO, mxfp4 (gpt-oss: Hopper's kernels take bf16 activations; Blackwell kernels that quantize them to
mxfp8 are not modelled), awq, gptq, and compressed-tensors without input_activations.

Bytes are the checkpoint's tensors. Two engine details they do not follow: vLLM upcasts bf16 block scales (as
Qwen3.5-FP8 stores them) to fp32, which is what is counted for `fp8` (DeepSeek-V3 stores fp32); and Marlin
kernels drop symmetric GPTQ's zero points and, without desc_act, its g_idx after loading (about 0.8% and K*4
bytes per matrix of a g128 int4 weight). A static activation scale (`input_scale`, one fp32 per linear) belongs
to the activations and is not counted.

Keys read but that do not change the weights' bytes (validated where they have fixed choices, else ignored):
fp8: activation_scheme (dynamic|static: W8A8 either way, above), fmt (e4m3|e5m2, or torch's float8_e4m3fn|float8_e5m2:
all one byte), scale_fmt
(DeepSeek-V3.1's ue8m0: scale values, still stored fp32). mxfp4: none. modelopt: producer, kv_cache_quant_algo
and the flat form's kv_cache_scheme (read into `kv_cache`), group_size (checked against the algorithm's). awq:
version (gemm only), backend, do_fuse, fuse_max_seq_len, modules_to_fuse, exllama_config. gptq: desc_act, sym (GPTQ checkpoints store qzeros and g_idx either way),
damp_percent, damp_auto_increment, static_groups, true_sequential, model_name_or_path, model_file_base_name,
quantizer, meta, pack_dtype, format, checkpoint_format (gptq|gptq_v2), use_exllama, exllama_config,
use_cuda_fp16, cache_block_outputs, batch_size, tokenizer, dataset, max_input_length, module_name_preceding_
first_block, mse, v2, v2_alpha. compressed-tensors: quantization_status, global_compression_ratio, version,
kv_cache_scheme (an 8-bit float scheme, read into `kv_cache`), config_groups.*.output_activations, weights.observer / observer_kwargs / dynamic (false) / block_structure (null) /
actorder (null|false|"weight"|"group": "group" adds g_idx).

Which modules a format covers (dtype_for). Names are Hugging Face module paths without "model.layers.N."
("self_attn.q_proj", "mlp.experts.gate_up_proj", "mlp.router", "embed_tokens", "lm_head"):

1. Never quantized, whatever the patterns: embeddings (`embed_tokens`, `embed_positions`: not linear layers)
   and MoE routers (a last component `gate`, `router` or `shared_expert_gate`: vLLM builds them without the
   quant config, and the checkpoints store them unquantized). `lm_head` stays too, except in GPTQ with
   `"lm_head": true`.
2. Else a module is excluded (None: the model's own dtype) when one of the format's patterns matches one of its
   full names: "model.layers.N.<module>" (also "model.language_model.layers.N.<module>" and
   "language_model.model.layers.N.<module>" for multimodal checkpoints, "backbone.layers.N.<module>" for Nemotron-H's
   and Mamba's), or for top-level modules (`lm_head`,
   `norm`, `embed_tokens`, Kimi-K3's `output_attn_res_*`) "model.<module>", "<module>" and their language_model spellings. A pattern P matches a
   full name F when:
   a. fnmatch(X, P) for X = F or any dotted prefix of F (P names F or a parent: gpt-oss's
      "model.layers.*.self_attn", ModelOpt's wildcards);
   b. X == P or X ends with "." + P, for X = F or any dotted prefix of F (a relative name: "lm_head",
      "mlp.gate", "self_attn"; transformers' endswith rule, at dot boundaries);
   c. P starts with "re:" (compressed-tensors): re.match(P[3:], X) for X = F or a dotted prefix;
   d. awq only: P is a substring of F (AutoAWQ, transformers' and vLLM's is_layer_skipped_awq).
   The layer index: with `layer` given, N is that index; without it, a pattern's layer component
   ("layers.0", "layers.*") matches any layer, so a module excluded in some layer counts as excluded.
   `WeightFormat.per_layer` says when the patterns name particular layers (then pass `layer`).
3. Else the format's dtype.
"""

from __future__ import annotations

import fnmatch
import functools
import re

import attrs

from opgraph.core.tensor import FP8, FP8_TENSOR, INT4, INT8, MXFP4, NVFP4, DType
from opgraph.errors import OpgraphError

METHODS = ("fp8", "mxfp4", "mxfp8", "modelopt", "awq", "gptq", "compressed-tensors")
MODELOPT_ALGOS = ("NVFP4", "FP8", "FP8_PB_WO", "FP8_PER_CHANNEL_PER_TOKEN", "MXFP8")
WEIGHT_ONLY_ALGOS = ("FP8_PB_WO", "W4A16_NVFP4")  # weight-only; ModelOpt's other algorithms quantize the input too
ROUTERS = ("gate", "router", "shared_expert_gate")
EMBEDDINGS = ("embed_tokens", "embed_positions")
TOP_LEVEL = ("lm_head", "norm", "embed_tokens", "embed_positions", "output_attn_res_norm", "output_attn_res_proj")
_LAYER = re.compile(r"(?<=layers\.)[^.]+(?=\.|$)")
_EXPERT = re.compile(r"(?<=\.experts)\.\d+(?=\.)")  # one expert's index in a module name


@attrs.frozen
class WeightFormat:
    """The storage of a quantized checkpoint's weights: `dtype` for the linear layers it quantizes, `exclude`
    (the checkpoint's own patterns, as given) for those it keeps at the model's dtype; `kv_cache` when the
    checkpoint also fixes the KV cache's dtype (ModelOpt's kv_cache_quant_algo, compressed-tensors'
    kv_cache_scheme), else None: the model's own storage keeps its KV cache so (DecoderConfig.precision), and an
    engine serves it so where its KV-cache dtype "auto" reads it (opgraph.analysis.serve.DECLARED_KV)."""

    method: str
    dtype: DType
    exclude: tuple[str, ...] = ()
    where: str = ""
    substring: bool = False  # awq: a pattern excludes every module whose name contains it
    lm_head: bool = False  # gptq's "lm_head": true quantizes lm_head too
    kv_cache: DType | None = None
    # What declares `kv_cache`, for notes; "" where the format's own key does (serve.DECLARED_KV_KEY).
    kv_from: str = ""
    # ModelOpt's MIXED_PRECISION: each listed module's own storage (quantized_layers: full module name, dtype or
    # None for unquantized); a module it does not list stays at the model's dtype. `dtype` is then the one most
    # modules take.
    layers: tuple[tuple[str, DType | None], ...] = ()

    @property
    def per_layer(self) -> bool:
        """Whether a pattern names particular layers ("model.layers.0.mlp.gate"): then dtype_for needs `layer`."""
        names = (*self.exclude, *(name for name, _ in self.layers))
        return any(m and m.group(0).isdigit() for p in names for m in [_LAYER.search(p)])

    def dtype_for(self, module: str, layer: int | None = None) -> DType | None:
        """The dtype `module`'s weight matrix is stored in (None: the model's own dtype); see the module doc."""
        if not isinstance(module, str) or not module or module.startswith(".") or module.endswith("."):
            raise OpgraphError(f"{self.where}: module name must be a dotted Hugging Face path, got {module!r}")
        parts = module.split(".")
        if parts[0] in EMBEDDINGS or parts[-1] in ROUTERS:
            return None
        if parts[0] == "lm_head" and not self.lm_head:
            return None
        if self.excludes(module, layer):
            return None
        return self._listed(module, layer) if self.layers else self.dtype

    def _listed(self, module: str, layer: int | None) -> DType | None:
        """MIXED_PRECISION: the storage quantized_layers gives `module` under one of its full names or a parent of
        it; an entry of one expert ("mlp.experts.3.up_proj") names the stacked experts' matrix, as vLLM's
        ModelOptMixedPrecisionConfig resolves fused experts; None where it lists neither."""
        names = _full_names(module, layer)
        if layer is not None or module.split(".")[0] in TOP_LEVEL:  # exact names: a lookup of each and its parents
            index = _listed_index(self.layers)
            return next((index[p] for f in names for p in _prefixes(f) if p in index), None)
        for key, dt in self.layers:
            if any(_matches(_EXPERT.sub("", key), f, False, any_layer=True) for f in names):
                return dt
        return None

    def excludes(self, module: str, layer: int | None = None) -> bool:
        """Whether one of the checkpoint's patterns keeps `module` at the model's dtype (rule 2 of the doc)."""
        names = _full_names(module, layer)
        return any(_matches(p, f, self.substring, any_layer=layer is None) for p in self.exclude for f in names)


@functools.lru_cache(maxsize=8)
def _listed_index(layers: tuple) -> dict:
    """MIXED_PRECISION's entries by name, an expert's own entry under its stacked matrix's name (the first wins)."""
    index: dict = {}
    for key, dt in layers:
        index.setdefault(_EXPERT.sub("", key), dt)
    return index


def _full_names(module: str, layer: int | None) -> list[str]:
    if module.split(".")[0] in TOP_LEVEL:
        return [module, f"model.{module}", f"model.language_model.{module}", f"language_model.model.{module}",
                f"language_model.{module}"]
    n = "0" if layer is None else str(layer)
    return [f"model.layers.{n}.{module}", f"model.language_model.layers.{n}.{module}",
            f"language_model.model.layers.{n}.{module}", f"backbone.layers.{n}.{module}"]


def _prefixes(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]


def _matches(pattern: str, full: str, substring: bool, any_layer: bool) -> bool:
    if substring and pattern in full:
        return True
    if any_layer and not pattern.startswith("re:"):
        pattern = _LAYER.sub("*", pattern)  # the pattern's layer index, whatever it is, matches layer 0
    for x in _prefixes(full):
        if pattern.startswith("re:"):  # a regex is matched as written (against layer 0 when `layer` is None)
            if re.match(pattern[3:], x):
                return True
        elif fnmatch.fnmatchcase(x, pattern) or x == pattern or x.endswith("." + pattern):
            return True
    return False


# -- reading ----------------------------------------------------------------------------------------------

class _Fields:
    """The block's fields, each read at most once; `done()` refuses the ones nobody read that are not known to
    leave the bytes alone."""

    def __init__(self, q: dict, where: str, method: str):
        self.q, self.where, self.method, self.seen = q, where, method, set()

    def error(self, key: str, msg: str) -> OpgraphError:
        return OpgraphError(f"{self.where}: quantization_config.{key}: {msg}")

    def get(self, key: str, default=None):
        self.seen.add(key)
        return self.q.get(key, default)

    def choice(self, key: str, choices: tuple, default=None):
        v = self.get(key, default)
        if v not in choices:
            raise self.error(key, f"{v!r} is not supported (quant_method {self.method!r}); valid: "
                                  f"{', '.join(map(repr, choices))}")
        return v

    def integer(self, key: str, default=None, choices: tuple | None = None, minimum: int = 1):
        v = self.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or (choices is None and v < minimum):
            raise self.error(key, f"must be an integer >= {minimum}, got {v!r}")
        if choices is not None and v not in choices:
            raise self.error(key, f"{v!r} is not supported (quant_method {self.method!r}); valid: "
                                  f"{', '.join(map(str, choices))}")
        return v

    def flag(self, key: str, default: bool) -> bool:
        v = self.get(key, default)
        if not isinstance(v, bool):
            raise self.error(key, f"must be true or false, got {v!r}")
        return v

    def patterns(self, *keys: str) -> tuple[str, ...]:
        out: list[str] = []
        for key in keys:
            v = self.get(key)
            if v is None:
                continue
            if not isinstance(v, list) or not all(isinstance(p, str) and p for p in v):
                raise self.error(key, f"must be a list of module names or patterns, got {v!r}")
            out += v
        return tuple(out)

    def ignore(self, *keys: str) -> None:
        self.seen.update(keys)

    def done(self) -> None:
        unknown = sorted(set(self.q) - self.seen)
        if unknown:
            raise self.error(unknown[0], f"not understood for quant_method {self.method!r} (it may change the "
                                         f"weights' bytes); known fields: {', '.join(sorted(self.seen))}")


def read(q: dict, where: str) -> WeightFormat:
    """The WeightFormat of a `quantization_config` block (or of hf_quant_config.json / its `quantization`
    block). `where` names the file in errors.

    >>> fmt = read({"quant_method": "mxfp4", "modules_to_not_convert": ["model.layers.*.self_attn",
    ...            "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]}, "config.json")
    >>> str(fmt.dtype_for("mlp.experts.gate_up_proj")), fmt.dtype_for("self_attn.q_proj")
    ('mxfp4', None)
    """
    if not isinstance(q, dict):
        raise OpgraphError(f"{where}: quantization_config must be a JSON object, got {type(q).__name__}")
    if "quantization" in q and "quant_method" not in q:  # hf_quant_config.json as a whole
        extra = sorted(set(q) - {"quantization", "producer"})
        if extra:
            raise OpgraphError(f"{where}: {extra[0]}: not understood in hf_quant_config.json; "
                               f"known: producer, quantization")
        if not isinstance(q["quantization"], dict):
            raise OpgraphError(f"{where}: quantization must be a JSON object")
        q = {**q["quantization"], "quant_method": "modelopt"}
    elif "quant_method" not in q and "quant_algo" in q:  # the `quantization` block alone
        q = {**q, "quant_method": "modelopt"}
    method = q.get("quant_method")
    if method not in METHODS:
        raise OpgraphError(f"{where}: quantization_config.quant_method: {method!r} is not supported; valid: "
                           f"{', '.join(METHODS)}")
    f = _Fields(q, where, method)
    f.get("quant_method")
    fmt = {"fp8": _fp8, "mxfp4": _mxfp4, "mxfp8": _mxfp8, "modelopt": _modelopt, "awq": _awq, "gptq": _gptq,
           "compressed-tensors": _compressed}[method](f)
    f.done()
    return fmt


def _not_dequantized(f: _Fields) -> None:
    if f.flag("dequantize", False):
        raise f.error("dequantize", "true (transformers dequantizes the weights to the model's dtype on load): "
                                    "leave quantization_config out to cost the dequantized model")


def _fp8(f: _Fields) -> WeightFormat:
    f.choice("fmt", ("e4m3", "e5m2", "float8_e4m3fn", "float8_e5m2"), "e4m3")  # torch's spellings too (MiniMax)
    f.choice("activation_scheme", ("dynamic", "static"), "dynamic")  # either way the GEMMs take fp8 input: W8A8
    f.ignore("scale_fmt")
    _not_dequantized(f)
    block = f.get("weight_block_size")
    if block is None:
        dt = FP8_TENSOR
    else:
        if (not isinstance(block, list) or len(block) != 2
                or not all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in block)):
            raise f.error("weight_block_size", f"must be [rows, cols] of positive integers, got {block!r}")
        dt = FP8.blocked(block[0], block[1])
    exclude = f.patterns("modules_to_not_convert", "ignored_layers")
    return WeightFormat("fp8", dt.with_input_quantized(), exclude, f.where)


def _mxfp8(f: _Fields) -> WeightFormat:
    """MXFP8 as MiniMax-M3-MXFP8 stores it: e4m3 values and one ue8m0 byte per 32 of a row (weight_block_size
    [1, 32], the only layout read), its GEMMs quantizing their input (activation_scheme dynamic), as ModelOpt's MXFP8
    does; ignored_layers (or modules_to_not_convert) kept at the model's dtype."""
    f.choice("activation_scheme", ("dynamic",), "dynamic")
    _not_dequantized(f)
    if f.get("weight_block_size") not in (None, [1, 32]):
        raise f.error("weight_block_size", "must be [1, 32] (one scale per 32 values of a row): the MXFP8 layout")
    return WeightFormat("mxfp8", FP8.grouped(32, scale_bits=8).with_input_quantized(),
                        f.patterns("ignored_layers", "modules_to_not_convert"), f.where)


def _mxfp4(f: _Fields) -> WeightFormat:
    _not_dequantized(f)
    return WeightFormat("mxfp4", MXFP4, f.patterns("modules_to_not_convert"), f.where)


def _modelopt_dtype(algo: str) -> DType:
    """The storage of one of ModelOpt's algorithms (MODELOPT_ALGOS), its GEMMs' input quantized unless weight-only."""
    dt = {"NVFP4": NVFP4, "FP8": FP8_TENSOR, "FP8_PB_WO": FP8.blocked(128, 128),
          "FP8_PER_CHANNEL_PER_TOKEN": attrs.evolve(FP8, scale_bits=32), "MXFP8": FP8.grouped(32, scale_bits=8),
          "W4A16_NVFP4": NVFP4}[algo]
    return dt.with_input_quantized(algo not in WEIGHT_ONLY_ALGOS)


def _modelopt(f: _Fields) -> WeightFormat:
    algo = f.get("quant_algo")
    if isinstance(algo, str):
        algo = algo.upper()  # ModelOpt may write fp8_pb_wo
    if algo == MIXED:
        return _modelopt_mixed(f)
    if algo not in MODELOPT_ALGOS:
        raise f.error("quant_algo", f"{f.q.get('quant_algo')!r} is not supported; valid: "
                                    f"{', '.join((*MODELOPT_ALGOS, MIXED))}")
    dt = _modelopt_dtype(algo)
    group = f.get("group_size")
    if group is None and isinstance(f.q.get("config_groups"), dict):  # the flat config.json form
        groups = list(f.q["config_groups"].values())
        group = groups[0].get("weights", {}).get("group_size") if groups and isinstance(groups[0], dict) else None
    f.ignore("config_groups", "producer")
    if group is not None and dt.group_size and group != dt.group_size:
        raise f.error("group_size", f"{group!r}: {algo} has group size {dt.group_size}; valid: {dt.group_size}")
    return WeightFormat("modelopt", dt, f.patterns("exclude_modules", "ignore"), f.where, kv_cache=_modelopt_kv(f))


def _modelopt_kv(f: _Fields) -> DType | None:
    """The KV cache a ModelOpt checkpoint declares: kv_cache_quant_algo, or the flat form's kv_cache_scheme (vLLM's
    resolve_kv_cache_dtype_string reads either); both given must agree."""
    kv = f.get("kv_cache_quant_algo")
    kv_dt = {None: None, "FP8": FP8, "NVFP4": NVFP4}.get(kv.upper() if isinstance(kv, str) else kv, "bad")
    if kv_dt == "bad":
        raise f.error("kv_cache_quant_algo", f"{kv!r} is not supported; valid: null, FP8, NVFP4")
    scheme = _kv_scheme(f, {8: FP8, 4: NVFP4})
    if kv_dt is not None and scheme is not None and scheme != kv_dt:
        raise f.error("kv_cache_scheme", f"says {scheme}, kv_cache_quant_algo says {kv_dt}: give one KV-cache dtype")
    return kv_dt or scheme


MIXED = "MIXED_PRECISION"
# A MIXED_PRECISION module's own algorithm (quantized_layers.<module>.quant_algo): ModelOpt's, NVFP4 weight-only
# (W4A16_NVFP4), or none (vLLM's ModelOptMixedPrecisionConfig leaves an unlisted or UNQUANTIZED module unquantized)
MIXED_ALGOS = (*MODELOPT_ALGOS, "W4A16_NVFP4", "UNQUANTIZED")


def _modelopt_mixed(f: _Fields) -> WeightFormat:
    """ModelOpt's MIXED_PRECISION: quantized_layers gives each quantized module's algorithm by its full name (vLLM's
    ModelOptMixedPrecisionConfig, which needs the mapping too); the flat form's config_groups restate it as groups of
    targets and are not read apart."""
    listed = f.get("quantized_layers")
    if not isinstance(listed, dict) or not listed:
        raise f.error("quantized_layers", "MIXED_PRECISION needs a non-empty mapping of module names to their "
                                          "quant_algo (as vLLM's ModelOptMixedPrecisionConfig does)")
    layers = []
    for name, info in listed.items():
        key = f"quantized_layers.{name}"
        if not isinstance(info, dict) or set(info) - {"quant_algo", "group_size"}:
            raise f.error(key, f"{str(info)[:60]}; valid: an object of quant_algo and group_size")
        algo = info.get("quant_algo")
        algo = algo.upper() if isinstance(algo, str) else algo
        if algo not in MIXED_ALGOS:
            raise f.error(f"{key}.quant_algo", f"{info.get('quant_algo')!r} is not supported; valid: "
                                               f"{', '.join(MIXED_ALGOS)}")
        dt = None if algo == "UNQUANTIZED" else _modelopt_dtype(algo)
        group = info.get("group_size")
        if group is not None and (dt is None or group != dt.group_size):
            raise f.error(f"{key}.group_size", f"{group!r}: {algo} has "
                                               + (f"group size {dt.group_size}" if dt and dt.group_size else "none"))
        layers.append((name, dt))
    f.ignore("config_groups", "producer", "group_size")  # restatements of the listed storage
    kinds = [dt for _, dt in layers if dt is not None]
    if not kinds:
        raise f.error("quantized_layers", "lists no quantized module")
    common = max(dict.fromkeys(kinds), key=kinds.count)
    return WeightFormat("modelopt", common, f.patterns("exclude_modules", "ignore"), f.where,
                        lm_head=any(name == "lm_head" for name, _ in layers), kv_cache=_modelopt_kv(f),
                        layers=tuple(layers))


def _kv_scheme(f: _Fields, floats: dict) -> DType | None:
    """The KV cache's dtype a `kv_cache_scheme` states (compressed-tensors' QuantizationArgs: num_bits, type), one
    of `floats` by its bits; None when the scheme is null."""
    kv = f.get("kv_cache_scheme")
    if kv is None:
        return None
    if not isinstance(kv, dict) or kv.get("type") != "float" or kv.get("num_bits") not in floats:
        valid = " or ".join(f"{b}-bit" for b in floats)
        raise f.error("kv_cache_scheme", f"{kv!r}; valid: null or a {valid} float scheme "
                                         f"({', '.join(str(d) for d in floats.values())})")
    return floats[kv["num_bits"]]


def _awq(f: _Fields) -> WeightFormat:
    bits = f.integer("bits", 4, choices=(4,))
    group = f.integer("group_size", 128)
    zeros = f.flag("zero_point", True)
    f.choice("version", ("gemm", "GEMM"), "gemm")
    f.ignore("backend", "do_fuse", "fuse_max_seq_len", "modules_to_fuse", "exllama_config")
    dt = INT4.grouped(group, scale_bits=16, zero_bits=bits if zeros else 0)
    return WeightFormat("awq", dt, f.patterns("modules_to_not_convert"), f.where, substring=True)


def _gptq(f: _Fields) -> WeightFormat:
    bits = f.integer("bits", 4, choices=(4, 8))
    group = f.get("group_size", 128)
    if group != -1:
        group = f.integer("group_size", 128)
    f.flag("desc_act", False)
    f.flag("sym", True)
    f.choice("checkpoint_format", ("gptq", "gptq_v2"), "gptq")
    lm_head = f.flag("lm_head", False)
    for key in ("dynamic", "modules_in_block_to_quantize"):
        if f.get(key):
            raise f.error(key, "per-module quantization settings are not supported (they change which modules "
                               "are quantized and how); valid: null or empty")
    f.ignore("damp_percent", "damp_auto_increment", "static_groups", "true_sequential", "model_name_or_path",
             "model_file_base_name", "quantizer", "meta", "pack_dtype", "format", "use_exllama", "exllama_config",
             "use_cuda_fp16", "cache_block_outputs", "batch_size", "tokenizer", "dataset", "max_input_length",
             "module_name_preceding_first_block", "mse", "v2", "v2_alpha", "backend")
    base = INT4 if bits == 4 else INT8
    dt = attrs.evolve(base.grouped(group if group > 0 else 0, scale_bits=16, zero_bits=bits), index_bits=32)
    return WeightFormat("gptq", dt, f.patterns("modules_to_not_convert"), f.where, lm_head=lm_head)


def _compressed(f: _Fields) -> WeightFormat:
    formats = ("nvfp4-pack-quantized", "mxfp4-pack-quantized", "pack-quantized")
    form = f.choice("format", formats)
    f.ignore("quantization_status", "global_compression_ratio", "version")
    if f.get("sparsity_config"):
        raise f.error("sparsity_config", "sparse checkpoints are not supported; valid: null")
    if f.get("transform_config"):
        raise f.error("transform_config", "transformed (rotated) checkpoints are not supported; valid: null")
    groups = f.get("config_groups")
    if not isinstance(groups, dict) or len(groups) != 1:
        raise f.error("config_groups", "must hold exactly one group (mixed schemes are not supported)")
    [(gname, g)] = groups.items()
    key = f"config_groups.{gname}"
    if not isinstance(g, dict) or g.get("targets") != ["Linear"]:
        raise f.error(f"{key}.targets", f"{g.get('targets') if isinstance(g, dict) else g!r}; valid: [\"Linear\"]")
    w = g.get("weights")
    if not isinstance(w, dict):
        raise f.error(f"{key}.weights", "must be an object (weight quantization)")
    known = {"num_bits", "type", "strategy", "group_size", "symmetric", "dynamic", "observer", "observer_kwargs",
             "block_structure", "actorder", "scale_dtype", "zp_dtype"}
    extra = sorted(set(w) - known)
    if extra:
        raise f.error(f"{key}.weights.{extra[0]}", f"not understood; known: {', '.join(sorted(known))}")
    if w.get("dynamic") not in (None, False) or w.get("block_structure") is not None:
        raise f.error(f"{key}.weights", "dynamic or block-structured weights are not supported")
    mx = form == "mxfp4-pack-quantized"  # its one-byte ue8m0 scales are stated (Kimi-K3's "torch.uint8")
    if w.get("scale_dtype") not in ((None, "torch.uint8") if mx else (None,)) or w.get("zp_dtype") is not None:
        raise f.error(f"{key}.weights.scale_dtype", "explicit scale/zero dtypes are not supported (but an MXFP4 "
                                                    "checkpoint's torch.uint8); valid: null")
    bits, typ, strategy, group = w.get("num_bits"), w.get("type"), w.get("strategy"), w.get("group_size")
    if form == "nvfp4-pack-quantized":
        if (bits, typ, strategy, group) != (4, "float", "tensor_group", 16):
            raise f.error(f"{key}.weights", f"nvfp4-pack-quantized needs num_bits 4, type float, strategy "
                                            f"tensor_group, group_size 16; got {bits}, {typ}, {strategy}, {group}")
        dt = NVFP4
    elif mx:
        if (bits, typ, strategy, group, w.get("symmetric", True)) != (4, "float", "group", 32, True):
            raise f.error(f"{key}.weights", f"mxfp4-pack-quantized needs num_bits 4, type float, strategy group, "
                                            f"group_size 32, symmetric; got {bits}, {typ}, {strategy}, {group}")
        dt = MXFP4
    else:
        if typ != "int" or bits not in (4, 8):
            raise f.error(f"{key}.weights.num_bits", f"pack-quantized needs type int with num_bits 4 or 8, got "
                                                     f"{typ} {bits}")
        if strategy not in ("group", "channel"):
            raise f.error(f"{key}.weights.strategy", f"{strategy!r}; valid: 'group', 'channel'")
        if strategy == "group" and (isinstance(group, bool) or not isinstance(group, int) or group <= 0):
            raise f.error(f"{key}.weights.group_size", f"must be a positive integer, got {group!r}")
        actorder = w.get("actorder")
        if actorder not in (None, False, "weight", "group"):
            raise f.error(f"{key}.weights.actorder", f"{actorder!r}; valid: null, false, 'weight', 'group'")
        sym = w.get("symmetric", True)
        base = INT4 if bits == 4 else INT8
        dt = attrs.evolve(base.grouped(group if strategy == "group" else 0, scale_bits=16,
                                       zero_bits=0 if sym else bits),
                          tensor_bits=64, index_bits=32 if actorder == "group" else 0)
    acts = g.get("input_activations")
    if acts is not None and (not isinstance(acts, dict) or (acts.get("num_bits"), acts.get("type")) != (bits, typ)):
        raise f.error(f"{key}.input_activations", f"{acts!r}: activations quantized unlike the weights are not "
                                                   f"supported; valid: null (weight-only) or {bits}-bit {typ} as the "
                                                   f"weights (W{bits}A{bits})")
    dt = dt.with_input_quantized(acts is not None)
    return WeightFormat("compressed-tensors", dt, f.patterns("ignore"), f.where, kv_cache=_kv_scheme(f, {8: FP8}))
