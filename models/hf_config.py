"""Hugging Face config.json -> DecoderConfig, from disk only (never the network).

Every field that changes the cost is read, in the older and the newer spellings Hugging Face has used
(n_embd / hidden_size, torch_dtype / dtype, rope_theta / rope_parameters, ...); a missing or malformed
one is an OpgraphError naming the field and the file. Fields that do not change FLOPs or bytes (token
ids, dropout, eps, rope base and scaling, router loss coefficients) are not read, except that the rope
fields are checked to be of the right type, and `partial_rotary_factor` (which changes rope FLOPs) is read
in either place.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .decoder import MLA, DecoderConfig, MoE
from opgraph.core import checks
from opgraph.files import datafile
from opgraph.errors import OpgraphError
from opgraph.core.tensor import BF16, FP8, FP16, FP32, DType

_MISSING = object()

TORCH_DTYPES = {"bfloat16": BF16, "float16": FP16, "float32": FP32}
# hidden_act values -> the gated MLP variant (SwiGLU or GeGLU, the tanh and erf forms of GELU cost alike).
GATED_ACTS = {"silu": "swiglu", "swish": "swiglu", "gelu": "geglu", "gelu_pytorch_tanh": "geglu",
              "gelu_new": "geglu", "gelu_fast": "geglu"}
GPT2_ACTS = ("gelu_new", "gelu", "gelu_fast", "gelu_pytorch_tanh")


class Fields:
    """Typed access to a config.json's fields; every error names the field and the file."""

    def __init__(self, data: dict, where: str):
        self.data, self.where = data, where

    def error(self, key: str, what: str) -> OpgraphError:
        return OpgraphError(f"{self.where}: field {key!r} {what}")

    def get(self, *keys: str, default=_MISSING):
        """The first of `keys` present and not null, else `default` (an error when there is none)."""
        for k in keys:
            if self.data.get(k) is not None:
                return k, self.data[k]
        if default is _MISSING:
            also = f" (or {', '.join(repr(k) for k in keys[1:])})" if len(keys) > 1 else ""
            raise self.error(keys[0], f"is missing{also}")
        return keys[0], default

    def int(self, *keys: str, default=_MISSING, minimum: int = 1) -> int:
        key, v = self.get(*keys, default=default)
        if v is default and default is not _MISSING:
            return v
        return checks.integer(f"{self.where}: field {key!r}", v, minimum=minimum,
                              why="no model is that large" if isinstance(v, int) and v > checks.MAX_SIZE else "")

    def bool(self, key: str, default: bool) -> bool:
        _, v = self.get(key, default=default)
        if not isinstance(v, bool):
            raise self.error(key, f"must be true or false, got {v!r}")
        return v

    def str(self, *keys: str, default=_MISSING) -> str:
        key, v = self.get(*keys, default=default)
        if not isinstance(v, str):
            raise self.error(key, f"must be a string, got {v!r}")
        return v

    def choice(self, table: dict, *keys: str, default=_MISSING):
        key, _ = self.get(*keys, default=default)
        v = self.str(*keys, default=default)
        if v not in table:
            raise self.error(key, f"is {v!r}; supported: {', '.join(table)}")
        return table[v]


# -- the parts every family shares -----------------------------------------------------------------------

def _dtype(f: Fields) -> DType:
    """torch_dtype (older) or dtype (newer); bf16 when neither is given (GPT-2's config has none)."""
    return f.choice(TORCH_DTYPES, "dtype", "torch_dtype", default="bfloat16")


def _weight_dtype(f: Fields) -> DType | None:
    """Weight storage of a quantized checkpoint: fp8 (DeepSeek-V3's block-wise e4m3) is supported; any
    other scheme is an error rather than a silently unquantized cost."""
    _, q = f.get("quantization_config", default=None)
    if q is None:
        return None
    if not isinstance(q, dict):
        raise f.error("quantization_config", f"must be an object, got {q!r}")
    method = q.get("quant_method")
    if method != "fp8":
        raise f.error("quantization_config", f"has quant_method {method!r}; supported: 'fp8' (remove "
                                             f"quantization_config to cost the unquantized model)")
    return FP8


def _rotary_dim(f: Fields, head_dim: int) -> int | None:
    """Rotated dims per head from partial_rotary_factor, top-level (older) or in rope_parameters (newer);
    rope_theta / rope_parameters / rope_scaling are otherwise only type-checked (they do not change cost)."""
    _, params = f.get("rope_parameters", default={})
    if not isinstance(params, dict):
        raise f.error("rope_parameters", f"must be an object, got {params!r}")
    _, scaling = f.get("rope_scaling", default={})
    if not isinstance(scaling, dict):
        raise f.error("rope_scaling", f"must be an object or null, got {scaling!r}")
    key, theta = f.get("rope_theta", default=params.get("rope_theta", 1.0))
    if isinstance(theta, bool) or not isinstance(theta, (int, float)) or theta <= 0:
        raise f.error(key, f"must be a positive number, got {theta!r}")
    factor = f.data.get("partial_rotary_factor", params.get("partial_rotary_factor"))
    if factor is None or factor == 1:
        return None
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor <= 1:
        raise f.error("partial_rotary_factor", f"must be a number in (0, 1], got {factor!r}")
    return max(1, int(head_dim * factor))


def _core(f: Fields, *, head_dim_default=None) -> dict:
    """The Llama-style fields most families share."""
    d = f.int("hidden_size")
    heads = f.int("num_attention_heads")
    head_dim = f.int("head_dim", default=head_dim_default)
    return dict(d_model=d, n_heads=heads, n_kv_heads=f.int("num_key_value_heads", default=heads),
                d_ffn=f.int("intermediate_size"), n_layers=f.int("num_hidden_layers"), vocab_size=f.int("vocab_size"),
                head_dim=head_dim, dtype=_dtype(f), weight_dtype=_weight_dtype(f),
                rotary_dim=_rotary_dim(f, head_dim or d // heads))


def _gated(f: Fields, default: str = "silu") -> str:
    return f.choice(GATED_ACTS, "hidden_activation", "hidden_act", default=default)


# -- families --------------------------------------------------------------------------------------------

def _llama(f: Fields) -> dict:
    bias = f.bool("attention_bias", False)
    return dict(**_core(f), mlp=_gated(f), qkv_bias=bias, o_bias=bias, mlp_bias=f.bool("mlp_bias", False),
                tie_embeddings=f.bool("tie_word_embeddings", False))


def _mistral(f: Fields) -> dict:
    return dict(**_core(f), mlp=_gated(f), sliding_window=f.int("sliding_window", default=None),
                tie_embeddings=f.bool("tie_word_embeddings", False))


def _mixtral(f: Fields) -> dict:
    moe = MoE(experts=f.int("num_local_experts"), top_k=f.int("num_experts_per_tok"), d_expert=f.int("intermediate_size"))
    return dict(**_mistral(f), moe=moe)


def _qwen2(f: Fields) -> dict:
    """Qwen2: q/k/v biases (always, in the modeling code). Sliding window only where use_sliding_window is
    true, on the layers from max_window_layers on; or as the newer layer_types list says."""
    core = _core(f)
    layers = core["n_layers"]
    _, types = f.get("layer_types", default=None)
    if types is not None:
        if not isinstance(types, list) or len(types) != layers or not set(types) <= {"full_attention", "sliding_attention"}:
            raise f.error("layer_types", f"must list 'full_attention' or 'sliding_attention' for each of the "
                                         f"{layers} layers")
        windowed = {i for i, t in enumerate(types) if t == "sliding_attention"}
    elif f.bool("use_sliding_window", False):
        windowed = set(range(f.int("max_window_layers", default=layers, minimum=0), layers))
    else:
        windowed = set()
    window = f.int("sliding_window") if windowed else None
    return dict(**core, mlp=_gated(f), qkv_bias=True, sliding_window=window,
                window_layers=None if len(windowed) == layers else windowed or None,
                tie_embeddings=f.bool("tie_word_embeddings", False))


def _gemma(f: Fields) -> dict:
    """Gemma: GeGLU, tied embeddings, head_dim 256 unless given (the HF GemmaConfig defaults)."""
    return dict(**_core(f, head_dim_default=256), mlp=_gated(f, default="gelu_pytorch_tanh"),
                tie_embeddings=f.bool("tie_word_embeddings", True))


def _gpt2(f: Fields) -> dict:
    """GPT-2: LayerNorm with biases, learned positions, biases on every projection, plain GELU MLP of
    n_inner (null: 4*n_embd), tied embeddings."""
    d = f.int("n_embd", "hidden_size")
    heads = f.int("n_head", "num_attention_heads")
    act = f.str("activation_function", default="gelu_new")
    if act not in GPT2_ACTS:
        raise f.error("activation_function", f"is {act!r}; supported: {', '.join(GPT2_ACTS)}")
    return dict(d_model=d, n_heads=heads, n_kv_heads=heads, d_ffn=f.int("n_inner", default=4 * d),
                n_layers=f.int("n_layer", "num_hidden_layers"), vocab_size=f.int("vocab_size"),
                max_positions=f.int("n_positions", "max_position_embeddings"), positions="learned",
                norm="layernorm", norm_bias=True, mlp="gelu", mlp_bias=True, qkv_bias=True, o_bias=True,
                dtype=_dtype(f), weight_dtype=_weight_dtype(f), tie_embeddings=f.bool("tie_word_embeddings", True))


def _deepseek(f: Fields, *, v3: bool) -> dict:
    """DeepSeek-V2/V3: MLA (q_lora_rank may be null), DeepSeekMoE with shared experts after
    first_k_dense_replace dense layers. V3's router adds e_score_correction_bias. The multi-token-prediction
    module (num_nextn_predict_layers) is not part of next-token inference and is not counted."""
    if f.bool("attention_bias", False):
        raise f.error("attention_bias", "is true; only DeepSeek's bias-free attention is supported")
    d = f.int("hidden_size")
    heads = f.int("num_attention_heads")
    mla = MLA(kv_lora_rank=f.int("kv_lora_rank"), qk_nope_head_dim=f.int("qk_nope_head_dim"),
              qk_rope_head_dim=f.int("qk_rope_head_dim"), v_head_dim=f.int("v_head_dim"),
              q_lora_rank=f.int("q_lora_rank", default=None))
    moe = None
    if f.get("n_routed_experts", default=None)[1] is not None:
        moe = MoE(experts=f.int("n_routed_experts"), top_k=f.int("num_experts_per_tok"),
                  d_expert=f.int("moe_intermediate_size"), shared=f.int("n_shared_experts", default=0, minimum=0),
                  first_dense=f.int("first_k_dense_replace", default=0, minimum=0),
                  layer_freq=f.int("moe_layer_freq", default=1), router_bias=v3)
    mtp = f.int("num_nextn_predict_layers", default=0, minimum=0)
    notes = (f"not counted: the multi-token-prediction module ({mtp} extra layer(s) in the checkpoint), "
             f"which next-token inference does not run",) if mtp else ()
    _rotary_dim(f, mla.qk_rope_head_dim)  # type checks only: MLA rotates exactly qk_rope_head_dim
    return dict(d_model=d, n_heads=heads, n_kv_heads=heads, d_ffn=f.int("intermediate_size"),
                n_layers=f.int("num_hidden_layers"), vocab_size=f.int("vocab_size"), mla=mla, moe=moe,
                mlp=_gated(f), dtype=_dtype(f), weight_dtype=_weight_dtype(f), notes=notes,
                tie_embeddings=f.bool("tie_word_embeddings", False))


FAMILIES: dict[str, Callable[[Fields], dict]] = {
    "llama": _llama,
    "mistral": _mistral,
    "mixtral": _mixtral,
    "qwen2": _qwen2,
    "gpt2": _gpt2,
    "deepseek_v2": lambda f: _deepseek(f, v3=False),
    "deepseek_v3": lambda f: _deepseek(f, v3=True),
    "gemma": _gemma,
}


def from_dict(data: dict, *, name: str, source: str, where: str = "config.json") -> DecoderConfig:
    """A DecoderConfig from the fields of a config.json; `where` names the file in error messages."""
    if not isinstance(data, dict):
        raise OpgraphError(f"{where}: the top level must be a JSON object")
    f = Fields(data, where)
    model_type = f.str("model_type")
    if model_type not in FAMILIES:
        raise f.error("model_type", f"is {model_type!r}, which is not supported; supported: {', '.join(FAMILIES)}")
    try:
        return DecoderConfig(name, source=source, **FAMILIES[model_type](f))
    except OpgraphError as e:  # a check across fields (top_k <= experts, heads divisible ...): name the file
        message = str(e)
        raise OpgraphError(message if message.startswith(where) else f"{where}: {message}") from None


def load(path: str | Path, *, name: str | None = None, source: str | None = None) -> DecoderConfig:
    """Load a Hugging Face config.json (or a checkpoint directory holding one) from disk."""
    path = Path(path)
    if datafile.is_folder(path):
        path = path / "config.json"
    data = datafile.read(path, "model config", syntax="json")
    default_name = path.parent.name if path.stem == "config" and path.parent.name else path.stem
    return from_dict(data, name=name or default_name, source=source or f"config.json at {path}", where=str(path))
