"""Hugging Face config.json -> DecoderConfig, from disk only (never the network).

Each family is a short function from config fields to parts (models.parts) and a stack of layers. Every field
that changes the cost is read, in the older and the newer spellings Hugging Face has used (n_embd / hidden_size,
torch_dtype / dtype, rope_theta / rope_parameters, ...); a missing or malformed one is an OpgraphError naming the
field and the file. Fields that do not change FLOPs or bytes (token ids, dropout, eps, rope base and scaling,
router loss coefficients: NEUTRAL) are not read, except that the rope fields are type-checked. A field known to
change the cost (COST_FIELDS) that the file's family does not read refuses the file, naming the field and what
it changes; a field opgraph does not know at all is listed in the model's notes, never dropped without a word.
Multimodal wrappers (Gemma-3, Llama-4, Mistral-3, Qwen3.5, Qwen3-VL, Kimi-K2.5) cost their `text_config` language
model, and say so.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import attrs

from . import compressed, parts, quantization, zamba
from .decoder import ACTIVATIONS, DecoderConfig
from .engram import Engram
from .parts import FULL, MLA, MLP, Attention, DeltaNet, Indexer, Keys, LatentAttention, Mamba2, MoE
from .stack import Stack, period_of
from opgraph.core import checks
from opgraph.core.ops import LIGHTNING_BLOCK, LIGHTNING_HEAD_DIMS
from opgraph.files import datafile
from opgraph.errors import OpgraphError, counted
from opgraph.core.tensor import BF16, FP4, FP8, FP8_DS_MLA, FP16, FP32, MXFP4, DType

_MISSING = object()

TORCH_DTYPES = {"bfloat16": BF16, "float16": FP16, "float32": FP32}
# hidden_act values -> the gated MLP variant (SwiGLU or GeGLU, the tanh and erf forms of GELU cost alike).
GATED_ACTS = {"silu": "swiglu", "swish": "swiglu", "gelu": "geglu", "gelu_pytorch_tanh": "geglu",
              "gelu_new": "geglu", "gelu_fast": "geglu", "situ": "situ"}
GPT2_ACTS = ("gelu_new", "gelu", "gelu_fast", "gelu_pytorch_tanh")


class Fields:
    """Typed access to a config.json's fields; every error names the field and the file."""

    def __init__(self, data: dict, where: str, path: str = ""):
        self.data, self.where, self.path = data, where, path
        self.read: set[str] = set()  # every key a family looked at, present or not
        self.wrapper: str | None = None  # a multimodal wrapper's model_type, where these are its text_config

    def error(self, key: str, what: str) -> OpgraphError:
        return OpgraphError(f"{self.where}: field {self.path + key!r} {what}")

    def get(self, *keys: str, default=_MISSING):
        """The first of `keys` present and not null, else `default` (an error when there is none)."""
        self.read.update(keys)
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
        return checks.integer(f"{self.where}: field {self.path + key!r}", v, minimum=minimum,
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

    def number(self, key: str, default=None) -> float | None:
        """A positive number (a soft cap, a scaling factor), or `default` when absent or null."""
        _, v = self.get(key, default=default)
        if v is default:
            return v
        return checks.number(f"{self.where}: field {self.path + key!r}", v, above=0)

    def ints(self, key: str, n: int, *, minimum: int = 0) -> list[int] | None:
        """A list of integers (layer indices or flags), or None when absent or null."""
        _, v = self.get(key, default=None)
        if v is None:
            return None
        if not isinstance(v, list) or any(not isinstance(i, int) or isinstance(i, bool) or not minimum <= i < max(n, 2)
                                          for i in v):
            raise self.error(key, f"must be a list of integers from {minimum} to {max(n, 2) - 1}, got {str(v)[:60]}")
        return v

    def flags(self, key: str, n: int) -> list[int]:
        """A list of one 0 or 1 per layer (MiMo's hybrid_layer_pattern, MiniMax-M3's moe_layer_freq), required."""
        listed = self.ints(key, n)
        if listed is None or len(listed) != n or set(listed) - {0, 1}:
            raise self.error(key, f"must list 0 or 1 for each of the {n} layers")
        return listed

    def words(self, key: str, n: int, valid: tuple[str, ...]) -> list[str] | None:
        """A list of one word per layer (layer_types), or None when absent or null."""
        _, v = self.get(key, default=None)
        if v is None:
            return None
        if not isinstance(v, list) or len(v) != n or not set(v) <= set(valid):
            raise self.error(key, f"must list one of {', '.join(map(repr, valid))} for each of the {n} layers")
        return v

    def sub(self, key: str) -> "Fields":
        """The fields of a nested object (a multimodal checkpoint's text_config)."""
        _, v = self.get(key)
        if not isinstance(v, dict):
            raise self.error(key, f"must be an object, got {str(v)[:60]}")
        return Fields(v, self.where, f"{self.path}{key}.")

    def optional_sub(self, key: str) -> "Fields":
        """The fields of a nested object, or none where it is absent or null (its class's defaults then apply)."""
        return self.sub(key) if self.get(key, default=None)[1] is not None else Fields({}, self.where,
                                                                                      f"{self.path}{key}.")

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


def _weights(f: Fields) -> dict:
    """How a quantized checkpoint stores its weights (models.quantization reads quantization_config: fp8 blocks,
    MXFP4, NVFP4, AWQ, GPTQ, compressed-tensors): the linear layers' dtype, and the format that says which
    modules it leaves at the model's dtype."""
    _, q = f.get("quantization_config", default=None)
    if q is None:
        return dict(weight_dtype=None, weight_format=None)
    fmt = quantization.read(q, f.where + (f" ({f.path.rstrip('.')})" if f.path else ""))
    return dict(weight_dtype=fmt.dtype, weight_format=fmt)


def _rotary_dim(f: Fields, head_dim: int, default: float | None = None, *, q_scaled: bool = False) -> int | None:
    """Rotated dims per head from partial_rotary_factor, top-level (older) or in rope_parameters (newer);
    rope_theta / rope_parameters / rope_scaling are otherwise only type-checked (they do not change cost), but for
    rope_parameters' llama_4_scaling_beta, a query scaled by position (one multiply an element), which a family
    that does not model it (`q_scaled`) refuses."""
    _, params = f.get("rope_parameters", default={})
    if not isinstance(params, dict):
        raise f.error("rope_parameters", f"must be an object, got {params!r}")
    if params.get("llama_4_scaling_beta") is not None and not q_scaled:
        raise f.error("rope_parameters", "gives llama_4_scaling_beta, a query scaled by its position (Ministral-3's: "
                                         "one multiply an element), which this family does not model")
    _, scaling = f.get("rope_scaling", default={})
    if not isinstance(scaling, dict):
        raise f.error("rope_scaling", f"must be an object or null, got {scaling!r}")
    key, theta = f.get("rope_theta", default=params.get("rope_theta", 1.0))
    if isinstance(theta, bool) or not isinstance(theta, (int, float)) or theta <= 0:
        raise f.error(key, f"must be a positive number, got {theta!r}")
    f.read.add("partial_rotary_factor")
    factor = f.data.get("partial_rotary_factor", params.get("partial_rotary_factor", default))
    if factor is None or factor == 1:
        return None
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor <= 1:
        raise f.error("partial_rotary_factor", f"must be a number in (0, 1], got {factor!r}")
    return max(1, int(head_dim * factor))


def _core(f: Fields, *, head_dim_default=None, vocab_default=_MISSING, ffn_default=_MISSING,
          rotary_default: float | None = None, q_scaled: bool = False) -> dict:
    """The Llama-style fields most families share."""
    d = f.int("hidden_size")
    heads = f.int("num_attention_heads")
    head_dim = f.int("head_dim", default=head_dim_default)
    return dict(d_model=d, n_heads=heads, n_kv_heads=f.int("num_key_value_heads", default=heads),
                d_ffn=f.int("intermediate_size", default=ffn_default), n_layers=f.int("num_hidden_layers"),
                vocab_size=f.int("vocab_size", default=vocab_default),
                head_dim=head_dim, dtype=_dtype(f), **_weights(f),
                rotary_dim=_rotary_dim(f, head_dim or d // heads, rotary_default, q_scaled=q_scaled))


def _gated(f: Fields, default: str = "silu") -> str:
    return f.choice(GATED_ACTS, "hidden_activation", "hidden_act", default=default)


def _attention(f: Fields, core: dict, **options) -> Attention:
    """The GQA attention the core fields describe (biases from attention_bias unless all four are given: a family
    whose biases come from elsewhere leaves attention_bias unread, so a set one is refused by name)."""
    kw = dict(rotary_dim=core["rotary_dim"])
    if not {"q_bias", "k_bias", "v_bias", "o_bias"} <= set(options):
        bias = f.bool("attention_bias", False)
        kw.update(q_bias=bias, k_bias=bias, v_bias=bias, o_bias=bias)
    return Attention(core["n_heads"], core["n_kv_heads"], core["head_dim"] or core["d_model"] // core["n_heads"],
                     **{**kw, **options})


def _summary_fields(core: dict, attention: Attention) -> dict:
    """The DecoderConfig fields that describe a stack given layer by layer (for listings and notes)."""
    return dict(core, qkv_bias=attention.q_bias, o_bias=attention.o_bias)


def _layer_types(f: Fields, n: int, valid=("full_attention", "sliding_attention")) -> list[str] | None:
    return f.words("layer_types", n, valid)


def _stack(n: int, layer_at, *, period: int = 1, breaks=(), what: str = "the layer pattern") -> Stack:
    return Stack.build(n, layer_at, period=period, breaks=breaks, what=what)


def _moe_stack(n: int, attention, moe: MoE | None, dense: MLP) -> Stack:
    """Pre-norm layers of one attention, MoE where DeepSeekMoE places it (MoE.placed), dense elsewhere."""
    if moe is None:
        return Stack.uniform(parts.pre_norm(attention, dense), n)
    return _stack(n, lambda i: parts.pre_norm(attention, moe if moe.placed(i) else dense), period=moe.layer_freq,
                  breaks=[moe.first_dense], what="moe_layer_freq")


def _scores(f: Fields, default: str) -> str:
    """A MoE router's scoring_func: softmax or sigmoid (MoE.scores)."""
    return f.choice({"softmax": "softmax", "sigmoid": "sigmoid"}, "scoring_func", default=default)


def _mtp(f: Fields, key: str = "num_nextn_predict_layers", default: int = 0, *, layers: int | None = None) -> dict:
    """The multi-token-prediction layers the checkpoint ships (DecoderConfig.mtp_layers: `key`'s count, or
    `layers` where the family counts them itself), and the note that says next-token inference does not count
    them."""
    mtp = f.int(key, default=default, minimum=0) if layers is None else layers
    return dict(mtp_layers=mtp, notes=(f"not counted: the multi-token-prediction module "
                                       f"({counted(mtp, 'extra layer')} in the checkpoint), which next-token inference "
                                       f"does not run",) if mtp else ())


# -- what a family does not read ------------------------------------------------------------------------

# Fields that never change FLOPs, bytes or cache: ids, numerics, training-only knobs, rope bases and scaling
# (rope's cost is its rotated dims), context limits, engine hints, and the generation and serialization defaults
# transformers' PretrainedConfig writes into a nested config (Kimi-K2.5's text_config: num_beams, top_k, ...).
NEUTRAL = frozenset("""
    architectures model_type transformers_version _name_or_path auto_map torch_dtype dtype
    bos_token_id eos_token_id pad_token_id sep_token_id decoder_start_token_id image_token_id image_token_index
    eod_token_id org_vocab_size boi_token_index eoi_token_index video_token_id vision_start_token_id vision_end_token_id
    mm_tokens_per_image vision_token_id
    initializer_range rms_norm_eps layer_norm_eps layer_norm_epsilon norm_eps attention_dropout hidden_dropout
    residual_dropout
    dropout embd_pdrop resid_pdrop attn_pdrop use_cache output_router_logits router_aux_loss_coef aux_loss_alpha
    seq_aux router_jitter_noise router_z_loss_coef max_position_embeddings original_max_position_embeddings
    initial_context_length rope_theta rope_scaling rope_parameters rope_local_base_freq pretraining_tp rotary_emb_base
    query_pre_attn_scalar cache_implementation num_logits_to_keep rescale_prenorm_residual residual_in_fp32
    use_mamba_kernels time_step_min time_step_max time_step_floor time_step_limit time_step_rank ep_size
    debug micro_forward skip_checkpoint use_deepep for_llm_compressor _attn_implementation_autoset attn_scale
    floor_scale tokenizer_class sliding_window_size
    layernorm_epsilon hc_eps compress_rope_theta model_max_length moe_capacity moe_gate moe_norm_min
    moe_drop_tokens moe_random_routing_dropped_token
    mtp_use_dedicated_embeddings mtp_loss_scaling_factor hidden_act hidden_activation tie_word_embeddings
    use_sliding_window
    max_window_layers summary_type summary_use_proj summary_activation summary_proj_to_labels summary_first_dropout
    scale_attn_weights scale_attn_by_inverse_layer_idx reorder_and_upcast_attn n_ctx task_specific_params
    final_logit_softcapping attn_logit_softcapping swiglu_limit vision_config projector_hidden_act
    multimodal_projector_bias spatial_merge_size vision_feature_layer vision_feature_select_strategy
    mrope_section text_config unsloth_fixed torchscript mamba_norm_before_gate rope_interleave indexer_rope_interleave
    swa_rope_theta
    add_cross_attention bad_words_ids begin_suppress_tokens chunk_size_feed_forward cross_attention_hidden_size
    diversity_penalty do_sample early_stopping encoder_no_repeat_ngram_size exponential_decay_length_penalty
    finetuning_task forced_bos_token_id forced_eos_token_id id2label is_decoder is_encoder_decoder label2id
    length_penalty max_length min_length no_repeat_ngram_size num_beam_groups num_beams num_return_sequences
    output_attentions output_hidden_states output_scores prefix problem_type pruned_heads remove_invalid_values
    repetition_penalty return_dict return_dict_in_generate suppress_tokens temperature tf_legacy_loss
    tie_encoder_decoder top_k top_p typical_p use_bfloat16
    is_composition num_image_tokens _flash_attn_2_enabled neftune_noise_alpha perceiver_config is_llama_config
    rope_interleaved _attn_implementation_autoset lm_head rm_head
""".split())

# Fields that change FLOPs, bytes or cache, and what they change: a family that does not read one refuses the
# file when it is set to anything but its no-op value (COST_NEUTRAL_VALUES, else null, false, 0 or empty).
COST_FIELDS = {
    "layer_types": "which layers attend to every key and which to a window or chunk (attention FLOPs, KV cache)",
    "sliding_window": "the keys each layer attends to (attention FLOPs, KV cache)",
    "sliding_window_pattern": "which layers use the sliding window (attention FLOPs, KV cache)",
    "attention_chunk_size": "chunked attention (attention FLOPs, KV cache)",
    "no_rope_layers": "which layers apply rope (rope FLOPs)",
    "no_rope_layer_interval": "which layers apply rope (rope FLOPs)",
    "partial_rotary_factor": "the dims rope rotates (rope FLOPs)",
    "use_qk_norm": "a norm of q and k (FLOPs, weights)",
    "qk_layernorm": "a norm of q and k (FLOPs, weights)",
    "attention_bias": "biases on the attention projections (FLOPs, weights)",
    "mlp_bias": "biases on the MLP projections (FLOPs, weights)",
    "attn_output_gate": "a gate on the attention output (FLOPs, weights)",
    "num_experts": "a mixture of experts (FLOPs, weights)",
    "num_local_experts": "a mixture of experts (FLOPs, weights)",
    "n_routed_experts": "a mixture of experts (FLOPs, weights)",
    "n_shared_experts": "shared experts (FLOPs, weights)",
    "shared_expert_intermediate_size": "a shared expert (FLOPs, weights)",
    "moe_intermediate_size": "the experts' width (FLOPs, weights)",
    "num_experts_per_tok": "the experts each token runs (FLOPs)",
    "experts_per_token": "the experts each token runs (FLOPs)",
    "first_k_dense_replace": "which layers are dense (FLOPs, weights)",
    "moe_layer_freq": "which layers are MoE (FLOPs, weights)",
    "decoder_sparse_step": "which layers are MoE (FLOPs, weights)",
    "mlp_only_layers": "which layers are dense (FLOPs, weights)",
    "moe_layers": "which layers are MoE (FLOPs, weights)",
    "interleave_moe_layer_step": "which layers are MoE (FLOPs, weights)",
    "intermediate_size_mlp": "the dense layers' width (FLOPs, weights)",
    "n_group": "group-limited routing (router FLOPs)",
    "topk_group": "group-limited routing (router FLOPs)",
    "topk_method": "group-limited routing (router FLOPs)",
    "scoring_func": "the router's scores (FLOPs)",
    "norm_topk_prob": "renormalized routing weights (FLOPs)",
    "routed_scaling_factor": "scaled routing weights (FLOPs)",
    "num_nextn_predict_layers": "multi-token-prediction layers in the checkpoint (weights)",
    "mtp_num_hidden_layers": "multi-token-prediction layers in the checkpoint (weights)",
    "quantization_config": "how the weights are stored (bytes)",
    "hybrid_override_pattern": "which layers are Mamba, attention or MLP (everything)",
    "full_attention_interval": "which layers are full attention (everything)",
    "mamba_ssm_dtype": "the recurrent state's dtype (cache bytes)",
    "mamba_ssm_cache_dtype": "the recurrent state's dtype (cache bytes)",
    "moe_latent_size": "latent projections around the experts (FLOPs, weights)",
    "mtp_hybrid_override_pattern": "the multi-token-prediction module's layers (weights)",
    "layers_block_type": "which layers are Mamba, attention, MLP or MoE (everything)",
    "moe_shared_expert_intermediate_size": "a shared expert (FLOPs, weights)",
    "index_topk": "sparse attention (DeepSeek-V3.2's DSA: attention FLOPs)",
    "index_n_heads": "sparse attention's indexer (FLOPs, weights)",
    "index_head_dim": "sparse attention's indexer (FLOPs, weights)",
    "indexer_types": "which layers run the sparse-attention indexer and which reuse another layer's selection "
                     "(indexer FLOPs, its KV cache)",
    "index_topk_freq": "which layers compute their own sparse-attention selection (indexer FLOPs)",
    "index_topk_pattern": "which layers compute their own sparse-attention selection (indexer FLOPs)",
    "mlp_layer_types": "which layers are dense and which MoE (FLOPs, weights)",
    "global_head_dim": "the full-attention layers' head width (FLOPs, weights, KV cache)",
    "num_global_key_value_heads": "the full-attention layers' KV heads (FLOPs, weights, KV cache)",
    "attention_k_eq_v": "v taken from k_proj on full-attention layers (FLOPs, weights)",
    "hidden_size_per_layer_input": "per-layer embeddings (FLOPs, weights)",
    "vocab_size_per_layer_input": "the per-layer embeddings' table (weights)",
    "num_kv_shared_layers": "layers that reuse another layer's K and V (FLOPs, weights, KV cache)",
    "use_double_wide_mlp": "a wider MLP on the KV-shared layers (FLOPs, weights)",
    "enable_moe_block": "a mixture of experts beside the dense MLP (FLOPs, weights)",
    "top_k_experts": "the experts each token runs (FLOPs)",
    "attn_window_size": "a sliding window (attention FLOPs, KV cache)",
    "shared_intermediate_size": "a shared expert (FLOPs, weights)",
    "use_grouped_topk": "group-limited routing (router FLOPs)",
    "num_expert_group": "group-limited routing (router FLOPs)",
    "head_dim": "the attention heads' width (FLOPs, weights, KV cache)",
    "intermediate_size": "the MLP's width (FLOPs, weights)",
    "num_key_value_heads": "the KV heads (FLOPs, weights, KV cache)",
    "embedding_multiplier": "scaling the embeddings (FLOPs)",
    "lm_head_multiplier": "scaling the logits (FLOPs)",
    "key_multiplier": "scaling the keys (FLOPs)",
    "attention_in_multiplier": "scaling the attention's input (FLOPs)",
    "attention_out_multiplier": "scaling the attention's output (FLOPs)",
    "ssm_in_multiplier": "scaling the Mamba mixer's input (FLOPs)",
    "ssm_out_multiplier": "scaling the Mamba mixer's output (FLOPs)",
    "ssm_multipliers": "scaling the Mamba mixer's in_proj output (FLOPs)",
    "mlp_multipliers": "scaling the MLP's gate and output (FLOPs)",
    "mamba_d_ssm": "a Mamba-2 mixer's inner width (everything)",
    "mamba_n_heads": "a Mamba-2 mixer's heads (everything)",
    "mamba_d_head": "a Mamba-2 mixer's head width (everything)",
    "mamba_n_groups": "a Mamba-2 mixer's B/C groups (FLOPs, weights, cache)",
    "mamba_d_state": "a Mamba-2 mixer's state size (FLOPs, weights, cache)",
    "mamba_d_conv": "a Mamba-2 mixer's conv width (FLOPs, weights, cache)",
    "mamba_expand": "a Mamba-2 mixer's inner width (everything)",
    "mamba_chunk_size": "the Mamba-2 scan's chunks (prefill FLOPs)",
    "mamba_conv_bias": "a bias on the Mamba-2 conv (FLOPs, weights)",
    "mamba_proj_bias": "biases on the Mamba-2 projections (FLOPs, weights)",
    "projectors_bias": "a bias on the Mamba-2 out_proj (FLOPs, weights)",
    "mamba_rms_norm": "the Mamba-2 mixer's gated norm (FLOPs, weights)",
    "compress_ratios": "which layers attend to compressed entries (attention FLOPs, KV cache)",
    "kv_source_layer_ids": "which layers compress and cache the entries others read (FLOPs, weights, KV cache)",
    "index_source_layer_ids": "which layers run the indexer and which reuse its selection (FLOPs, weights)",
    "candidate_source_layer_id": "a first selection of blocks that later indexers are masked to (FLOPs)",
    "engram_layer_ids": "Engram memories added before layers (FLOPs, weights)",
    "engram_num_embeddings": "Engram tables (weights)",
    "hc_mult": "hyper-connection streams around every sublayer (FLOPs, activations)",
    "o_groups": "a grouped output projection (FLOPs, weights)",
    "o_lora_rank": "a low-rank output projection (FLOPs, weights)",
    "num_hash_layers": "layers routed by a table of token ids (router FLOPs, weights)",
    "expert_dtype": "how the routed experts are stored (bytes)",
    "linear_attn_config": "which layers are Kimi Delta Attention, and their sizes (everything)",
    "mla_use_nope": "MLA without rope (rope FLOPs)",
    "num_experts_per_token": "the experts each token runs (FLOPs)",
    "num_shared_experts": "shared experts (FLOPs, weights)",
    "sparse_attention_config": "which layers attend to selected blocks of keys (attention FLOPs, index cache)",
    "dense_intermediate_size": "the dense layers' width (FLOPs, weights)",
    "logit_scale": "scaling the logits (FLOPs)",
}
COST_NEUTRAL_VALUES = {"moe_layer_freq": (1,), "decoder_sparse_step": (1,), "n_group": (1,), "topk_group": (1,),
                       "routed_scaling_factor": (1, 1.0), "partial_rotary_factor": (1, 1.0),
                       "interleave_moe_layer_step": (1,), "topk_method": ("greedy",), "scoring_func": ("softmax",),
                       "embedding_multiplier": (1, 1.0), "lm_head_multiplier": (1, 1.0), "logit_scale": (1, 1.0),
                       "key_multiplier": (1, 1.0),
                       "attention_in_multiplier": (1, 1.0), "attention_out_multiplier": (1, 1.0),
                       "ssm_in_multiplier": (1, 1.0), "ssm_out_multiplier": (1, 1.0),
                       "ssm_multipliers": ([1] * 5, [1.0] * 5), "mlp_multipliers": ([1] * 2, [1.0] * 2)}


def unread(f: Fields, model_type: str, *, wrapper: bool = False) -> list[str]:
    """Check what the family left unread: a set cost field refuses the file, naming it and what it changes;
    fields opgraph does not know come back as a note (a wrapper's own fields describe the vision side, already
    noted, and are not listed)."""
    unknown = []
    for key, value in f.data.items():
        if key in f.read or key in NEUTRAL or value in (None, False, 0, [], {}, ""):
            continue
        if key in COST_FIELDS:
            if value in COST_NEUTRAL_VALUES.get(key, ()):
                continue
            raise f.error(key, f"is set ({str(value)[:40]}), and the {model_type} family does not read it: it changes "
                               f"{COST_FIELDS[key]}; remove it to cost the model without it, or write the model in "
                               f"Python (FILE.py:NAME)")
        unknown.append(key)
    if not unknown or wrapper:
        return []
    where = f.path.rstrip(".") or "config.json"
    return [f"not read from {where}: {', '.join(sorted(unknown))} (fields opgraph does not know; if one changes the "
            f"model's shape, these figures do not show it)"]


# -- families --------------------------------------------------------------------------------------------

def _llama(f: Fields) -> dict:
    bias = f.bool("attention_bias", False)
    return dict(**_core(f), mlp=_gated(f), qkv_bias=bias, o_bias=bias, mlp_bias=f.bool("mlp_bias", False),
                tie_embeddings=f.bool("tie_word_embeddings", False))


def _seed_oss(f: Fields) -> dict:
    """Seed-OSS (transformers' seed_oss: LlamaDecoderLayer, its attention biases split): q, k and v biased where
    attention_bias is true, o_proj where attention_out_bias is."""
    return dict(_llama(f), o_bias=f.bool("attention_out_bias", False))


def _mistral(f: Fields) -> dict:
    return dict(**_core(f), mlp=_gated(f), sliding_window=f.int("sliding_window", default=None),
                tie_embeddings=f.bool("tie_word_embeddings", False))


def _ministral3(f: Fields) -> dict:
    """Ministral-3's text model (transformers' ministral3: MistralDecoderLayer; vLLM's mistral.py): Mistral's layer,
    with the query times 1 + beta ln(1 + floor(p / original_max_position_embeddings)) after rope at every position p
    where rope_parameters gives beta (llama_4_scaling_beta): one multiply an element, as Llama-4's temperature."""
    _, params = f.get("rope_parameters", default={})
    scaled = isinstance(params, dict) and params.get("llama_4_scaling_beta") is not None
    core = _core(f, q_scaled=scaled)
    window = f.int("sliding_window", default=None)
    attention = _attention(f, core, q_scale=scaled, **({"keys": Keys("sliding", window)} if window else {}))
    layer = parts.pre_norm(attention, MLP(core["d_ffn"], _gated_act(f)))
    return dict(**_summary_fields(core, attention), mlp=_gated(f), sliding_window=window,
                layers=Stack.uniform(layer, core["n_layers"]), tie_embeddings=f.bool("tie_word_embeddings", False))


def _mixtral(f: Fields) -> dict:
    moe = MoE(experts=f.int("num_local_experts"), top_k=f.int("num_experts_per_tok"), d_expert=f.int("intermediate_size"))
    return dict(**_mistral(f), moe=moe)


def _ministral(f: Fields) -> dict:
    """Ministral-8B as transformers' ministral re-saves it (MistralDecoderLayer): Mistral's layer, a window of
    sliding_window keys on the layers layer_types names sliding_attention (every layer where it gives none and a
    window is set, as MinistralConfig fills it)."""
    core = _core(f)
    n = core["n_layers"]
    window = f.int("sliding_window", default=4096)
    types = _layer_types(f, n) or ["sliding_attention" if window else "full_attention"] * n
    full = _attention(f, core)
    sliding = attrs.evolve(full, keys=Keys("sliding", window)) if window else full
    mlp = MLP(core["d_ffn"], _gated_act(f))
    layers = Stack.listed([parts.pre_norm(sliding if t == "sliding_attention" else full, mlp) for t in types])
    return dict(**_summary_fields(core, full), mlp=_gated(f), layers=layers,
                tie_embeddings=f.bool("tie_word_embeddings", False))


def _helium(f: Fields) -> dict:
    """Kyutai's Helium-1 (transformers' helium): Llama's layer, q, k and v biased where attention_bias (o_proj
    never), the MLP where mlp_bias; o_proj maps hidden_size to hidden_size, so heads x head_dim must be it."""
    core = _core(f, head_dim_default=128)
    if core["n_heads"] * core["head_dim"] != core["d_model"]:
        raise f.error("head_dim", f"is {core['head_dim']}: Helium's o_proj is hidden_size x hidden_size, so "
                                  f"num_attention_heads x head_dim must be hidden_size ({core['d_model']})")
    bias = f.bool("attention_bias", False)
    return dict(**core, mlp=_gated(f), qkv_bias=bias, o_bias=False, mlp_bias=f.bool("mlp_bias", False),
                tie_embeddings=f.bool("tie_word_embeddings", False))


def _windowed_layers(f: Fields, layers: int) -> set[int]:
    """Qwen2/Qwen3's sliding-window layers: as layer_types says, else from max_window_layers on where
    use_sliding_window is true, else none."""
    types = _layer_types(f, layers)
    if types is not None:
        return {i for i, t in enumerate(types) if t == "sliding_attention"}
    if f.bool("use_sliding_window", False):
        return set(range(f.int("max_window_layers", default=layers, minimum=0), layers))
    f.get("max_window_layers", "sliding_window", default=None)  # read: they only matter with use_sliding_window
    return set()


def _qwen2(f: Fields) -> dict:
    """Qwen2: q/k/v biases (always, in the modeling code; an attention_bias false is noted). Sliding window only
    where use_sliding_window is true, on the layers from max_window_layers on; or as the newer layer_types list
    says."""
    core = _core(f)
    layers = core["n_layers"]
    windowed = _windowed_layers(f, layers)
    window = f.int("sliding_window") if windowed else None
    # some re-saves (NVLM-D's llm_config) write attention_bias; Qwen2's code and vLLM's bias q, k and v whatever it says
    notes = () if f.bool("attention_bias", True) else (
        "attention_bias is false, but Qwen2's reference code and vLLM's qwen2.py bias q, k and v whatever it says: "
        "priced with the biases",)
    return dict(**core, mlp=_gated(f), qkv_bias=True, sliding_window=window, notes=notes,
                window_layers=None if len(windowed) == layers else windowed or None,
                tie_embeddings=f.bool("tie_word_embeddings", False))


def _halved_ffn(f: Fields, core: dict) -> None:
    """Set core's d_ffn to one SwiGLU branch where intermediate_size gives both together (Qwen-1's w1 and w2,
    Molmo's fused gate_up: vLLM's qwen.py and molmo.py build intermediate_size // 2 a branch)."""
    if core["d_ffn"] % 2:
        raise f.error("intermediate_size", f"({core['d_ffn']}) must be even: it is the two SwiGLU branches together")
    core["d_ffn"] //= 2


QWEN1_NEUTRAL = ("use_flash_attn", "bf16", "fp16", "fp32", "onnx_safe", "emb_dropout_prob", "attn_dropout_prob",
                 "softmax_in_fp32", "use_cache_kernel")


def _qwen1(f: Fields) -> dict:
    """Alibaba's first Qwen (remote code QWenLMHeadModel, model_type qwen: Qwen-1.8B, 7B, 14B and 72B; vLLM's
    qwen.py): Llama's layer, multi-head, under its own names: one c_attn with a bias (q, k and v always biased), c_proj
    without; a SwiGLU MLP whose two branches are each intermediate_size / 2 wide (w1 and w2, as vLLM's QWenMLP builds
    them); rope over whole heads. vLLM reads neither kv_channels nor rotary_pct, so a value other than hidden_size /
    heads or 1 is refused, as is no_bias false (biases the remote code adds and vLLM does not load). Its dynamic NTK
    and log-n query scaling (use_dynamic_ntk, use_logn_attn) act only past seq_length, which bounds the context
    window; vLLM runs neither. The bf16/fp16/fp32 flags pick the remote code's autocast, not the stored dtype."""
    core = _core(f)
    _fixed_head_dim(f, core, "Qwen")
    if f.int("kv_channels", default=core["head_dim"]) != core["head_dim"]:
        raise f.error("kv_channels", f"must be hidden_size / num_attention_heads ({core['head_dim']}): vLLM's qwen.py "
                                     f"takes the heads' width from those two")
    if f.number("rotary_pct", default=1.0) != 1:
        raise f.error("rotary_pct", "is not 1: vLLM's qwen.py rotates whole heads whatever it says (published Qwen "
                                    "configs give 1.0)")
    if not f.bool("no_bias", True):
        raise f.error("no_bias", "is false: the remote code then biases c_proj and the MLP, which vLLM's qwen.py "
                                 "does not load (published Qwen configs set it true)")
    _halved_ffn(f, core)
    f.get(*QWEN1_NEUTRAL, default=None)  # engine and autocast choices: no cost
    notes = [what for key, what in (
        ("use_dynamic_ntk", "use_dynamic_ntk (rope stretched past seq_length) is not run by vLLM: rope costs the same"),
        ("use_logn_attn", "use_logn_attn (queries scaled by log(position) / log(seq_length) past seq_length) is not "
                          "run by vLLM and not priced"),
        ("use_cache_quantization", "use_cache_quantization (the remote code's int8 KV cache) is not run by vLLM: "
                                   "the cache is priced at --kv-dtype")) if f.bool(key, False)]
    attention = _attention(f, core, q_bias=True, k_bias=True, v_bias=True, o_bias=False)
    layer = parts.pre_norm(attention, MLP(core["d_ffn"], "silu"))
    return dict(**_summary_fields(core, attention), mlp="swiglu", notes=tuple(notes),
                layers=Stack.uniform(layer, core["n_layers"]), tie_embeddings=f.bool("tie_word_embeddings", False),
                context_window=_context_within(f, "seq_length"))


def _qwen_moe(f: Fields, shared: bool, renormalize: bool = False) -> MoE:
    """Qwen2-MoE / Qwen3-MoE / Qwen3-Next experts: num_experts of moe_intermediate_size, top-k renormalized when
    norm_topk_prob; Qwen2-MoE and Qwen3-Next add a shared expert behind a sigmoid gate."""
    return MoE(experts=f.int("num_experts"), top_k=f.int("num_experts_per_tok"), d_expert=f.int("moe_intermediate_size"),
               shared_d=f.int("shared_expert_intermediate_size") if shared else None, shared_gate=shared,
               renormalize=f.bool("norm_topk_prob", renormalize), shared_name="shared_expert", act=_gated_act(f))


def _qwen_ffn(f: Fields, n: int, moe: MoE | None, dense: MLP):
    """Qwen MoE placement: layer i is MoE unless listed in mlp_only_layers, when (i + 1) % decoder_sparse_step is 0."""
    if moe is None:
        return lambda i: dense, 1
    step = f.int("decoder_sparse_step", default=1)
    only = set(f.ints("mlp_only_layers", n) or ())
    return (lambda i: dense if i in only or (i + 1) % step else moe), (n if only else step)


def _qwen3(f: Fields, *, moe: bool = False) -> dict:
    """Qwen3 / Qwen3-MoE: Qwen2's layer (biases only where attention_bias says) with a per-head RMSNorm of q and
    k before rope (modular_qwen3.py: q_norm, k_norm over head_dim)."""
    core = _core(f)
    n = core["n_layers"]
    windowed = _windowed_layers(f, n)
    if not f.bool("use_qk_norm", True):  # Qwen3-Coder's config says true; the reference has no switch
        raise f.error("use_qk_norm", "is false, but Qwen3's reference code (modeling_qwen3.py, modeling_qwen3_moe.py) "
                                     "normalizes q and k in every layer")
    attention = _attention(f, core, qk_norm="head")
    stack = _qwen_layers(f, core, windowed, attention, _qwen_moe(f, shared=False) if moe else None)
    return dict(**_summary_fields(core, attention), mlp=_gated(f), layers=stack,
                tie_embeddings=f.bool("tie_word_embeddings", False))


def _qwen_layers(f: Fields, core: dict, windowed: set[int], attention: Attention, moe: MoE | None) -> Stack:
    """Qwen's pre-norm layers: `attention`, over sliding_window keys on the `windowed` layers, and the MoE where
    _qwen_ffn places it (dense MLPs of intermediate_size elsewhere)."""
    n = core["n_layers"]
    sliding = attrs.evolve(attention, keys=Keys("sliding", f.int("sliding_window"))) if windowed else attention
    ffn, period = _qwen_ffn(f, n, moe, MLP(core["d_ffn"], _gated_act(f)))
    return _stack(n, lambda i: parts.pre_norm(sliding if i in windowed else attention, ffn(i)),
                  period=n if windowed else period)


def _qwen2_moe(f: Fields) -> dict:
    """Qwen1.5-MoE and Qwen2-MoE (transformers' qwen2_moe, vLLM's qwen2_moe.py): Qwen2's attention (q, k and v biased
    where qkv_bias, true by default; o_proj never), and in the layers _qwen_ffn places (decoder_sparse_step,
    mlp_only_layers) num_experts of moe_intermediate_size, top num_experts_per_tok of softmax scores (renormalized
    where norm_topk_prob), beside a shared expert of shared_expert_intermediate_size scaled by
    sigmoid(shared_expert_gate x)."""
    core = _core(f)
    bias = f.bool("qkv_bias", True)
    attention = _attention(f, core, q_bias=bias, k_bias=bias, v_bias=bias, o_bias=False)
    moe = _qwen_moe(f, shared=True)
    stack = _qwen_layers(f, core, _windowed_layers(f, core["n_layers"]), attention, moe)
    return dict(**_summary_fields(core, attention), mlp=_gated(f), moe=moe, layers=stack,
                tie_embeddings=f.bool("tie_word_embeddings", False))


def _clip_qkv_note(f: Fields) -> tuple[str, ...]:
    """clip_qkv (OLMoE's, DBRX's attn_config's): q, k and v clamped to +-clip, noted rather than counted."""
    clip = f.number("clip_qkv", default=None)
    return (f"clip_qkv {clip}: the clamps of q, k and v (one op an element each) are not counted",) if clip else ()


def _olmoe(f: Fields) -> dict:
    """AllenAI's OLMoE (transformers' olmoe, vLLM's olmoe.py): pre-norm layers (not OLMo-2's post-norm), an RMSNorm
    of the whole q and the whole k projection, and in every layer num_experts SwiGLU experts of intermediate_size
    (the experts' width: there is no dense MLP), top num_experts_per_tok of softmax scores, renormalized where
    norm_topk_prob. clip_qkv's clamps of q, k and v are noted, not counted."""
    core = _core(f)
    attention = _attention(f, core, qk_norm="full")
    moe = MoE(experts=f.int("num_experts"), top_k=f.int("num_experts_per_tok"), d_expert=core["d_ffn"],
              renormalize=f.bool("norm_topk_prob", False), act=_gated_act(f))
    return dict(**_summary_fields(core, attention), mlp=_gated(f), moe=moe, notes=_clip_qkv_note(f),
                layers=Stack.uniform(parts.pre_norm(attention, moe), core["n_layers"]),
                tie_embeddings=f.bool("tie_word_embeddings", False))


def _flex_olmo(f: Fields) -> dict:
    """AllenAI's FlexOlmo (transformers' flex_olmo): OLMo-2's post-norm layer (an RMSNorm of the whole q and k
    projections; all four projections biased where attention_bias) with OLMoE's experts in every layer: num_experts
    SwiGLU experts of intermediate_size, softmax top num_experts_per_tok, renormalized where norm_topk_prob."""
    core = _core(f)
    attention = _attention(f, core, qk_norm="full")
    moe = MoE(experts=f.int("num_experts"), top_k=f.int("num_experts_per_tok"), d_expert=core["d_ffn"],
              renormalize=f.bool("norm_topk_prob", False), act=_gated_act(f))
    return dict(**_summary_fields(core, attention), mlp=_gated(f), moe=moe,
                layers=Stack.uniform(parts.post_norm(attention, moe), core["n_layers"]),
                tie_embeddings=f.bool("tie_word_embeddings", False))


def _rope_flags(f: Fields, n: int) -> list[int]:
    """Which layers apply rope (1) and which are NoPE (0): no_rope_layers, else every no_rope_layer_interval-th layer
    NoPE (Llama-4's and SmolLM3's configs, default interval 4)."""
    interval = f.int("no_rope_layer_interval", default=4)  # read where the list is given too: the list wins
    flags = f.ints("no_rope_layers", n) or [int((i + 1) % interval != 0) for i in range(n)]
    if len(flags) != n or not set(flags) <= {0, 1}:
        raise f.error("no_rope_layers", f"must give 1 (rope) or 0 (NoPE) for each of the {n} layers")
    return flags


def _smollm3(f: Fields) -> dict:
    """Hugging Face's SmolLM3 (transformers' smollm3, vLLM runs it as Llama with NoPE layers): Llama's layer without
    rope on the layers no_rope_layers marks 0 (every no_rope_layer_interval-th: 3, 7, ...), a sliding window where
    use_sliding_window and layer_types say so, embeddings tied unless tie_word_embeddings says otherwise (the
    config class's default is true, and SmolLM3-3B's config.json does not give it)."""
    core = _core(f)
    n = core["n_layers"]
    flags = _rope_flags(f, n)
    bias = f.bool("attention_bias", False)
    if f.bool("mlp_bias", False):
        raise f.error("mlp_bias", "is true: biases on SmolLM3's MLP are not modelled")
    rope = _attention(f, core, q_bias=bias, k_bias=bias, v_bias=bias, o_bias=bias)
    types = _layer_types(f, n) or ["full_attention"] * n
    windowed = {i for i, t in enumerate(types) if t == "sliding_attention"} if f.bool("use_sliding_window", False) \
        else set()
    f.get("max_window_layers", "sliding_window", default=None)  # read: they only matter with use_sliding_window
    keys = Keys("sliding", f.int("sliding_window")) if windowed else FULL

    def attention(i: int) -> Attention:
        a = rope if flags[i] else attrs.evolve(rope, rotary=False)
        return attrs.evolve(a, keys=keys) if i in windowed else a
    mlp = MLP(core["d_ffn"], _gated_act(f))
    return dict(**_summary_fields(core, rope), mlp=_gated(f), tie_embeddings=f.bool("tie_word_embeddings", True),
                layers=_stack(n, lambda i: parts.pre_norm(attention(i), mlp), period=n))


def _exaone4(f: Fields) -> dict:
    """LG's EXAONE-4.0 (transformers' exaone4, vLLM's exaone4.py): OLMo-2's post-norm layer (the norm after attention
    and after the MLP, inside the residual) with per-head q/k norms before rope; where sliding_window is set, the
    layers layer_types (or sliding_window_pattern: every pattern-th is full) names sliding_attention see a window
    of sliding_window keys and apply rope, and the full layers apply none (NoPE)."""
    core = _core(f)
    n = core["n_layers"]
    attention = _attention(f, core, qk_norm="head")
    attention_at = _windowed_nope(f, n, attention)
    mlp = MLP(core["d_ffn"], _gated_act(f))
    return dict(**_summary_fields(core, attention), mlp=_gated(f), tie_embeddings=f.bool("tie_word_embeddings", False),
                layers=_stack(n, lambda i: parts.post_norm(attention_at(i), mlp), period=n))


def _windowed_nope(f: Fields, n: int, attention: Attention, *, window_default=None, pattern_default=None,
                   pattern_key: str = "sliding_window_pattern") -> Callable[[int], Attention]:
    """Each layer's attention where sliding_window is set (EXAONE-4.0's, Command R7B's and A's, AFMoE's): the layers
    layer_types (or `pattern_key`: every pattern-th is full) names sliding_attention see a window of
    sliding_window keys and apply rope; the full layers apply none (NoPE). Without a window, every layer is
    `attention`."""
    window = f.int("sliding_window", default=window_default)
    key, pattern = f.get(pattern_key, default=pattern_default)
    types = _layer_types(f, n)
    if types is None:
        if window is not None and (isinstance(pattern, bool) or not isinstance(pattern, int) or pattern < 1):
            raise f.error(key, f"must be a positive number (every pattern-th layer is full) where layer_types is not "
                               f"given, got {pattern!r}")
        types = ["sliding_attention" if window and (i + 1) % pattern else "full_attention" for i in range(n)]
    full = attention if window is None else attrs.evolve(attention, rotary=False)
    sliding = attrs.evolve(attention, keys=Keys("sliding", window)) if window else attention
    return lambda i: sliding if types[i] == "sliding_attention" else full


def _restated(f: Fields, who: str, **expected) -> None:
    """Keys a family's config.json carries that its reference code never reads, restating the architecture it always
    builds: a value that says otherwise describes a model the code does not build, so it is refused by name."""
    for key, want in expected.items():
        _, value = f.get(key, default=want)
        if value != want:
            raise f.error(key, f"is {value!r}: {who}'s reference code (transformers, vLLM) does not read it and "
                               f"always builds {want!r}, so this config describes a model it does not build")


def _afmoe(f: Fields) -> dict:
    """Arcee's Trinity Nano, Mini and Large (transformers' afmoe, vLLM's afmoe.py): four RMSNorms a layer
    (input_layernorm, post_attention_layernorm on attention's output, pre_mlp_layernorm, post_mlp_layernorm); GQA
    of head_dim with per-head q/k norms and an output gate from its own gate_proj (sigmoid, one an output element);
    the sliding layers (layer_types, else all but every global_attn_every_n_layers-th) see sliding_window keys with
    rope, the full ones none (NoPE). The first num_dense_layers layers a SwiGLU of intermediate_size, the rest
    num_experts of moe_intermediate_size, top num_experts_per_tok of sigmoid scores (score_func) picked with a
    selection bias (expert_bias, fp32), renormalized (route_norm), times route_scale where not 1, the router in fp32
    (vLLM's), beside num_shared_experts as one SwiGLU; the embeddings times sqrt(hidden_size) where mup_enabled.
    Group-limited routing (n_group / num_expert_groups above 1) is refused by name."""
    core = _core(f)
    n = core["n_layers"]
    f.choice({"silu": "silu"}, "hidden_act", default="silu")
    attention = _attention(f, core, qk_norm="head", gate=True, own_gate=True)
    attention_at = _windowed_nope(f, n, attention, window_default=1024, pattern_default=4,
                                  pattern_key="global_attn_every_n_layers")
    for key in ("n_group", "topk_group", "num_expert_groups", "num_limited_groups"):
        if f.int(key, default=1) != 1:
            raise f.error(key, "is above 1: group-limited routing in Trinity is not modelled")
    f.get("load_balance_coeff", "use_grouped_mm", "score_before_experts", default=None)  # training-only knobs
    moe = MoE(experts=f.int("num_experts", default=64), top_k=f.int("num_experts_per_tok", default=6),
              d_expert=f.int("moe_intermediate_size", default=1408), shared=f.int("num_shared_experts", default=2,
                                                                                   minimum=0),
              router_bias="selection", scores=f.choice({"sigmoid": "sigmoid", "softmax": "softmax"}, "score_func",
                                                       default="sigmoid"),
              renormalize=f.bool("route_norm", True), scaled=f.number("route_scale", default=1.0) != 1,
              router_name="router.gate", router_dtype=FP32, bias_dtype=FP32)
    dense = MLP(core["d_ffn"], "silu")
    first = f.int("num_dense_layers", default=1, minimum=0)
    names = ("input_layernorm", "post_attention_layernorm", "pre_mlp_layernorm", "post_mlp_layernorm")
    return dict(**_summary_fields(core, attention), moe=attrs.evolve(moe, first_dense=first),
                layers=_stack(n, lambda i: parts.sandwich_norm(attention_at(i), dense if i < first else moe, names),
                              period=n), tie_embeddings=f.bool("tie_word_embeddings", False),
                embed_scale=f.bool("mup_enabled", False))


def _lfm2_ffn_width(f: Fields) -> int:
    """LFM2's SwiGLU width (transformers' Lfm2MLP): block_ff_dim (the original key, which Lfm2Config takes over
    intermediate_size), then where block_auto_adjust_ff_dim: two thirds of it, times block_ffn_dim_multiplier and
    rounded up to block_multiple_of (vLLM rounds up even without a multiplier, and every published config gives 1.0)."""
    width = f.int("block_ff_dim", "intermediate_size")
    if not f.bool("block_auto_adjust_ff_dim", True):
        f.get("block_ffn_dim_multiplier", "block_multiple_of", default=None)  # moot without the adjustment
        return width
    width = int(2 * width / 3)
    _, multiplier = f.get("block_ffn_dim_multiplier", default=1.0)
    if isinstance(multiplier, bool) or not isinstance(multiplier, (int, float)) or multiplier <= 0:
        raise f.error("block_ffn_dim_multiplier", f"must be a positive number, got {multiplier!r}")
    width, step = int(multiplier * width), f.int("block_multiple_of", default=256)
    return -(-width // step) * step


def _lfm2(f: Fields, *, moe: bool = False) -> dict:
    """Liquid AI's LFM2 (transformers' lfm2, vLLM's lfm2.py) and LFM2-MoE (lfm2_moe): pre-norm layers (operator_norm,
    ffn_norm), each layer_types names full_attention GQA with per-head q/k norms before rope, the others LFM2's gated
    short convolution (parts.ShortConv: conv_dim channels, conv_L_cache taps, biased where conv_bias); lfm2 takes
    full_attn_idxs where it gives no layer_types, and every layer is attention where it gives neither (Lfm2Config's
    rule). The FFN a SwiGLU (_lfm2_ffn_width); in lfm2_moe the first num_dense_layers a SwiGLU of
    intermediate_size as it is, the rest num_experts of moe_intermediate_size, top num_experts_per_tok of sigmoid
    scores picked with a selection bias where use_expert_bias (fp32), renormalized where norm_topk_prob, times
    routed_scaling_factor where not 1. Embeddings tied unless tie_word_embeddings (or the original
    tie_embedding) says otherwise. The original config's keys that restate this (block_dim, conv_dim_out, num_heads,
    block_use_swiglu, use_pos_enc) are checked; its initialization keys cost nothing."""
    core = _core(f, ffn_default=None)  # the width is _lfm2_ffn_width's, or intermediate_size for lfm2_moe
    d, n = core["d_model"], core["n_layers"]
    _restated(f, "LFM2", block_dim=d, conv_dim_out=f.int("conv_dim", default=d), num_heads=core["n_heads"],
              block_use_swiglu=True, use_pos_enc=True)
    f.get("block_norm_eps", "norm_eps", "block_mlp_init_scale", "block_out_init_scale", "block_use_xavier_init",
          "conv_use_xavier_init", default=None)  # numerics and initialization: no cost
    types = _layer_types(f, n, ("full_attention", "conv"))
    attention_at = None if moe else f.ints("full_attn_idxs", n)
    listed = None if attention_at is None else ["full_attention" if i in attention_at else "conv" for i in range(n)]
    if types is not None and listed not in (None, types):
        raise f.error("full_attn_idxs", "names other attention layers than layer_types does")
    if types is None and moe:
        raise f.error("layer_types", "is missing: LFM2-MoE's config must list each layer's kind (full_attention or "
                                     "conv)")
    types = types or listed or ["full_attention"] * n  # Lfm2Config: every layer attention where neither is given
    attention = _attention(f, core, qk_norm="head")
    conv = parts.ShortConv(f.int("conv_dim", default=d), f.int("conv_L_cache", default=3),
                           bias=f.bool("conv_bias", False))
    f.choice({"silu": "silu"}, "hidden_act", default="silu")
    tied = f.bool("tie_embedding", f.bool("tie_word_embeddings", True))
    if moe:
        core["d_ffn"] = f.int("intermediate_size", default=7168)
        dense = MLP(core["d_ffn"], "silu", prefix="feed_forward.")
        experts = MoE(experts=f.int("num_experts", default=32), top_k=f.int("num_experts_per_tok", default=4),
                      d_expert=f.int("moe_intermediate_size"), scores="sigmoid",
                      router_bias="selection" if f.bool("use_expert_bias", True) else None, bias_dtype=FP32,
                      renormalize=f.bool("norm_topk_prob", True),
                      scaled=f.number("routed_scaling_factor", default=1.0) != 1, prefix="feed_forward.",
                      first_dense=f.int("num_dense_layers", default=2, minimum=0))
    else:
        core["d_ffn"] = _lfm2_ffn_width(f)
        dense, experts = MLP(core["d_ffn"], "silu", prefix="feed_forward."), None

    def layer(i: int) -> parts.Layer:
        ffn = dense if experts is None or i < experts.first_dense else experts
        return parts.Layer((parts.Sublayer(attention if types[i] == "full_attention" else conv,
                                           "operator_norm.weight", key="attn"),
                            parts.Sublayer(ffn, "ffn_norm.weight", key="mlp")))
    return dict(**_summary_fields(core, attention), moe=experts, layers=_stack(n, layer, period=n),
                tie_embeddings=tied)


def _relu2_llama(f: Fields, *, nemotron: bool = False) -> dict:
    """Arcee's AFM (transformers' arcee) and NVIDIA's Nemotron-4 / Minitron (nemotron): Llama's attention and a plain
    MLP, down(relu(up(x))^2) with no gate, biased where mlp_bias (vLLM refuses another hidden_act). nemotron: the
    norms LayerNorm1P with a shift (weight + 1: the same FLOPs as a LayerNorm, as Gemma's 1 + w), rope over
    partial_rotary_factor of each head (0.5 by default; rope_percent and rope_percentage, vLLM's aliases),
    head_dim (or kv_channels, vLLM's alias) where heads x head_dim is not the hidden size (Minitron-8B)."""
    rotary = f.get("rope_percent", "rope_percentage", default=0.5)[1] if nemotron else None
    core = _core(f, rotary_default=rotary, head_dim_default=f.int("kv_channels", default=None) if nemotron else None)
    f.choice({"relu2": "relu2"}, "hidden_act", default="relu2")
    bias = f.bool("mlp_bias", False)
    attention = _attention(f, core)
    norm = dict(norm="layernorm", norm_bias=True) if nemotron else dict(norm="rmsnorm")
    layer = parts.pre_norm(attention, MLP(core["d_ffn"], "relu2", gated=False, bias=bias), **norm)
    return dict(**_summary_fields(core, attention), mlp="relu2", mlp_bias=bias, **norm,
                layers=Stack.uniform(layer, core["n_layers"]), tie_embeddings=f.bool("tie_word_embeddings", False))


def _bamba(f: Fields) -> dict:
    """IBM's Bamba (transformers' bamba, vLLM's bamba.py): Mamba-2 layers (the mamba_* fields, a mixer of
    mamba_expand x hidden_size, _mamba_fields) and GQA attention layers at attn_layer_indices (no biases, rope over
    half of each head: transformers pins partial_rotary_factor at 0.5), each followed by a SwiGLU of
    intermediate_size; pre-norm (input_layernorm, pre_ff_layernorm); no multipliers."""
    core = _core(f, rotary_default=0.5)
    d, n = core["d_model"], core["n_layers"]
    attention_at = set(f.ints("attn_layer_indices", n) or ())
    attention = _attention(f, core)
    mamba = _mamba_fields(f, d, f.int("mamba_expand", default=2) * d, "mamba_expand")
    f.choice({"silu": "silu"}, "hidden_act", default="silu")
    mlp = MLP(core["d_ffn"], "silu", prefix="feed_forward.")

    def layer(i: int) -> parts.Layer:
        return parts.Layer((parts.Sublayer(attention if i in attention_at else mamba, "input_layernorm.weight",
                                           key="attn"),
                            parts.Sublayer(mlp, "pre_ff_layernorm.weight", key="mlp")))
    return dict(**_summary_fields(core, attention), layers=_stack(n, layer, period=n),
                tie_embeddings=f.bool("tie_word_embeddings", False), **_state_dtype(f, "mamba_ssm_cache_dtype"))


def _fixed_head_dim(f: Fields, core: dict, who: str) -> None:
    """Set core's head_dim to hidden_size / heads, for a family whose engines ignore any other (Cohere, Jamba,
    MiniCPM); a config that gives another is refused by name."""
    width = core["d_model"] // core["n_heads"]
    if core["head_dim"] not in (None, width):
        raise f.error("head_dim", f"is {core['head_dim']}, but {who}'s attention uses hidden_size / "
                                  f"num_attention_heads = {width} (its engines ignore head_dim)")
    core["head_dim"] = width


def _unread_keys(sub: Fields, known: set[str], where: str) -> list[str]:
    """A note naming the keys of a nested block (DBRX's attn_config, a Nemotron-NAS block) the family does not
    know, or none."""
    unknown = sorted(set(sub.data) - known)
    return [f"not read from {where}: {', '.join(unknown)}"] if unknown else []


def _dt_rank(f: Fields, key: str, d: int) -> int:
    """A Mamba-1 mixer's dt_rank: the config's, or "auto", ceil(hidden_size / 16) (MambaConfig, JambaConfig)."""
    _, rank = f.get(key, default="auto")
    return -(-d // 16) if rank == "auto" else f.int(key)


def _mamba1(f: Fields, *, falcon: bool = False) -> dict:
    """state-spaces' Mamba (transformers' mamba) and TII's Falcon-Mamba (falcon_mamba; vLLM's mamba.py runs both): a
    Mamba-1 mixer after an RMSNorm in every layer, no attention, no MLP (parts.Mamba1): d_inner intermediate_size
    where given (Falcon-Mamba-7B's 8,192 beside its expand of 16, as transformers and vLLM read it), else expand x
    hidden_size; time_step_rank ("auto": ceil(hidden_size / 16)), state_size, conv_kernel, use_conv_bias, use_bias;
    falcon_mamba: weightless RMSNorms of dt, B and C. Embeddings tied unless tie_word_embeddings says otherwise.
    residual_in_fp32 is transformers' alone (vLLM keeps the residual at the model's dtype) and costs nothing here;
    mamba_ssm's original keys (n_layer, rms_norm, fused_add_norm, pad_vocab_size_multiple) restate the model."""
    d = f.int("hidden_size")
    n = f.int("num_hidden_layers", "n_layer")
    inner = f.int("intermediate_size", default=f.int("expand", default=2) * d)
    _restated(f, "Mamba", rms_norm=True)
    f.get("fused_add_norm", "pad_vocab_size_multiple", "residual_in_fp32", "time_step_scale", "time_step_init_scheme",
          "use_mambapy", "use_falcon_mambapy", "mixer_rms_eps", "use_associative_scan", default=None)  # no cost
    f.choice({"silu": "silu"}, "hidden_act", default="silu")
    mamba = parts.Mamba1(inner, f.int("state_size", default=16), _dt_rank(f, "time_step_rank", d),
                         f.int("conv_kernel", default=4), conv_bias=f.bool("use_conv_bias", True),
                         proj_bias=f.bool("use_bias", False), inner_norms="weightless" if falcon else None)
    layer = parts.Layer((parts.Sublayer(mamba, "norm.weight", key="mixer"),))
    return dict(d_model=d, n_heads=1, n_kv_heads=1, head_dim=d, d_ffn=inner, n_layers=n,
                vocab_size=f.int("vocab_size"), dtype=_dtype(f), **_weights(f), layers=Stack.uniform(layer, n),
                tie_embeddings=f.bool("tie_word_embeddings", True), **_state_dtype(f, "mamba_ssm_cache_dtype"))


def _jamba(f: Fields) -> dict:
    """AI21's Jamba (transformers' jamba, vLLM's jamba.py): layer i attends where i % attn_layer_period is
    attn_layer_offset (GQA of hidden_size / heads, no positions), else a Mamba-1 mixer of mamba_expand x hidden_size
    with weighted RMSNorms of dt, B and C (parts.Mamba1; mamba_dt_rank "auto": ceil(hidden_size / 16)); its
    feed-forward num_experts SwiGLU experts of intermediate_size where i % expert_layer_period is
    expert_layer_offset (softmax over all of them, top num_experts_per_tok, not renormalized), else a SwiGLU of
    intermediate_size; pre-norm (input_layernorm, pre_ff_layernorm); the head untied (vLLM never ties it)."""
    core = _core(f)
    d, n = core["d_model"], core["n_layers"]
    _fixed_head_dim(f, core, "Jamba")
    periods = {}
    for kind, defaults in (("attn", (8, 4)), ("expert", (2, 1))):
        period = f.int(f"{kind}_layer_period", default=defaults[0])
        offset = f.int(f"{kind}_layer_offset", default=defaults[1], minimum=0)
        if offset >= period:
            raise f.error(f"{kind}_layer_offset", f"is {offset}: it must be below {kind}_layer_period ({period})")
        periods[kind] = period, offset
    attention = _attention(f, core, rotary=False)
    mamba = parts.Mamba1(f.int("mamba_expand", default=2) * d, f.int("mamba_d_state", default=16),
                         _dt_rank(f, "mamba_dt_rank", d), f.int("mamba_d_conv", default=4),
                         conv_bias=f.bool("mamba_conv_bias", True), proj_bias=f.bool("mamba_proj_bias", False),
                         inner_norms="weighted", prefix="mamba.")
    f.choice({"silu": "silu"}, "hidden_act", default="silu")
    f.get("use_mamba_kernels", "num_logits_to_keep", default=None)  # transformers' kernel switch and logits: no cost
    experts = f.int("num_experts", "num_local_experts", default=16)
    mlp = MLP(core["d_ffn"], "silu", prefix="feed_forward.")
    moe = (MoE(experts=experts, top_k=f.int("num_experts_per_tok", default=2), d_expert=core["d_ffn"],
               prefix="feed_forward.", router_name="router") if experts > 1 else None)

    def layer(i: int) -> parts.Layer:
        (ap, ao), (ep, eo) = periods["attn"], periods["expert"]
        return parts.Layer((parts.Sublayer(attention if i % ap == ao else mamba, "input_layernorm.weight", key="attn"),
                            parts.Sublayer(moe if moe is not None and i % ep == eo else mlp, "pre_ff_layernorm.weight",
                                           key="mlp")))
    return dict(**_summary_fields(core, attention), moe=moe, layers=_stack(n, layer, period=n),
                tie_embeddings=f.bool("tie_word_embeddings", False), **_state_dtype(f, "mamba_ssm_cache_dtype"))


DBRX_KEYS = {"attn_config": {"clip_qkv", "kv_n_heads", "rope_theta", "attn_pdrop", "model_type"},
             "ffn_config": {"ffn_act_fn", "ffn_hidden_size", "moe_num_experts", "moe_top_k", "moe_jitter_eps",
                            "moe_loss_weight", "moe_normalize_expert_weights", "hidden_size", "model_type",
                            "uniform_expert_assignment"}}


def _dbrx(f: Fields) -> dict:
    """Databricks' DBRX (transformers' dbrx, vLLM's dbrx.py): d_model, n_heads, n_layers (or their Llama names), GQA
    of attn_config.kv_n_heads KV heads over a fused Wqkv, rope over whole heads, clip_qkv noted; LayerNorms with a
    scale and no shift (norm_1, norm_2, norm_f); in every layer ffn_config.moe_num_experts SwiGLU experts of
    ffn_hidden_size, top moe_top_k of softmax scores, renormalized (vLLM divides by their sum whatever
    moe_normalize_expert_weights' p, as p = 1 does; null: not renormalized in transformers, noted); the head never
    tied (transformers refuses tie_word_embeddings)."""
    d = f.int("d_model", "hidden_size")
    heads = f.int("n_heads", "num_attention_heads")
    layers = f.int("n_layers", "num_hidden_layers")
    # DbrxConfig's defaults where a block is absent (DbrxAttentionConfig(), DbrxFFNConfig())
    attn, ffn = f.optional_sub("attn_config"), f.optional_sub("ffn_config")
    notes = _unread_keys(attn, DBRX_KEYS["attn_config"], "attn_config") + _unread_keys(ffn, DBRX_KEYS["ffn_config"],
                                                                                         "ffn_config")
    if ffn.bool("uniform_expert_assignment", False):
        raise ffn.error("uniform_expert_assignment", "is true: a training-time routing switch DBRX's inference code "
                                                     "refuses")
    _, act = ffn.get("ffn_act_fn", default={"name": "silu"})
    if not isinstance(act, dict) or act.get("name", "silu") != "silu":
        raise ffn.error("ffn_act_fn", f"is {act!r}: DBRX's experts are SwiGLUs (name silu)")
    _, p = ffn.get("moe_normalize_expert_weights", default=1.0)
    ffn.get("moe_jitter_eps", "moe_loss_weight", "hidden_size", default=None)  # training knobs; hidden_size is d_model
    attn.get("rope_theta", "attn_pdrop", default=None)
    if f.bool("tie_word_embeddings", False):
        raise f.error("tie_word_embeddings", "is true: DBRX's head is never tied (transformers refuses it)")
    core = dict(d_model=d, n_heads=heads, n_kv_heads=attn.int("kv_n_heads", default=1), head_dim=d // heads,
                d_ffn=ffn.int("ffn_hidden_size", default=3584), n_layers=layers,
                vocab_size=f.int("vocab_size"), dtype=_dtype(f), **_weights(f), rotary_dim=None)
    attention = _attention(f, core)
    moe = MoE(experts=ffn.int("moe_num_experts", default=4), top_k=ffn.int("moe_top_k", default=1),
              d_expert=core["d_ffn"], renormalize=True, router_name="router.layer", prefix="ffn.")
    if p is None:
        notes.append("moe_normalize_expert_weights is null: transformers keeps the top-k weights as they are, vLLM "
                     "renormalizes them (priced as vLLM runs it)")
    layer = parts.pre_norm(attention, moe, norm="layernorm")
    return dict(**_summary_fields(core, attention), moe=moe, norm="layernorm", layers=Stack.uniform(layer, layers),
                notes=(*_clip_qkv_note(attn), *notes),
                context_window=f.int("max_seq_len", "max_position_embeddings", default=None))


def _starcoder2(f: Fields) -> dict:
    """BigCode's StarCoder2 (transformers' starcoder2, vLLM's starcoder2.py): LayerNorms with a shift, GQA and a plain
    MLP, down(gelu_tanh(up(x))), every projection biased where use_bias (true by default), a window of
    sliding_window keys in every layer; the head tied unless tie_word_embeddings says otherwise. The published
    configs' mlp_type and norm_type restate the layer; rms_norm_eps is a leftover transformers does not read."""
    core = _core(f)
    bias = f.bool("use_bias", True)
    window = f.int("sliding_window", default=None)
    attention = _attention(f, core, q_bias=bias, k_bias=bias, v_bias=bias, o_bias=bias,
                           **({"keys": Keys("sliding", window)} if window else {}))
    f.choice({"gelu_pytorch_tanh": "gelu", "gelu": "gelu"}, "hidden_act", default="gelu_pytorch_tanh")
    _restated(f, "StarCoder2", mlp_type="default", norm_type="layer_norm")
    f.get("norm_epsilon", "residual_dropout", "embedding_dropout", default=None)  # numerics and training: no cost
    layer = parts.pre_norm(attention, MLP(core["d_ffn"], "gelu", gated=False, bias=bias), norm="layernorm",
                           norm_bias=True)
    return dict(**_summary_fields(core, attention), mlp="gelu", mlp_bias=bias, norm="layernorm", norm_bias=True,
                sliding_window=window, layers=Stack.uniform(layer, core["n_layers"]),
                tie_embeddings=f.bool("tie_word_embeddings", True))


def _minicpm(f: Fields) -> dict:
    """OpenBMB's MiniCPM (MiniCPM-1B/2B, MiniCPM4, MiniCPM4.1; vLLM's minicpm.py): Llama's layer with its muP scalings
    run as vLLM runs them whatever their values: the embeddings times scale_emb, each branch's output times
    scale_depth / sqrt(layers) before its residual add (_mup_layer), lm_head's input divided by hidden_size /
    dim_model_base; head_dim is hidden_size / heads (vLLM ignores another, so another is refused). Where
    num_experts is above 0 (MiniCPM-MoE) num_experts SwiGLU experts of intermediate_size, softmax top
    num_experts_per_tok, renormalized, in every layer. MiniCPM4's sparse_config (InfLLM v2) is noted: vLLM and
    SGLang run dense attention, as priced."""
    core = _core(f)
    _fixed_head_dim(f, core, "MiniCPM")
    attention = _attention(f, core)
    ffn = _minicpm_ffn(f, core["d_ffn"])
    _, sparse = f.get("sparse_config", default=None)
    notes = ("sparse_config (InfLLM v2 sparse attention) is not run by vLLM or SGLang, which serve MiniCPM4 dense; "
             "attention is priced dense",) if sparse else ()
    return dict(**_summary_fields(core, attention), moe=ffn if isinstance(ffn, MoE) else None, notes=notes,
                layers=Stack.uniform(_mup_layer(attention, ffn), core["n_layers"]), embed_scale=True,
                head_input_scale=True, tie_embeddings=f.bool("tie_word_embeddings", True))


def _minicpm_ffn(f: Fields, width: int) -> MLP | MoE:
    """MiniCPM's muP scalars (read: vLLM multiplies by them whatever their values) and its feed-forward as vLLM's
    minicpm.py builds it: a SwiGLU of `width`, or where num_experts is above 0 (MiniCPM-MoE) num_experts SwiGLU
    experts of `width`, softmax top num_experts_per_tok, renormalized."""
    for key in ("scale_emb", "scale_depth", "dim_model_base"):
        f.number(key, default=1.0)
    f.get("mup_denominator", default=None)  # an EAGLE draft's, not the model's
    f.choice({"silu": "silu"}, "hidden_act", default="silu")
    experts = f.int("num_experts", default=0, minimum=0)
    if experts and f.get("num_experts_per_tok", default=None)[1] is None:
        raise f.error("num_experts_per_tok", f"is missing: 'num_experts' ({experts}) makes this a MoE model, and vLLM "
                                             f"needs its top-k")
    return (MoE(experts=experts, top_k=f.int("num_experts_per_tok"), d_expert=width, renormalize=True)
            if experts else MLP(width, "silu"))


def _minicpm3(f: Fields) -> dict:
    """OpenBMB's MiniCPM3 (remote code MiniCPM3ForCausalLM, model_type minicpm3: MiniCPM3-4B; vLLM's minicpm3.py):
    MiniCPM's layer and muP scalings (_minicpm_ffn, _mup_layer) around DeepSeek-V2's MLA weights (q_lora_rank,
    which vLLM needs, kv_lora_rank, qk_nope_head_dim, qk_rope_head_dim, v_head_dim: qk_nope_head_dim where absent,
    as MiniCPM3Config derives it; q_a_proj and kv_a_proj_with_mqa whole on every GPU), run as vLLM runs them outside
    its MLA backends (minicpm3 is not one of its MLA model types): multi-head attention over heads of qk_nope +
    qk_rope, V zero-padded to that width, and the cache holding both (LatentAttention.expanded). The embeddings are
    tied unless tie_word_embeddings is false (MiniCPM3Config's default)."""
    d, heads, layers = f.int("hidden_size"), f.int("num_attention_heads"), f.int("num_hidden_layers")
    nope = f.int("qk_nope_head_dim")
    mla = MLA(kv_lora_rank=f.int("kv_lora_rank"), qk_nope_head_dim=nope, qk_rope_head_dim=f.int("qk_rope_head_dim"),
              v_head_dim=f.int("v_head_dim", default=nope), q_lora_rank=f.int("q_lora_rank"))
    _rotary_dim(f, mla.qk_rope_head_dim)  # type checks only: rope turns exactly qk_rope_head_dim
    f.get("num_key_value_heads", "head_dim", default=None)  # no cost: the cache is per head, the widths MLA's
    core = dict(d_model=d, n_heads=heads, n_kv_heads=heads, d_ffn=f.int("intermediate_size"),
                n_layers=layers, vocab_size=f.int("vocab_size"), dtype=_dtype(f), **_weights(f))
    ffn = _minicpm_ffn(f, core["d_ffn"])
    attention = LatentAttention(heads, mla, expanded=True)
    if f.bool("attention_bias", False):
        raise f.error("attention_bias", "is true, but vLLM's minicpm3.py builds MLA's projections without biases")
    notes = ("vLLM's minicpm3.py runs q_a_proj and kv_a_proj_with_mqa as two GEMMs; --fusion vllm prices them as one, "
             "as DeepSeek's fused_qkv_a_proj",)
    return dict(**core, mla=mla, moe=ffn if isinstance(ffn, MoE) else None, mlp="swiglu", notes=notes,
                layers=Stack.uniform(_mup_layer(attention, ffn), core["n_layers"]), embed_scale=True,
                head_input_scale=True, tie_embeddings=f.bool("tie_word_embeddings", True))


def _aria_text(f: Fields) -> dict:
    """Rhymes AI's Aria, its language model (transformers' aria_text; vLLM's aria.py AriaTextModel): Llama's
    attention, and in every layer moe_num_experts SwiGLU experts of intermediate_size, softmax top moe_topk
    renormalized (vLLM's FusedMoE), beside a shared SwiGLU of intermediate_size x moe_num_shared_experts (biased
    where mlp_bias: vLLM's LlamaMLP). moe_intermediate_size and num_experts_per_tok, which neither transformers nor
    vLLM reads, must restate intermediate_size and moe_topk."""
    core = _core(f)
    experts, top_k = f.int("moe_num_experts"), f.int("moe_topk")
    _restated(f, "Aria", moe_intermediate_size=core["d_ffn"], num_experts_per_tok=top_k)
    if f.bool("mlp_bias", False):
        raise f.error("mlp_bias", "is true: vLLM's aria.py biases only the shared expert, transformers' none; Aria's "
                                  "config sets it false")
    f.choice({"silu": "silu"}, "hidden_act", default="silu")
    attention = _attention(f, core)
    moe = MoE(experts=experts, top_k=top_k, d_expert=core["d_ffn"], shared=f.int("moe_num_shared_experts", minimum=0),
              renormalize=True)
    return dict(**_summary_fields(core, attention), mlp="swiglu", moe=moe,
                layers=Stack.uniform(parts.pre_norm(attention, moe), core["n_layers"]),
                tie_embeddings=f.bool("tie_word_embeddings", False))


ARCTIC_TRAINING = ("moe_train_capacity_factor", "moe_eval_capacity_factor", "moe_min_capacity", "moe_token_dropping",
                   "enable_expert_tensor_parallelism", "enc_index", "quantization", "parallel_attn_mlp_res")


def _arctic(f: Fields) -> dict:
    """Snowflake's Arctic (remote code ArcticForCausalLM; vLLM's arctic.py): Llama's attention (GQA, no biases);
    layer i is MoE where (i + 1) % moe_layer_frequency is 0: num_local_experts SwiGLU experts of intermediate_size,
    softmax top num_experts_per_tok (renormalized where above 1), and where use_residual a dense SwiGLU as wide as
    the hidden size beside them (the dense-MoE hybrid; residual_layernorm); the other layers a SwiGLU of
    intermediate_size. vLLM runs the experts on post_attention_layernorm of the layer's input, the residual MLP on
    residual_layernorm of attention's residual sum, and all-reduces their partial sums once; here both branches read
    attention's residual sum (parts.Branches with reduce_once): the same ops, bytes and all-reduces. The capacity
    settings, the expert tensor parallelism flag, DeepSpeed's quantization (null in Arctic's files) and
    parallel_attn_mlp_res (vLLM takes the parallel form from use_residual) are not read by vLLM: no cost here."""
    core = _core(f)
    f.choice({"silu": "silu"}, "hidden_act", default="silu")
    for key in ARCTIC_TRAINING:
        f.get(key, default=None)
    if f.get("quantization", default=None)[1] is not None:
        raise f.error("quantization", "is set: DeepSpeed's FP6/FP8 expert quantization (vLLM's --quantization "
                                      "deepspeedfp) is not modelled; give a quantization_config or remove it")
    attention = _attention(f, core)
    d, ffn = core["d_model"], core["d_ffn"]
    freq = f.int("moe_layer_frequency", default=2)
    experts = MoE(experts=f.int("num_local_experts"), top_k=(k := f.int("num_experts_per_tok")), d_expert=ffn,
                  renormalize=k > 1)
    hybrid = parts.Layer((parts.Sublayer(attention, "input_layernorm.weight", key="attn"),
                          parts.Sublayer(parts.Branches((MLP(d, "silu", prefix="residual_mlp."), experts),
                                                        norms=("residual_layernorm.weight",
                                                               "post_attention_layernorm.weight"), reduce_once=True),
                                         key="mlp")))
    moe_layer = hybrid if f.bool("use_residual", False) else parts.pre_norm(attention, experts)
    dense = parts.pre_norm(attention, MLP(ffn, "silu"))
    layers = _stack(core["n_layers"], lambda i: moe_layer if (i + 1) % freq == 0 else dense, period=freq,
                    what="moe_layer_frequency")
    return dict(**_summary_fields(core, attention), mlp="swiglu", moe=experts, layers=layers,
                tie_embeddings=f.bool("tie_word_embeddings", False),
                context_window=_context_within(f, "max_sequence_length"))


MOLMO_ADDED_ROWS = 128  # vLLM's molmo.py ADDITIONAL_VOCAB_SIZE: the image tokens' rows after embedding_size


def _molmo(f: Fields) -> dict:
    """AllenAI's Molmo (remote code MolmoForCausalLM, its language model's fields at the top level; vLLM's molmo.py):
    Llama's layer with q, k and v biased where qkv_bias, an RMSNorm of the whole q and k projections where
    attention_layer_norm (vLLM all-gathers them for it under --tp, not counted), OLMo-2's norms after each branch
    where norm_after; a SwiGLU whose two branches are each intermediate_size / 2 wide (vLLM's LanguageModelMLP);
    head_dim hidden_size / heads; an embedding table of embedding_size + 128 rows (the image tokens'), lm_head of
    embedding_size untied unless weight_tying. clip_qkv is training's: vLLM does not clamp."""
    core = _core(f)
    _fixed_head_dim(f, core, "Molmo")
    if f.int("moe_num_experts", default=0, minimum=0):
        raise f.error("moe_num_experts", "is set: MolmoE's experts (OLMoE's layer, its remote modeling_molmoe.py) are "
                                         "not modelled, and vLLM's molmo.py builds a dense model")
    f.choice({"rms": "rms"}, "layer_norm_type", default="rms")  # vLLM asserts it
    _halved_ffn(f, core)
    core["vocab_size"] = f.int("embedding_size", default=core["vocab_size"])
    f.get("clip_qkv", "use_position_ids", default=None)
    bias = f.bool("qkv_bias", False)
    attention = _attention(f, core, q_bias=bias, k_bias=bias, v_bias=bias, o_bias=False,
                           qk_norm="full" if f.bool("attention_layer_norm", False) else None)
    tied = f.bool("weight_tying", False)
    if f.bool("tie_word_embeddings", tied) != tied:
        raise f.error("tie_word_embeddings", "disagrees with weight_tying, which vLLM's molmo.py reads; give one")
    mlp = MLP(core["d_ffn"], "silu")
    layer = parts.post_norm(attention, mlp) if f.bool("norm_after", False) else parts.pre_norm(attention, mlp)
    return dict(**_summary_fields(core, attention), mlp="swiglu", layers=Stack.uniform(layer, core["n_layers"]),
                tie_embeddings=tied, embed_rows=0 if tied else MOLMO_ADDED_ROWS,
                notes=("the language model (the top level's fields) is costed; the vision backbone and image "
                       "projector of this molmo checkpoint are not",))


def _internlm1(f: Fields) -> dict:
    """Shanghai AI Lab's first InternLM (remote code InternLMForCausalLM, model_type internlm: InternLM-7B and 20B;
    vLLM runs it as Llama, llama.py): Llama's layer with biases on q, k, v and o where bias is true (InternLMConfig's
    default and InternLM-7B's; InternLM-20B sets it false), as llama.py reads `bias`. Its `rotary` ({"base",
    "type": "dynamic"}, dynamic NTK past the trained length) is rope's and costs nothing; vLLM runs it unscaled."""
    core = _core(f)
    bias = f.bool("bias", True)
    _, rotary = f.get("rotary", default={})
    if not isinstance(rotary, dict):
        raise f.error("rotary", f"must be an object (base, type) or null, got {rotary!r}")
    f.choice({"silu": "silu"}, "hidden_act", default="silu")
    attention = _attention(f, core, q_bias=bias, k_bias=bias, v_bias=bias, o_bias=bias)
    return dict(**_summary_fields(core, attention), mlp="swiglu",
                layers=Stack.uniform(parts.pre_norm(attention, MLP(core["d_ffn"], "silu")), core["n_layers"]),
                tie_embeddings=f.bool("tie_word_embeddings", False))


def _internlm(f: Fields, *, v3: bool = False) -> dict:
    """Shanghai AI Lab's InternLM2 / 2.5 (internlm2: a fused wqkv in its grouped layout, the same FLOPs as q, k and
    v; vLLM's internlm2.py) and InternLM3 (internlm3: Llama's names; vLLM runs it as Llama): Llama's layer, the head
    untied unless tie_word_embeddings says otherwise. Biases (internlm2's bias, internlm3's bias) are refused by
    name: vLLM drops InternLM2's and puts InternLM3's on other projections than transformers does; InternLM3's
    qkv_bias biases q, k and v. Under tensor parallelism vLLM's internlm2.py also all-gathers each layer's qkv
    activations to re-split the grouped wqkv, which is noted and not counted."""
    core = _core(f)
    if f.bool("bias", not v3):
        given = "is true" if "bias" in f.data else "is not given, and InternLM2Config's default is true"
        raise f.error("bias", f"{given}: transformers' remote code adds these biases and vLLM does not (InternLM2) "
                              f"or adds them elsewhere (InternLM3); published InternLM models set it false")
    qkv = v3 and f.bool("qkv_bias", False)
    attention = _attention(f, core, q_bias=qkv, k_bias=qkv, v_bias=qkv, o_bias=False)
    f.choice({"silu": "silu"}, "hidden_act", default="silu")
    f.get("attn_implementation", default=None)  # transformers' kernel choice
    notes = () if v3 else ("under --tp, vLLM's internlm2.py all-gathers each layer's qkv to re-split the grouped "
                           "wqkv (one all-gather of (heads + 2 x KV heads) x head_dim a token), not counted",)
    return dict(**_summary_fields(core, attention), mlp="swiglu", notes=notes,
                layers=Stack.uniform(parts.pre_norm(attention, MLP(core["d_ffn"], "silu")), core["n_layers"]),
                tie_embeddings=f.bool("tie_word_embeddings", False))


def _phimoe(f: Fields) -> dict:
    """Microsoft's Phi-3.5-MoE (transformers' phimoe, vLLM's phimoe.py): LayerNorms with a shift; GQA with biases on
    q, k, v and o where attention_bias (vLLM always builds them); a window of sliding_window keys; in every layer
    num_local_experts SwiGLU experts of intermediate_size, top num_experts_per_tok (2) by sparsemixer, its softmax
    weights not renormalized (priced as a softmax router); lm_head biased where lm_head_bias, the bias counted and
    added as transformers adds it (vLLM, as read, loads it without adding it). Longrope scaling costs nothing; the
    jitter noises are training's (router_jitter_noise is sparsemixer's threshold at inference: no cost)."""
    core = _core(f)
    window = f.int("sliding_window", default=None)
    attention = _attention(f, core, **({"keys": Keys("sliding", window)} if window else {}))
    f.choice({"silu": "silu"}, "hidden_act", default="silu")
    f.get("input_jitter_noise", default=None)
    moe = MoE(experts=f.int("num_local_experts", default=16), top_k=f.int("num_experts_per_tok", default=2),
              d_expert=core["d_ffn"], prefix="block_sparse_moe.")
    return dict(**_summary_fields(core, attention), moe=moe, norm="layernorm", norm_bias=True, sliding_window=window,
                layers=Stack.uniform(parts.pre_norm(attention, moe, norm="layernorm", norm_bias=True),
                                     core["n_layers"]),
                tie_embeddings=f.bool("tie_word_embeddings", False), head_bias=f.bool("lm_head_bias", False))


def _apertus(f: Fields) -> dict:
    """Swiss AI's Apertus (transformers' apertus, vLLM's apertus.py): Llama's layer with q and k RMS-normed per head
    before rope (one scale of a head's width), its norms named attention_layernorm and feedforward_layernorm, and a
    plain MLP, down(xielu(up(x))) with no gate; xIELU's four learned scalars a layer are in the checkpoint
    (pieces.ACT_PARAMS). Biases where attention_bias, and on up and down where mlp_bias (vLLM reads it). The
    published configs' qk_norm and post_norm restate the layer (_restated); hidden_act must be xielu."""
    core = _core(f)
    f.choice({"xielu": "xielu"}, "hidden_act", default="xielu")
    _restated(f, "Apertus", qk_norm=True, post_norm=False)
    attention = _attention(f, core, qk_norm="head")
    bias = f.bool("mlp_bias", False)
    layer = parts.Layer((parts.Sublayer(attention, "attention_layernorm.weight", key="attn"),
                         parts.Sublayer(MLP(core["d_ffn"], "xielu", gated=False, bias=bias),
                                        "feedforward_layernorm.weight", key="mlp")))
    return dict(**_summary_fields(core, attention), mlp="xielu", mlp_bias=bias,
                layers=Stack.uniform(layer, core["n_layers"]), tie_embeddings=f.bool("tie_word_embeddings", False))


def _cohere(f: Fields, *, v2: bool = False) -> dict:
    """Cohere's Command R and R+ (transformers' cohere) and Command R7B and A (cohere2; vLLM's commandr.py serves
    both): a parallel block, x + attention(ln(x)) + mlp(ln(x)) under one input_layernorm, a LayerNorm with a scale
    and no shift (CohereLayerNorm), as is the final norm; GQA, head_dim hidden_size / heads (Cohere2Config overwrites
    a given head_dim and vLLM ignores it, so another is refused); a SwiGLU; embeddings tied unless
    tie_word_embeddings says otherwise; the logits times logit_scale, one multiply a logit where it is not 1 (vLLM's
    LogitsProcessor skips 1). cohere: per-head LayerNorms of q and k before rope where use_qk_norm, each head with a
    scale of its own (Command R+). cohere2: the layers layer_types (or sliding_window_pattern, default 4: every
    4th is full) names sliding_attention see sliding_window keys (default 4,096) and apply rope; the full ones none
    (NoPE). Under tensor parallelism o_proj and down_proj each all-reduce (vLLM's RowParallelLinear), two a layer.
    Cohere's own keys that restate this architecture (use_parallel_block, use_gated_activation, rotary_pct,
    position_embedding_type, order_of_interleaved_layers) are checked, since a config that contradicts them
    describes a model the reference code does not build."""
    core = _core(f)
    n = core["n_layers"]
    _fixed_head_dim(f, core, "Cohere")
    _restated(f, "Cohere", use_parallel_block=True, use_gated_activation=True, rotary_pct=1.0,
              position_embedding_type="rope_gptj", order_of_interleaved_layers="local_attn_first")
    f.get("use_embedding_sharing", "use_parallel_embedding", "layer_switch", default=None)  # engine hints: no cost
    attention = _attention(f, core, qk_norm="head_layernorm" if not v2 and f.bool("use_qk_norm", False) else None)
    attention_at = (_windowed_nope(f, n, attention, window_default=4096, pattern_default=4) if v2
                    else lambda i: attention)
    mlp = MLP(core["d_ffn"], _gated_act(f))

    def layer(i: int) -> parts.Layer:
        block = parts.Branches((attention_at(i), mlp))
        return parts.Layer((parts.Sublayer(block, "input_layernorm.weight", key="attn"),), "layernorm")
    return dict(**_summary_fields(core, attention), mlp=_gated(f), norm="layernorm",
                tie_embeddings=f.bool("tie_word_embeddings", True), layers=_stack(n, layer, period=n),
                logit_scale=f.number("logit_scale", default=0.0625) != 1)


def _glm4(f: Fields) -> dict:
    """Zhipu's GLM-4-0414 and GLM-Z1 (transformers' glm4, vLLM's glm4.py): four RMSNorms a layer (input_layernorm,
    post_self_attn_layernorm after attention, post_attention_layernorm before the MLP, post_mlp_layernorm after
    it), q, k and v biased where attention_bias (o_proj never), rope over partial_rotary_factor of each head, one
    gate_up_proj."""
    core = _core(f)
    attention = _attention(f, core, o_bias=False)
    names = ("input_layernorm", "post_self_attn_layernorm", "post_attention_layernorm", "post_mlp_layernorm")
    layer = parts.sandwich_norm(attention, MLP(core["d_ffn"], _gated_act(f)), names)
    return dict(**_summary_fields(core, attention), mlp=_gated(f), layers=Stack.uniform(layer, core["n_layers"]),
                tie_embeddings=f.bool("tie_word_embeddings", False))


def _glm(f: Fields) -> dict:
    """Zhipu's GLM-4-9B-chat-hf and GLM-4-9B-hf (transformers' glm, vLLM's glm.py): Llama's layer with q, k and v
    biased where attention_bias (true by default; o_proj never), rope over partial_rotary_factor (0.5) of each
    head, one gate_up_proj. vLLM runs rope over half of each head whatever partial_rotary_factor says; another
    value is noted."""
    core = _core(f, rotary_default=0.5)
    bias = f.bool("attention_bias", True)
    attention = _attention(f, core, q_bias=bias, k_bias=bias, v_bias=bias, o_bias=False)
    head_dim = core["head_dim"] or core["d_model"] // core["n_heads"]
    notes = (f"vLLM's glm.py rotates half of each head ({head_dim // 2} dims) whatever partial_rotary_factor says "
             f"({core['rotary_dim']} dims here); priced as the config says",) \
        if core["rotary_dim"] not in (None, head_dim // 2) else ()
    return dict(**_summary_fields(core, attention), mlp=_gated(f), notes=notes,
                layers=Stack.uniform(parts.pre_norm(attention, MLP(core["d_ffn"], _gated_act(f))), core["n_layers"]),
                tie_embeddings=f.bool("tie_word_embeddings", False))


def _chatglm(f: Fields) -> dict:
    """Zhipu's ChatGLM2/3, GLM-4-9B-chat and CodeGeeX4 in their first, remote-code format (ChatGLMModel; vLLM's
    chatglm.py, which registers the config itself): num_layers layers of RMSNorms (a LayerNorm with a shift where
    rmsnorm is false); one query_key_value over num_attention_heads heads of kv_channels and, where
    multi_query_attention, multi_query_group_num KV heads (else every head), biased where add_qkv_bias or
    add_bias_linear; rope over half of each head; dense, and a SwiGLU of ffn_hidden_size, biased where
    add_bias_linear; a final norm where post_layer_norm; output_layer untied unless tie_word_embeddings; the
    vocabulary padded_vocab_size. P-tuning prefixes (pre_seq_len), a vision tower (GLM-4V's vision_config) and a
    multi-head checkpoint (vLLM loads its interleaved qkv wrongly) are refused by name; quantization_bit (the
    reference's in-place int4/int8, which vLLM does not run) is noted."""
    d = f.int("hidden_size")
    heads = f.int("num_attention_heads")
    layers = f.int("num_layers", "num_hidden_layers")
    head_dim = f.int("kv_channels", default=d // heads)
    if head_dim * heads != d:
        raise f.error("kv_channels", f"x num_attention_heads ({head_dim} x {heads}) is not hidden_size ({d}): vLLM's "
                                     f"chatglm.py takes heads of hidden_size / num_attention_heads")
    if not f.bool("multi_query_attention", False):
        raise f.error("multi_query_attention", "is false: a multi-head ChatGLM checkpoint (its per-head interleaved "
                                               "query_key_value) is not modelled; published ChatGLM2/3 and GLM-4 "
                                               "checkpoints set it true")
    for key, why in (("pre_seq_len", "a P-tuning v2 prefix (its prefix KV a layer)"),
                     ("vision_config", "GLM-4V's vision tower, which ChatGLMModel refuses")):
        if f.get(key, default=None)[1] is not None:
            raise f.error(key, f"is set: {why} is not modelled")
    f.get("prefix_projection", default=None)  # read only with pre_seq_len
    both = f.bool("add_bias_linear", False)
    qkv = both or f.bool("add_qkv_bias", False)
    rms = f.bool("rmsnorm", True)
    core = dict(d_model=d, n_heads=heads, n_kv_heads=f.int("multi_query_group_num", default=1),
                d_ffn=f.int("ffn_hidden_size"), n_layers=layers,
                vocab_size=f.int("padded_vocab_size", "vocab_size"), head_dim=head_dim, dtype=_dtype(f),
                **_weights(f), rotary_dim=head_dim // 2)
    attention = _attention(f, core, q_bias=qkv, k_bias=qkv, v_bias=qkv, o_bias=both)
    norm = dict(norm="layernorm", norm_bias=True) if not rms else {}
    layer = parts.pre_norm(attention, MLP(core["d_ffn"], "silu", bias=both), **norm)
    # numerics, training and the rope base: no cost
    f.get("apply_query_key_layer_scaling", "attention_softmax_in_fp32", "fp32_residual_connection", "rope_ratio",
          "original_rope", "bias_dropout_fusion", "classifier_dropout", "interleaved_qkv",
          "apply_residual_connection_post_layernorm", default=None)
    bits = f.int("quantization_bit", default=0, minimum=0)
    notes = (f"quantization_bit {bits}: the reference quantizes its weights in place at load; vLLM does not, and "
             f"they are priced at the checkpoint's dtype",) if bits else ()
    return dict(**_summary_fields(core, attention), mlp="swiglu", mlp_bias=both, **norm, notes=notes,
                layers=Stack.uniform(layer, layers), final_norm=f.bool("post_layer_norm", True),
                context_window=f.int("seq_length", default=None), tie_embeddings=f.bool("tie_word_embeddings", False))


def _dots1(f: Fields) -> dict:
    """rednote's dots.llm1 (transformers' dots1, vLLM's dots1.py): Qwen3's attention (per-head q/k norms before rope;
    a sliding window from max_window_layers on where sliding_window is set) and DeepSeek-V3's MoE: dense below
    first_k_dense_replace, then n_routed_experts of moe_intermediate_size, picked by sigmoid scores plus a selection
    bias (e_score_correction_bias), renormalized (norm_topk_prob) and scaled (routed_scaling_factor), beside
    n_shared_experts. Its configs say scoring_func "noaux_tc"; the reference's Dots1TopkRouter takes a sigmoid
    whatever it says."""
    core = _core(f)
    n = core["n_layers"]
    bias = f.bool("attention_bias", False)
    attention = _attention(f, core, q_bias=bias, k_bias=bias, v_bias=bias, o_bias=bias, qk_norm="head")
    window = f.int("sliding_window", default=None)
    start = f.int("max_window_layers", default=n, minimum=0) if window else n
    f.bool("use_sliding_window", False)  # transformers' Dots1 windows by sliding_window and max_window_layers alone
    f.choice({"noaux_tc": "sigmoid", "sigmoid": "sigmoid"}, "scoring_func", default="sigmoid")
    groups = f.int("n_group", default=1)
    if groups > 1:
        f.int("topk_group")
    moe = MoE(experts=f.int("n_routed_experts"), top_k=f.int("num_experts_per_tok"),
              d_expert=f.int("moe_intermediate_size"), shared=f.int("n_shared_experts", default=0, minimum=0),
              first_dense=f.int("first_k_dense_replace", default=0, minimum=0),
              layer_freq=f.int("moe_layer_freq", default=1), router_bias="selection", scores="sigmoid", groups=groups,
              renormalize=f.bool("norm_topk_prob", False),
              scaled=f.number("routed_scaling_factor", default=1.0) != 1.0, act=_gated_act(f))
    sliding = attrs.evolve(attention, keys=Keys("sliding", window)) if window else attention
    dense = MLP(core["d_ffn"], _gated_act(f))
    stack = _stack(n, lambda i: parts.pre_norm(sliding if i >= start else attention, moe if moe.placed(i) else dense),
                   period=n)
    return dict(**_summary_fields(core, attention), mlp=_gated(f), moe=moe, layers=stack,
                tie_embeddings=f.bool("tie_word_embeddings", False))


def _gated_act(f: Fields, default: str = "silu") -> str:
    return ACTIVATIONS[_gated(f, default)]


def _qwen3_next(f: Fields) -> dict:
    """Qwen3-Next / Qwen3.5: Gated DeltaNet layers with a gated full-attention layer every
    full_attention_interval (or as layer_types says); attention with per-head q/k norms, partial rotary and a
    sigmoid output gate (attn_output_gate); MoE with a gated shared expert (modular_qwen3_next.py). A checkpoint
    without dense layers may omit intermediate_size (Qwen3.5): the experts' width stands in for listings."""
    # Qwen3NextConfig's defaults where a checkpoint omits them: head_dim 256, a quarter of it rotated. Without
    # num_experts (Qwen3.5-27B) every layer has a dense MLP of intermediate_size (modeling_qwen3_5.py).
    moe = f.get("num_experts", default=None)[1] is not None
    core = _core(f, ffn_default=f.int("moe_intermediate_size") if moe else _MISSING, head_dim_default=256,
                 rotary_default=0.25)
    n = core["n_layers"]
    kinds = _layer_types(f, n, ("linear_attention", "full_attention"))
    if kinds is None:
        every = f.int("full_attention_interval", default=4)
        kinds = ["full_attention" if (i + 1) % every == 0 else "linear_attention" for i in range(min(n, every))]
    else:
        f.get("full_attention_interval", default=None)
    full = _attention(f, core, qk_norm="head", gate=f.bool("attn_output_gate", True))
    linear = DeltaNet(f.int("linear_num_key_heads"), f.int("linear_num_value_heads"), f.int("linear_key_head_dim"),
                      f.int("linear_value_head_dim"), f.int("linear_conv_kernel_dim", default=4))
    ffn, ffn_period = _qwen_ffn(f, n, _qwen_moe(f, shared=True, renormalize=True) if moe else None,
                                MLP(core["d_ffn"], _gated_act(f)))
    # The mixers' pattern (the interval's, or the list) repeats; so does the MoE placement: both at once.
    stack = _stack(n, lambda i: parts.pre_norm(full if kinds[i % len(kinds)] == "full_attention" else linear, ffn(i)),
                   period=period_of(len(kinds), ffn_period), what="full_attention_interval")
    return dict(**_summary_fields(core, full), mlp=_gated(f), layers=stack,
                tie_embeddings=f.bool("tie_word_embeddings", False),
                **_state_dtype(f, "mamba_ssm_dtype"),
                # Qwen3-Next's published config names no MTP layer though its checkpoint ships one: vLLM's
                # qwen3_next_mtp.py and SGLang's model_config.py take 1 where the config is silent.
                **_mtp(f, "mtp_num_hidden_layers", default=1))


def _minimax_rotary(f: Fields, core: dict) -> tuple[int, int, int | None]:
    """(layers, head_dim, the dims rope turns: None for all) of a MiniMax config, whose rotary_dim (or
    partial_rotary_factor) names them."""
    n, head_dim = core["n_layers"], core["head_dim"] or core["d_model"] // core["n_heads"]
    rotary = f.int("rotary_dim", default=core["rotary_dim"] or head_dim)
    if rotary > head_dim:
        raise f.error("rotary_dim", f"({rotary}) must be at most 'head_dim' ({head_dim})")
    if core["rotary_dim"] not in (None, rotary):
        raise f.error("rotary_dim", f"({rotary}) disagrees with 'partial_rotary_factor' ({core['rotary_dim']} dims "
                                    f"of {head_dim})")
    return n, head_dim, None if rotary == head_dim else rotary


def _minimax_m2(f: Fields) -> dict:
    """MiniMax-M2 (MiniMaxAI's modeling_minimax_m2.py; vLLM's minimax_m2.py): GQA attention with an RMSNorm over
    the whole q and the whole k projection (use_qk_norm, qk_norm_type "per_layer"; under tensor parallelism each
    row's sum of squares is all-reduced, MiniMaxText01RMSNormTP) and rope over the first rotary_dim dims of each
    head; every layer a MoE of num_local_experts experts of intermediate_size, top num_experts_per_tok by
    sigmoid (or softmax) scores with a selection bias where use_routing_bias, their weights renormalized (the
    reference always divides by their sum) and scaled by routed_scaling_factor. attn_type_list marks each layer's
    attention: 1 softmax attention; 0, MiniMax-Text-01's lightning attention, is refused (its family is
    _minimax_01). The multi-token-prediction modules (use_mtp: num_mtp_modules of mtp_transformer_layers) are not
    counted."""
    core = _core(f)
    n, head_dim, core["rotary_dim"] = _minimax_rotary(f, core)
    kinds = f.ints("attn_type_list", n)
    if kinds is not None and (len(kinds) != n or set(kinds) - {1}):
        raise f.error("attn_type_list", f"must list 1 (softmax attention) for each of the {n} layers: MiniMax-M2's "
                                        f"reference code runs no lightning attention (0); a checkpoint with lightning "
                                        f"layers is MiniMax-Text-01's or MiniMax-M1's (model_type minimax_text_01 or "
                                        f"minimax_m1)")
    qk = f.choice({"per_layer": "full_reduced"}, "qk_norm_type", default="per_layer") if f.bool("use_qk_norm", False) \
        else None
    attention = _attention(f, core, qk_norm=qk)
    if f.int("shared_intermediate_size", default=0, minimum=0):
        raise f.error("shared_intermediate_size", "is set: MiniMax-M2's reference code runs no shared expert")
    grouped = f.bool("use_grouped_topk", False)
    moe = MoE(experts=f.int("num_local_experts"), top_k=f.int("num_experts_per_tok"), d_expert=f.int("intermediate_size"),
              scores=_scores(f, default="softmax"),
              router_bias="selection" if f.bool("use_routing_bias", False) else None, renormalize=True,
              scaled=f.number("routed_scaling_factor", default=1.0) != 1.0,
              groups=f.int("num_expert_group", default=1) if grouped else 1, act=_gated_act(f),
              shared_name="shared_experts")
    if grouped:
        f.int("topk_group", default=1)
    mtp = f.int("num_mtp_modules", default=0, minimum=0) * f.int("mtp_transformer_layers", default=1) \
        if f.bool("use_mtp", False) else 0
    return dict(**_summary_fields(core, attention), mlp=_gated(f), layers=Stack.uniform(parts.pre_norm(attention, moe), n),
                tie_embeddings=f.bool("tie_word_embeddings", False), **_mtp(f, layers=mtp))


def _lightning_head_dim(f: Fields, head_dim: int) -> None:
    """Refuse, by the config's field, a lightning layer's head width the kernels do not run in one pass."""
    if head_dim not in LIGHTNING_HEAD_DIMS:
        raise f.error("head_dim", f"is {head_dim}: vLLM's lightning-attention kernels run heads of "
                                  f"{' or '.join(map(str, LIGHTNING_HEAD_DIMS))} in one pass, and wider ones in "
                                  f"passes that are not modelled")


# MiniMax-01's residual constants (alpha, beta) of its attention, lightning and MLP sublayers, in the remote code's
# names and transformers'
MINIMAX_01_RESIDUALS = {
    "minimax": tuple((f"{k}_alpha_factor", f"{k}_beta_factor") for k in ("full_attn", "linear_attn", "mlp")),
    "remote": tuple((f"layernorm_{k}_alpha", f"layernorm_{k}_beta")
                    for k in ("full_attention", "linear_attention", "mlp"))}


def _minimax_01(f: Fields) -> dict:
    """MiniMax-Text-01 and MiniMax-M1 (model_type minimax_text_01 and minimax_m1, their modeling files; minimax,
    transformers' conversion; vLLM's minimax_text_01.py, which runs all three; arXiv 2501.08313 and 2506.13585):
    lightning-attention layers (parts.Lightning) with a softmax-attention layer where attn_type_list says 1
    (transformers: layer_types), GQA with rope over the first rotary_dim dims of each head; every layer a MoE of
    num_local_experts SwiGLU experts of intermediate_size, top num_experts_per_tok of softmax scores renormalized,
    the router in fp32 (as the checkpoint stores it and vLLM runs it). Each sublayer's residual is
    alpha x (its input, or where postnorm its normed input) + beta x its output, three multiply-adds an element as
    vLLM runs them whatever alpha and beta are. lm_head in fp32 (vLLM's lm_head.float(); M1's report: "we
    increased the precision of the LM output head to FP32")."""
    hf = f.data.get("model_type") == "minimax"
    core = _core(f)
    n, head_dim, core["rotary_dim"] = _minimax_rotary(f, core)
    if hf:
        kinds = _layer_types(f, n, ("linear_attention", "full_attention"))
        if kinds is None:
            raise f.error("layer_types", "is missing: it says which layers run lightning attention")
        softmax = [k == "full_attention" for k in kinds]
    else:
        listed = f.flags("attn_type_list", n)
        softmax = [k == 1 for k in listed]
    if f.int("shared_intermediate_size", default=0, minimum=0):
        raise f.error("shared_intermediate_size", "is set: MiniMax-01's shared MLP (shared_moe_mode) is not modelled")
    f.get("shared_moe_mode", default=None)  # how a shared MLP would join the experts: none here (above)
    if f.get("sliding_window", default=None)[1] is not None:
        raise f.error("sliding_window", "is set: MiniMax-01's softmax attention has no window")
    for alpha, beta in MINIMAX_01_RESIDUALS["minimax" if hf else "remote"]:
        f.number(alpha, default=1.0), f.number(beta, default=1.0)  # multiplied whatever their values
    # transformers' decoder layer always carries the normed input; vLLM and the remote code read postnorm
    normed = True if hf else f.bool("postnorm", False)
    block = f.int("block_size", default=LIGHTNING_BLOCK)
    notes = ("lm_head in fp32 (4 bytes a weight), as vLLM runs MiniMax-01's (lm_head.float())",)
    if block != LIGHTNING_BLOCK:
        notes += (f"block_size {block} is priced as vLLM runs it: its prefill kernels take blocks of "
                  f"{LIGHTNING_BLOCK} positions whatever the config says",)
    if not all(softmax):
        _lightning_head_dim(f, head_dim)
    attention = _attention(f, core)
    lightning = parts.Lightning(core["n_heads"], head_dim)
    moe = MoE(experts=f.int("num_local_experts"), top_k=f.int("num_experts_per_tok"),
              d_expert=f.int("intermediate_size"), renormalize=True, router_dtype=FP32, act=_gated_act(f),
              prefix="block_sparse_moe.")

    def layer(mixer) -> parts.Layer:
        carry = "normed" if normed else "input"
        return parts.Layer((parts.Sublayer(mixer, "input_layernorm.weight", key="attn", scale=True, carry=carry),
                            parts.Sublayer(moe, "post_attention_layernorm.weight", key="mlp", scale=True,
                                           carry=carry)))

    stack = _stack(n, lambda i: layer(attention if softmax[i] else lightning), period=n)
    return dict(**_summary_fields(core, attention), mlp=_gated(f), layers=stack, head_fp32=True,
                tie_embeddings=f.bool("tie_word_embeddings", False), notes=notes)


def _mimo_v2_flash(f: Fields) -> dict:
    """MiMo-V2-Flash (Xiaomi; transformers' modeling_mimo_v2_flash.py, vLLM's and SGLang's mimo_v2_flash.py): full
    and sliding-window attention layers as hybrid_layer_pattern says (0 full, 1 sliding), each kind with its own
    heads and head widths (num_key_value_heads, head_dim, v_head_dim; swa_num_attention_heads,
    swa_num_key_value_heads, swa_head_dim, swa_v_head_dim): q and k of head_dim, v of v_head_dim, rope on the first
    int(head_dim x partial_rotary_factor) dims, v times attention_value_scale before attention (`v = v *
    self.v_scale`), a learned sink per head where add_swa_attention_sink_bias / add_full_attention_sink_bias say.
    Where moe_layer_freq is 0 a SwiGLU MLP of intermediate_size, else n_routed_experts of moe_intermediate_size
    routed as DeepSeek-V3's router reads (sigmoid scores, e_score_correction_bias choosing, renormalized), its
    weight kept in fp32 as the engines build it, and n_shared_experts (null: none). The multi-token-prediction
    layers (num_nextn_predict_layers) are not counted."""
    core = _core(f)
    n, heads, head_dim = core["n_layers"], core["n_heads"], core["head_dim"] or core["d_model"] // core["n_heads"]

    pattern, moe_at = f.flags("hybrid_layer_pattern", n), f.flags("moe_layer_freq", n)
    if f.bool("use_qk_norm", False):
        raise f.error("use_qk_norm", "is true: MiMo-V2-Flash's reference attention has no q or k norm")
    f.number("swa_rope_theta")  # a rope base: the same ops whatever its value
    scaled = f.number("attention_value_scale") is not None
    v_dim = f.int("v_head_dim", default=head_dim)
    full = _attention(f, core, v_head_dim=v_dim, v_scale=scaled, sinks=f.bool("add_full_attention_sink_bias", False))
    swa_dim = f.int("swa_head_dim", default=head_dim)
    window = {k: f.int(k) for k in ("sliding_window", "sliding_window_size") if f.data.get(k) is not None}
    if len(set(window.values())) != 1:
        raise f.error("sliding_window", f"and 'sliding_window_size' must give one window, got {window or 'neither'}")
    (size,) = set(window.values())
    sliding = attrs.evolve(full, heads=f.int("swa_num_attention_heads", default=heads),
                           kv_heads=f.int("swa_num_key_value_heads", default=core["n_kv_heads"]), head_dim=swa_dim,
                           v_head_dim=f.int("swa_v_head_dim", default=v_dim), rotary_dim=_rotary_dim(f, swa_dim),
                           keys=Keys("sliding", size), sinks=f.bool("add_swa_attention_sink_bias", False))
    mlp = MLP(core["d_ffn"], _gated_act(f))
    moe = MoE(d_expert=f.int("moe_intermediate_size"), shared=f.int("n_shared_experts", default=0, minimum=0),
              router_dtype=FP32, act=_gated_act(f), **_deepseek_router(f, v3=True))
    stack = _stack(n, lambda i: parts.pre_norm(sliding if pattern[i] else full, moe if moe_at[i] else mlp), period=n)
    return dict(**_summary_fields(core, full), mlp=_gated(f), layers=stack,
                tie_embeddings=f.bool("tie_word_embeddings", False), **_mtp(f))


def _gpt_oss(f: Fields) -> dict:
    """gpt-oss: attention with biases and a learned sink per head, sliding (128) and full layers alternating as
    layer_types says; MoE of experts_per_token routed experts with biases, a router with a bias, softmax over the
    chosen k, and the clamped SwiGLU (swiglu_limit) of openai/gpt-oss's reference code."""
    core = _core(f)
    n = core["n_layers"]
    types = _layer_types(f, n) or ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(n)]
    full = _attention(f, core, sinks=True)
    sliding = attrs.evolve(full, keys=Keys("sliding", f.int("sliding_window")))
    f.number("swiglu_limit")  # the clamp's bound: the same ops whatever its value
    moe = MoE(experts=f.int("num_local_experts"), top_k=f.int("num_experts_per_tok", "experts_per_token"),
              d_expert=f.int("intermediate_size"), router_bias="linear", expert_bias=True, act="clamp_swiglu",
              router_name="router")
    stack = _stack(n, lambda i: parts.pre_norm(sliding if types[i] == "sliding_attention" else full, moe), period=n)
    return dict(**_summary_fields(core, full), layers=stack, moe=None, tie_embeddings=f.bool("tie_word_embeddings", False))


def _gemma(f: Fields) -> dict:
    """Gemma: GeGLU, tied embeddings, head_dim 256 unless given (the HF GemmaConfig defaults), embeddings
    scaled by sqrt(hidden_size)."""
    return dict(**_core(f, head_dim_default=256), mlp=_gated(f, default="gelu_pytorch_tanh"),
                tie_embeddings=f.bool("tie_word_embeddings", True), embed_scale=True)


def _gemma2(f: Fields, *, v3: bool = False, vault: bool = False) -> dict:
    """Gemma-2 / Gemma-3: sandwich norms (a norm before and after attention and the MLP), GeGLU, embeddings
    scaled by sqrt(hidden_size), tied embeddings; sliding-window and global layers as layer_types says, else
    Gemma-2's alternation (even layers slide) or Gemma-3's sliding_window_pattern (every 6th layer global).
    Gemma-2 soft-caps attention scores and the final logits; Gemma-3 has per-head q/k norms instead. Defaults
    for fields a checkpoint omits are transformers' Gemma2Config / Gemma3TextConfig ones. `vault`: Google's
    VaultGemma (transformers' vaultgemma), Gemma-2's attention and MLP in pre-norm layers (input_layernorm,
    pre_feedforward_layernorm; no norms after)."""
    core = _core(f, head_dim_default=256, vocab_default=262_208 if v3 else _MISSING)
    n = core["n_layers"]
    types = _layer_types(f, n)
    if types is not None:
        f.get("sliding_window_pattern", default=None)  # layer_types, when given, is what the pattern made
    if types is None and v3:
        every = f.int("sliding_window_pattern", default=6)
        types = ["full_attention" if (i + 1) % every == 0 else "sliding_attention" for i in range(min(n, every))]
    elif types is None:
        types = ["sliding_attention", "full_attention"][:n]
    softcap = f.number("attn_logit_softcapping") is not None
    full = _attention(f, core, qk_norm="head" if v3 else None, softcap=softcap)
    sliding = attrs.evolve(full, keys=Keys("sliding", f.int("sliding_window", default=4096)))
    mlp = MLP(core["d_ffn"], _gated_act(f, "gelu_pytorch_tanh"))
    period = len(types)
    layer = parts.pre_norm if vault else parts.sandwich_norm
    stack = _stack(n, lambda i: layer(sliding if types[i % period] == "sliding_attention" else full, mlp),
                   period=period)
    return dict(**_summary_fields(core, full), mlp=_gated(f, default="gelu_pytorch_tanh"), layers=stack,
                tie_embeddings=f.bool("tie_word_embeddings", True), embed_scale=True,
                logit_softcap=f.number("final_logit_softcapping") is not None)


# Gemma-4's RoPE where a config gives no rope_parameters (Gemma4TextConfig's default): full layers rotate a
# quarter of their head ("proportional"), sliding layers all of it.
GEMMA4_ROPE = {"full_attention": {"partial_rotary_factor": 0.25}, "sliding_attention": {}}


def _gemma4_rotary(f: Fields, head_dim: int, kind: str, width_key: str) -> int | None:
    """The dims a Gemma-4 layer of `kind` rotates: its rope_parameters entry's partial_rotary_factor of its head,
    `width_key` wide (transformers' _compute_proportional_rope_parameters rotates int(factor x global_head_dim / 2)
    pairs)."""
    _, params = f.get("rope_parameters", default=GEMMA4_ROPE)
    entry = params.get(kind, {}) if isinstance(params, dict) else None
    if not isinstance(entry, dict):
        raise f.error("rope_parameters", f"must hold an object for {kind}, got {str(params)[:60]}")
    factor = entry.get("partial_rotary_factor", 1.0)
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor <= 1:
        raise f.error("rope_parameters", f"{kind}.partial_rotary_factor must be a number in (0, 1], got {factor!r}")
    if factor == 1:
        return None
    if factor * head_dim < 2:
        raise f.error(width_key, f"is {head_dim}: rope_parameters.{kind}.partial_rotary_factor {factor} of it rotates no "
                                 f"pair of dims")
    return 2 * int(factor * head_dim // 2)


def _gemma4(f: Fields) -> dict:
    """Gemma-4 (modeling_gemma4.py, Gemma4TextConfig's defaults): Gemma-3's sandwich norms, GeGLU and q/k norms,
    plus a weightless norm of v, a learned scalar on the residual stream at the end of each layer (layer_scalar);
    sliding layers of head_dim, full layers of global_head_dim rotating a quarter of it, with
    num_global_key_value_heads and no v_proj where attention_k_eq_v (v is k_proj's output); layer_types as given,
    else every 6th layer full and the last one full. With enable_moe_block, each layer's dense MLP runs beside
    num_experts GeGLU experts of moe_intermediate_size, top_k_experts each (parts.DenseAndExperts): softmax
    routing renormalized and scaled per expert, the router's input normed with its own scale. E2B and E4B: per-layer
    embeddings of hidden_size_per_layer_input (pieces.per_layer_inputs, parts.PerLayerInput), and their last
    num_kv_shared_layers attend over an earlier layer's K and V (Attention.kv_shared), their MLP twice as wide where
    use_double_wide_mlp."""
    core = _core(f, head_dim_default=256, vocab_default=262_144, ffn_default=9216)
    per_layer = f.int("hidden_size_per_layer_input", default=256, minimum=0)  # Gemma4TextConfig's default
    table = f.int("vocab_size_per_layer_input", default=262_144, minimum=0) if per_layer else None
    if not per_layer:
        f.get("vocab_size_per_layer_input", default=None)  # the per-layer embeddings' table: none without them
    shared = f.int("num_kv_shared_layers", default=0, minimum=0)
    double = f.bool("use_double_wide_mlp", False)  # the KV-shared layers' MLP twice as wide
    if f.get("use_bidirectional_attention", default=None)[1] not in (None, "vision"):
        raise f.error("use_bidirectional_attention", "is not null or 'vision' (images attend both ways within "
                                                      "themselves, a mask of no cost to text): non-causal text "
                                                      "attention is not modelled")
    n, heads, d = core["n_layers"], core["n_heads"], core["head_dim"]
    types = _layer_types(f, n) or ["full_attention" if (i + 1) % 6 == 0 or i == n - 1 else "sliding_attention"
                                   for i in range(n)]
    k_eq_v = f.bool("attention_k_eq_v", False)
    full_dim = f.int("global_head_dim", default=512)
    full_kv = f.int("num_global_key_value_heads") if k_eq_v else core["n_kv_heads"]
    if not k_eq_v:
        f.get("num_global_key_value_heads", default=None)  # read only with attention_k_eq_v, as the reference does
    common = dict(qk_norm="head", v_norm=True, q_bias=f.bool("attention_bias", False))
    common.update(k_bias=common["q_bias"], v_bias=common["q_bias"], o_bias=common["q_bias"])
    sliding = Attention(heads, core["n_kv_heads"], d, keys=Keys("sliding", f.int("sliding_window", default=512)),
                        rotary_dim=_gemma4_rotary(f, d, "sliding_attention", "head_dim"), **common)
    full = Attention(heads, full_kv, full_dim, k_eq_v=k_eq_v,
                     rotary_dim=_gemma4_rotary(f, full_dim, "full_attention", "global_head_dim"), **common)
    first_shared = _first_kv_shared(f, types, shared)
    act = _gated_act(f, "gelu_pytorch_tanh")
    mlp = MLP(core["d_ffn"], act)
    wide = MLP(2 * core["d_ffn"], act) if double and shared else mlp
    if f.bool("enable_moe_block", False):
        moe = MoE(experts=f.int("num_experts"), top_k=f.int("top_k_experts"), d_expert=f.int("moe_intermediate_size"),
                  act=act, renormalize=True, router_norm=True, expert_scale=True, router_name="router", prefix="")
        ffn = parts.Sublayer(parts.DenseAndExperts(mlp, moe), post="post_feedforward_layernorm.weight", key="mlp")
    else:
        ffn = parts.Sublayer(mlp, "pre_feedforward_layernorm.weight", "post_feedforward_layernorm.weight", key="mlp")

    ple = () if not per_layer else (parts.Sublayer(parts.PerLayerInput(per_layer, act),
                                                   post="post_per_layer_input_norm.weight", key="ple"),)

    def layer(i: int) -> parts.Layer:
        mixer = sliding if types[i] == "sliding_attention" else full
        own_ffn = ffn
        if i >= first_shared:
            mixer = attrs.evolve(mixer, kv_shared=True)
            if wide is not mlp:
                own_ffn = parts.Sublayer(wide, "pre_feedforward_layernorm.weight", "post_feedforward_layernorm.weight",
                                         key="mlp")
        return parts.Layer((parts.Sublayer(mixer, "input_layernorm.weight", "post_attention_layernorm.weight",
                                           key="attn"), own_ffn, *ple), scalar=True)
    return dict(**_summary_fields(core, sliding), mlp=_gated(f, default="gelu_pytorch_tanh"),
                layers=Stack.listed([layer(i) for i in range(n)]), tie_embeddings=f.bool("tie_word_embeddings", True),
                embed_scale=True, logit_softcap=f.number("final_logit_softcapping") is not None,
                per_layer_input=(per_layer, table) if per_layer else None)


def _first_kv_shared(f: Fields, types: list[str], shared: int) -> int:
    """The first of the last num_kv_shared_layers layers (Gemma-3n's and Gemma-4's), which attend over the K and V
    of the last earlier layer of their kind (transformers: a layer from num_hidden_layers - num_kv_shared_layers
    on is shared); refused where none is left to write them or a shared layer's kind has no earlier layer."""
    n = len(types)
    if shared >= n:
        raise f.error("num_kv_shared_layers", f"is {shared}: the layers that reuse an earlier layer's K and V must "
                                              f"leave at least one of the {n} that writes them")
    first = n - shared
    if set(types[first:]) - set(types[:first]):
        raise f.error("num_kv_shared_layers", f"is {shared}: a shared layer reads the K and V of the last earlier "
                                              f"layer of its kind, and layers {first} on have a kind no earlier "
                                              f"layer has")
    return first


def _gemma3n(f: Fields) -> dict:
    """Google's Gemma-3n E2B and E4B, their text model (transformers' gemma3n_text, Gemma3nTextConfig's defaults
    being E4B's; vLLM's gemma3n.py): every layer a parts.AltUpLayer over altup_num_inputs AltUp streams (models.altup:
    the embeddings times sqrt(hidden) and altup_projections of them; predicted and corrected around each layer;
    altup_unembed_projections and their mean before the final norm), with a LAuReL branch of laurel_rank, GQA of
    head_dim with per-head q and k norms and a weightless v norm, a window of sliding_window keys on the
    layer_types sliding layers (else four of every five), a GeGLU of intermediate_size (one width, or one a layer)
    whose gate takes a Gaussian top-k on the layers activation_sparsity_pattern gives a sparsity above 0 (the first
    10 by default), and the per-layer input of hidden_size_per_layer_input (pieces.per_layer_inputs, as Gemma-4's).
    The last num_kv_shared_layers attend over the K and V of the last earlier layer of their kind and cache none; as
    vLLM runs them they still compute K and V of their own (their k_proj and v_proj are in the checkpoint), which
    nothing reads. The logits soft-capped at final_logit_softcapping, the head tied. query_pre_attn_scalar is not
    a scale (Gemma-3n's attention scale is 1), altup_coef_clip, altup_active_idx and altup_lr_multiplier cost
    nothing. The per-layer projection's scale (a multiply of layers x 256 a token), which vLLM skips, is counted as
    transformers runs it."""
    d = f.int("hidden_size", default=2048)
    n = f.int("num_hidden_layers", default=35)
    heads = f.int("num_attention_heads", default=8)
    head_dim = f.int("head_dim", default=256)
    _, widths = f.get("intermediate_size", default=16384)
    if isinstance(widths, list):
        if len(widths) != n or any(not isinstance(w, int) or isinstance(w, bool) or w < 1 for w in widths):
            raise f.error("intermediate_size", f"must be one positive width, or one a layer for the {n} layers")
    else:
        widths = [f.int("intermediate_size", default=16384)] * n
    core = dict(d_model=d, n_heads=heads, n_kv_heads=f.int("num_key_value_heads", default=2), d_ffn=widths[0],
                n_layers=n, vocab_size=f.int("vocab_size", default=262_400), head_dim=head_dim, dtype=_dtype(f),
                **_weights(f), rotary_dim=_rotary_dim(f, head_dim))
    streams = f.int("altup_num_inputs", default=4, minimum=2)
    active = f.int("altup_active_idx", default=0, minimum=0)
    if active >= streams:
        raise f.error("altup_active_idx", f"is {active}: there are {streams} streams (altup_num_inputs)")
    f.get("altup_coef_clip", "altup_lr_multiplier", "query_pre_attn_scalar", default=None)  # no cost (docstring)
    per_layer = f.int("hidden_size_per_layer_input", default=256)
    table = f.int("vocab_size_per_layer_input", default=262_144)
    types = _layer_types(f, n) or ["full_attention" if (i + 1) % 5 == 0 else "sliding_attention" for i in range(n)]
    first_shared = _first_kv_shared(f, types, f.int("num_kv_shared_layers", default=15, minimum=0))
    _, pattern = f.get("activation_sparsity_pattern", default=None)
    if pattern is None:
        pattern = [0.95] * 10 + [0.0] * (n - 10) if n > 10 else [0.0] * n
    if not isinstance(pattern, list) or len(pattern) != n or any(
            isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1 for p in pattern):
        raise f.error("activation_sparsity_pattern", f"must list a sparsity in [0, 1) for each of the {n} layers")
    act = _gated_act(f, "gelu_pytorch_tanh")
    common = dict(qk_norm="head", v_norm=True)
    sliding = Attention(heads, core["n_kv_heads"], head_dim, keys=Keys("sliding", f.int("sliding_window", default=512)),
                        rotary_dim=core["rotary_dim"], **common)
    full = Attention(heads, core["n_kv_heads"], head_dim, rotary_dim=core["rotary_dim"], **common)
    ple = parts.PerLayerInput(per_layer, act)
    rank = f.int("laurel_rank", default=64)
    scaled = f.bool("altup_correct_scale", True)

    def layer(i: int) -> parts.AltUpLayer:
        mixer = sliding if types[i] == "sliding_attention" else full
        if i >= first_shared:
            mixer = attrs.evolve(mixer, kv_shared=True, kv_unused=True)
        return parts.AltUpLayer(mixer, MLP(widths[i], act, sparse=pattern[i] > 0), rank, ple, streams,
                                output_scale=scaled)
    return dict(**_summary_fields(core, sliding), mlp=_gated(f, default="gelu_pytorch_tanh"),
                layers=Stack.listed([layer(i) for i in range(n)]), tie_embeddings=f.bool("tie_word_embeddings", True),
                embed_scale=True, logit_softcap=f.number("final_logit_softcapping") is not None,
                per_layer_input=(per_layer, table), streams=streams, altup=True)


def _llama4(f: Fields) -> dict:
    """Llama-4: attention_chunk_size chunks with rope on most layers, global NoPE attention on every 4th
    (no_rope_layers: 1 = rope), an L2 norm of q and k on the rope layers (use_qk_norm) and a query temperature on
    the NoPE layers (attn_temperature_tuning); MoE on every interleave_moe_layer_step-th layer (or moe_layers) with
    one shared expert and sigmoid routing, dense layers of intermediate_size_mlp. Defaults are transformers'
    Llama4TextConfig ones."""
    core = _core(f)
    n = core["n_layers"]
    rope_flags = _rope_flags(f, n)
    step = f.int("interleave_moe_layer_step", default=1)
    moe_layers = set(f.ints("moe_layers", n) or range(step - 1, n, step))
    chunk = f.int("attention_chunk_size", default=8192)
    qk = "head_l2" if f.bool("use_qk_norm", True) else None
    rope = _attention(f, core, keys=Keys("chunked", chunk) if chunk else FULL, qk_norm=qk)
    nope = _attention(f, core, rotary=False, q_scale=f.bool("attn_temperature_tuning", True))
    moe = MoE(experts=f.int("num_local_experts"), top_k=f.int("num_experts_per_tok"), d_expert=f.int("intermediate_size"),
              shared_d=f.int("intermediate_size"), scores="sigmoid", router_name="router", shared_name="shared_expert")
    dense = MLP(f.int("intermediate_size_mlp"), _gated_act(f))
    stack = _stack(n, lambda i: parts.pre_norm(rope if rope_flags[i] else nope, moe if i in moe_layers else dense),
                   period=n)
    core["d_ffn"] = dense.d_ffn
    return dict(**_summary_fields(core, rope), layers=stack, tie_embeddings=f.bool("tie_word_embeddings", False))


def _phi3(f: Fields) -> dict:
    """Phi-3: Llama's layer with fused qkv_proj and gate_up_proj (the same weights and FLOPs as split ones), a
    sliding window on every layer where sliding_window is set, partial rotary where given."""
    return dict(**_core(f), mlp=_gated(f), sliding_window=f.int("sliding_window", default=None),
                qkv_bias=f.bool("attention_bias", False), o_bias=f.bool("attention_bias", False),
                tie_embeddings=f.bool("tie_word_embeddings", False))


def _olmo2(f: Fields) -> dict:
    """OLMo-2: post-norm layers (the norm after attention and after the MLP, inside the residual) and an RMSNorm
    of the whole q and k projections (modeling_olmo2.py)."""
    core = _core(f)
    attention = _attention(f, core, qk_norm="full")
    layer = parts.post_norm(attention, MLP(core["d_ffn"], _gated_act(f)))
    return dict(**_summary_fields(core, attention), mlp=_gated(f), layers=Stack.uniform(layer, core["n_layers"]),
                tie_embeddings=f.bool("tie_word_embeddings", False))


def _olmo3(f: Fields) -> dict:
    """OLMo-3: OLMo-2's layer (transformers' Olmo3DecoderLayer is Olmo2DecoderLayer; vLLM serves it with olmo2.py)
    with a sliding window of sliding_window keys on the layers layer_types names sliding_attention (by default 3 of
    every 4: the full layers are 3, 7, 11, ...). Its YaRN on the full layers changes no cost."""
    core = _core(f)
    n = core["n_layers"]
    types = _layer_types(f, n) or ["full_attention" if (i + 1) % 4 == 0 else "sliding_attention" for i in range(n)]
    full = _attention(f, core, qk_norm="full")
    sliding = attrs.evolve(full, keys=Keys("sliding", f.int("sliding_window", default=4096)))
    mlp = MLP(core["d_ffn"], _gated_act(f))
    layers = Stack.listed([parts.post_norm(sliding if t == "sliding_attention" else full, mlp) for t in types])
    return dict(**_summary_fields(core, full), mlp=_gated(f), layers=layers,
                tie_embeddings=f.bool("tie_word_embeddings", False))


def _deepseek_router(f: Fields, *, v3: bool) -> dict:
    """DeepSeekMoE's router (MoE fields): V3's sigmoid scores with a selection bias (e_score_correction_bias, which
    vLLM's deepseek_v2.py also builds for a V2 config whose topk_method is noaux_tc: DeepSeek-VL2's), group-limited
    routing (n_group, topk_group), renormalized weights (norm_topk_prob) scaled by routed_scaling_factor; V2's
    softmax."""
    scoring = _scores(f, default="sigmoid" if v3 else "softmax")
    topk_method = f.str("topk_method", default="noaux_tc" if v3 else "greedy")
    groups = f.int("n_group", default=1) if topk_method in ("group_limited_greedy", "noaux_tc") else 1
    if groups > 1:
        f.int("topk_group")
    scale = f.number("routed_scaling_factor", default=1.0)
    return dict(experts=f.int("n_routed_experts"), top_k=f.int("num_experts_per_tok"),
                router_bias="selection" if v3 or topk_method == "noaux_tc" else None, scores=scoring, groups=groups,
                renormalize=f.bool("norm_topk_prob", False), scaled=scale != 1.0)


def _deepseek_moe(f: Fields, *, v3: bool, first_dense: int = 0) -> MoE | None:
    """DeepSeekMoE as V2, V3, Kimi-K2 and GLM-4.5 configure it: n_routed_experts of moe_intermediate_size and
    n_shared_experts, dense below first_k_dense_replace (`first_dense` where the config gives none), every
    moe_layer_freq-th layer, routed as _deepseek_router reads."""
    if f.get("n_routed_experts", default=None)[1] is None:
        return None
    return MoE(d_expert=f.int("moe_intermediate_size"), shared=f.int("n_shared_experts", default=0, minimum=0),
               first_dense=f.int("first_k_dense_replace", default=first_dense, minimum=0),
               layer_freq=f.int("moe_layer_freq", default=1), **_deepseek_router(f, v3=v3))


def _deepseek_v32(f: Fields, own: list[bool] | None = None) -> dict:
    """DeepSeek-V3.2: V3 with DSA sparse attention, a lightning indexer (index_n_heads heads of index_head_dim)
    scoring every key and MLA over the index_topk it selects (pieces.lightning_indexer). The indexer's
    weights_proj stays in the model's dtype in an fp8 checkpoint, as the reference code builds it. `own`: which
    layers run their own indexer, the others reusing the last one's selection (_index_schedule); None: all."""
    fields = _deepseek(f, v3=True)
    indexer = Indexer(heads=f.int("index_n_heads"), head_dim=f.int("index_head_dim"), topk=f.int("index_topk"))
    attention = LatentAttention(fields["n_heads"], fields["mla"], indexer=indexer)
    n, moe, dense = fields["n_layers"], fields["moe"], MLP(fields["d_ffn"], _gated_act(f))
    if own is None or all(own):
        fields["layers"] = _moe_stack(n, attention, moe, dense)
    else:
        shared = attrs.evolve(attention, indexer=attrs.evolve(indexer, shared=True))
        ffn = [moe if moe is not None and moe.placed(i) else dense for i in range(n)]
        fields["layers"] = Stack.listed([parts.pre_norm(attention if own[i] else shared, ffn[i]) for i in range(n)])
        # the multi-token-prediction layer runs an indexer of its own (vLLM's DeepseekV32Attention builds one on it
        # whatever the schedule says), as the checkpoint's layer after the last carries one
        fields["mtp_stack"] = Stack.uniform(parts.pre_norm(attention, moe or dense), 1)
    if fields["weight_format"] is not None:
        fmt = fields["weight_format"]
        fields["weight_format"] = attrs.evolve(fmt, exclude=(*fmt.exclude, "model.layers.*.self_attn.indexer.weights_proj"))
    return fields


def _mla(f: Fields) -> MLA:
    """MLA's widths as DeepSeek-V2's config names them (q_lora_rank null: q projected at once), and qk_head_dim,
    which GLM-5's and Ling-2.5's configs also give: it must be qk_nope_head_dim + qk_rope_head_dim."""
    mla = MLA(kv_lora_rank=f.int("kv_lora_rank"), qk_nope_head_dim=f.int("qk_nope_head_dim"),
              qk_rope_head_dim=f.int("qk_rope_head_dim"), v_head_dim=f.int("v_head_dim"),
              q_lora_rank=f.int("q_lora_rank", default=None))
    whole = mla.qk_nope_head_dim + mla.qk_rope_head_dim
    if f.int("qk_head_dim", default=whole) != whole:
        raise f.error("qk_head_dim", f"must be qk_nope_head_dim + qk_rope_head_dim ({mla.qk_nope_head_dim} + "
                                     f"{mla.qk_rope_head_dim} = {whole})")
    return mla


def _deepseek(f: Fields, *, v3: bool, first_dense: int = 0, mla: bool = True) -> dict:
    """DeepSeek-V2/V3 and Kimi-K2: MLA (q_lora_rank may be null), DeepSeekMoE. The multi-token-prediction
    module (num_nextn_predict_layers) is not part of next-token inference and is not counted. use_mla false
    (DeepSeek-VL2-tiny's language model; vLLM runs it as DeepseekForCausalLM): multi-head attention over
    num_key_value_heads of hidden / heads with rope, and the MLA widths (null or 0 there) unread."""
    if f.bool("attention_bias", False):
        raise f.error("attention_bias", "is true; only DeepSeek's bias-free attention is supported")
    d = f.int("hidden_size")
    heads = f.int("num_attention_heads")
    kv = f.int("num_key_value_heads", default=heads)  # MLA has no KV heads of its own; the field equals the heads
    if f.bool("use_mla", mla):
        mla = _mla(f)
        _rotary_dim(f, mla.qk_rope_head_dim)  # type checks only: MLA rotates exactly qk_rope_head_dim
    else:
        mla = None
        f.get("kv_lora_rank", "q_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", default=None)
    return dict(d_model=d, n_heads=heads, n_kv_heads=heads if mla else kv, d_ffn=f.int("intermediate_size"),
                n_layers=f.int("num_hidden_layers"), vocab_size=f.int("vocab_size"), mla=mla,
                moe=_deepseek_moe(f, v3=v3, first_dense=first_dense), mlp=_gated(f), dtype=_dtype(f), **_weights(f),
                **_mtp(f), tie_embeddings=f.bool("tie_word_embeddings", False))


def _deepseek_v1(f: Fields) -> dict:
    """DeepSeek's first MoE (remote code DeepseekForCausalLM, model_type deepseek: DeepSeekMoE-16B; vLLM 0.11's
    deepseek.py): _deepseek's multi-head attention (no MLA), dense layers below first_k_dense_replace, then every
    moe_layer_freq-th layer DeepSeekMoE: n_routed_experts of moe_intermediate_size, softmax top num_experts_per_tok,
    renormalized where norm_topk_prob, and the n_shared_experts run as one MLP. vLLM's deepseek.py scores by
    softmax, unscaled and without groups whatever the config says, so another scoring_func, routed_scaling_factor or
    topk_method is refused."""
    for key, neutral in (("scoring_func", "softmax"), ("topk_method", "greedy")):
        if f.str(key, default=neutral) != neutral:
            raise f.error(key, f"is {f.data[key]!r}, but vLLM's deepseek.py routes DeepSeekMoE-16B by a plain softmax "
                               f"top-k ({neutral!r})")
    if f.number("routed_scaling_factor", default=1.0) != 1:
        raise f.error("routed_scaling_factor", "is not 1, but vLLM's deepseek.py does not scale the routing weights")
    return _deepseek(f, v3=False, mla=False)


def _glm_moe_dsa(f: Fields) -> dict:
    """GLM-5 (transformers' glm_moe_dsa; vLLM's glm_moe_dsa.py and mlx-lm's run it as DeepSeek-V3.2's model): MLA
    with DSA sparse attention and DeepSeekMoE, read as _deepseek_v32 reads them. Its config also names
    qk_head_dim, which must be qk_nope_head_dim + qk_rope_head_dim, and head_dim, the width transformers' rope
    helpers are given (64 in GLM-5, 192 in GLM-5.2): MLA's widths are the three it names, so head_dim is no cost."""
    fields = _deepseek_v32(f, _index_schedule(f, f.int("num_hidden_layers")))
    if fields["mtp_layers"] and f.bool("index_share_for_mtp_iteration", False):
        fields["notes"] = (*fields["notes"], "index_share_for_mtp_iteration: the checkpoint lets the "
                           "multi-token-prediction layer's later draft steps reuse its first step's selection; "
                           "`serve --draft mtp` prices its indexer at every step (an upper bound on the draft's cost)")
    f.int("head_dim", default=None)
    _mlp_layer_types(f, fields)
    return fields


def _mlp_layer_types(f: Fields, fields: dict) -> None:
    """GLM's configs list each layer's MLP (mlp_layer_types): read where the MoE ('sparse') layers are those
    first_k_dense_replace and moe_layer_freq place."""
    n, moe = fields["n_layers"], fields["moe"]
    _per_layer(f, "mlp_layer_types", ["sparse" if moe is not None and moe.placed(i) else "dense" for i in range(n)],
               "it must place the MoE ('sparse') layers as first_k_dense_replace and moe_layer_freq do")


def _glm4_moe_lite(f: Fields) -> dict:
    """GLM-4.7-Flash (transformers' glm4_moe_lite: DeepseekV3Attention, MLA, with GLM-4.5's MoE, which routes as
    DeepSeek-V3's): read as _deepseek reads DeepSeek-V3, the first layer dense where the config says nothing
    (transformers' default mlp_layer_types: one 'dense', then 'sparse'); the multi-token-prediction layer apart."""
    fields = _deepseek(f, v3=True, first_dense=1)
    _mlp_layer_types(f, fields)
    return fields


# IndexShare's schedule where a config gives no list (transformers' GlmMoeDsaConfig, vLLM's DeepseekV32Attention):
# layer i runs its own indexer where max(i - offset + 1, 0) % index_topk_freq == 0, offset 2 by default.
INDEX_SKIP_OFFSET = 2


def _index_schedule(f: Fields, n: int) -> list[bool]:
    """Which layers run their own DSA indexer (True) and which reuse the selection of the last layer that did
    (IndexShare, arXiv:2603.12201; GLM-5.2): indexer_types ("full" / "shared") where the config lists them, else
    index_topk_pattern ("F" / "S" a layer), else index_topk_freq with index_skip_topk_offset, as transformers'
    GlmMoeDsaConfig derives the list. A config that gives the list and the schedule must have them agree (vLLM builds
    its indexers from the schedule alone)."""
    freq = f.int("index_topk_freq", default=1)
    offset = f.int("index_skip_topk_offset", default=INDEX_SKIP_OFFSET, minimum=0)
    scheduled = [max(i - offset + 1, 0) % freq == 0 for i in range(n)]
    _, pattern = f.get("index_topk_pattern", default=None)
    if pattern is not None:
        if not isinstance(pattern, str) or len(pattern) != n or set(pattern) - set("FS"):
            raise f.error("index_topk_pattern", f"must be a string of {n} letters, F (the layer runs its indexer) or S "
                                                f"(it reuses the last one's selection), got {str(pattern)[:60]}")
        scheduled = [c == "F" for c in pattern]
    listed = f.words("indexer_types", n, ("full", "shared"))
    own = scheduled if listed is None else [kind == "full" for kind in listed]
    if own != scheduled:
        i = next(i for i, (a, b) in enumerate(zip(own, scheduled)) if a != b)
        by = "index_topk_pattern" if pattern is not None else "index_topk_freq and index_skip_topk_offset"
        raise f.error("indexer_types", f"says {listed[i]!r} for layer {i}, where {by} "
                                       f"{'gives' if pattern is not None else 'give'} "
                                       f"{'full' if scheduled[i] else 'shared'!r}: the two must agree")
    if not own[0]:
        raise f.error("indexer_types" if listed is not None else "index_topk_pattern",
                      "makes layer 0 reuse a selection, but no earlier layer makes one")
    return own


# DeepSeek-V4's modules as its checkpoints store them (the tensor list of deepseek-ai/DeepSeek-V4-Pro; its reference
# inference/model.py Linear): fp8 e4m3 in 128 x 128 blocks, the routed experts as expert_dtype says (fp4: MXFP4,
# e2m1 with a ue8m0 scale per 32; fp8: the blocks), the rest (the compressors, the indexer's weights_proj, the
# router) at the model's dtype. DeepSeek-V4.1 adds its Engram memories' wkv.
V4_FP8_MODULES = ("attn.wq_a", "attn.wq_b", "attn.wkv", "attn.wo_a", "attn.wo_b", "attn.indexer.wq_b",
                  "ffn.shared_experts", "e_proj", "h_proj", "engram.wkv")
V4_EXPERTS = {"fp4": MXFP4, "fp8": None}
# DeepSeek-V4.1's caches (its reference inference/model.py act_quant calls; SPEC of the report, 890 bytes a token):
# the window's entries in fp8 with a ue8m0 scale per 32 (528 bytes for 512), the compressed entries in fp4 with an
# e4m3 scale per 16 (288 bytes), the indexer's keys in fp4 with a ue8m0 scale per 32 (68 bytes for 128); its Engram
# tables in fp8 with a ue8m0 scale per 32 of a row (264 bytes for 256).
V41_WINDOW = FP8.grouped(32, scale_bits=8)
V41_ENTRY = FP4.grouped(16, scale_bits=8)
V41_INDEX_KEY = FP4.grouped(32, scale_bits=8)
V41_ENGRAM = FP8.grouped(32, scale_bits=8)


def _deepseek_v4_storage(f: Fields, fmt, kv: dict, experts: str) -> dict:
    """The weight format of a DeepSeek-V4 checkpoint: its quantization_config's fp8 blocks for V4_FP8_MODULES, with
    one-byte ue8m0 scales where scale_fmt says ue8m0 (the released checkpoints' F8_E8M0 scale tensors; fp32 scales
    otherwise, as the Base checkpoints' are), and the routed experts as `experts` says (fp4 or fp8: the config's
    expert_dtype, absent fp4, as vLLM's deepseek_v4.py DeepseekV4FP8Config reads it); `kv`: the KV cache's layout
    (kv_cache, kv_from) where the family knows it."""
    if fmt is None:
        return dict(weight_dtype=None, weight_format=None)
    if fmt.method != "fp8" or fmt.dtype.block_rows is None or fmt.exclude:
        raise f.error("quantization_config", "must be DeepSeek-V4's fp8 blocks (quant_method fp8, weight_block_size), "
                                             "without modules_to_not_convert: the family knows which modules it keeps")
    _, q = f.get("quantization_config")
    blocks = fmt.dtype
    if q.get("scale_fmt") == "ue8m0":
        blocks = attrs.evolve(blocks, scale_bits=8)
    layers = (("ffn.experts", V4_EXPERTS[experts] or blocks), *((m, blocks) for m in V4_FP8_MODULES))
    return dict(weight_dtype=blocks, weight_format=attrs.evolve(fmt, dtype=blocks, layers=layers, **kv))


def _v4_attention(f: Fields) -> dict:
    """DeepSeek-V4's attention sizes (parts.CompressedAttention's fields but the ratio), checked."""
    heads, head_dim = f.int("num_attention_heads"), f.int("head_dim")
    if f.bool("attention_bias", False):
        raise f.error("attention_bias", "is true; DeepSeek-V4's attention has no biases")
    if f.int("num_key_value_heads", default=1) != 1:
        raise f.error("num_key_value_heads", "must be 1: DeepSeek-V4 attends over one shared key-value head")
    rope, groups = f.int("qk_rope_head_dim"), f.int("o_groups")
    if rope > head_dim:
        raise f.error("head_dim", f"({head_dim}) must be at least qk_rope_head_dim ({rope}), the dims rope turns")
    if heads % groups:
        raise f.error("o_groups", f"({groups}) must divide num_attention_heads ({heads}): each group is whole heads")
    f.number("compress_rope_theta")  # a rope base: the same ops whatever its value
    return dict(heads=heads, head_dim=head_dim, rope_dim=rope, q_lora_rank=f.int("q_lora_rank"), o_groups=groups,
                o_lora_rank=f.int("o_lora_rank"), window=f.int("sliding_window"))


def _v4_moe(f: Fields, experts: str = "n_routed_experts", top_k: str = "num_experts_per_tok") -> MoE:
    """DeepSeek-V4's MoE (its reference Gate and MoE): sqrtsoftplus scores, a selection bias, the clamped SwiGLU."""
    f.number("swiglu_limit")  # the clamp's bound: the same ops whatever its value
    if f.str("topk_method", default="noaux_tc") != "noaux_tc":
        raise f.error("topk_method", "must be noaux_tc: DeepSeek-V4 routes by scores plus a selection bias")
    return MoE(experts=f.int(experts), top_k=f.int(top_k),
               d_expert=f.int("moe_intermediate_size"), shared=f.int("n_shared_experts", default=0, minimum=0),
               router_bias="selection", bias_dtype=FP32,
               scores=f.choice({"sqrtsoftplus": "sqrtsoftplus"}, "scoring_func", default="sqrtsoftplus"),
               renormalize=f.bool("norm_topk_prob", True),
               scaled=f.number("routed_scaling_factor", default=1.0) != 1.0,
               act="limit_swiglu" if f.number("swiglu_limit") is not None else _gated_act(f), prefix="ffn.",
               shared_name="shared_experts")


def _v4_ratios(f: Fields, n: int, mtp: int, valid: tuple[int, ...]) -> list[int]:
    """compress_ratios: one of `valid` for each of the n layers (and, optionally, the mtp draft layers)."""
    _, ratios = f.get("compress_ratios")
    if (not isinstance(ratios, list) or len(ratios) not in (n, n + mtp)
            or any(isinstance(r, bool) or r not in valid for r in ratios)):
        raise f.error("compress_ratios", f"must list {', '.join(map(str, valid[:-1]))} or {valid[-1]} for each of "
                                         f"the {n} layers (and the {mtp} multi-token-prediction ones), got "
                                         f"{str(ratios)[:60]}")
    return ratios


def _deepseek_v4(f: Fields) -> dict:
    """DeepSeek-V4 (Flash, Pro; its reference inference/model.py and config.json): every layer a sliding window of
    sliding_window raw keys plus, as compress_ratios says, entries compressed 4 : 1 and selected by an indexer (CSA)
    or 128 : 1 and all attended (HCA), or none (parts.CompressedAttention); MoE in every layer, the first
    num_hash_layers routed by a table of token ids; the residual as hc_mult hyper-connection streams (models.hyper).
    The multi-token-prediction layers (num_nextn_predict_layers) are not counted."""
    d, n = f.int("hidden_size"), f.int("num_hidden_layers")
    att = _v4_attention(f)
    mtp = f.int("num_nextn_predict_layers", default=0, minimum=0)
    # the ratios the engines build (SGLang's MQALayer asserts them: 0, 4 with the indexer, 128)
    ratios = _v4_ratios(f, n, mtp, (0, compressed.OVERLAPPING_RATIO, 128))
    index = Indexer(heads=f.int("index_n_heads"), head_dim=f.int("index_head_dim"), topk=f.int("index_topk"))
    attention = {r: parts.CompressedAttention(**att, ratio=r,
                                              indexer=index if r == compressed.OVERLAPPING_RATIO else None)
                 for r in set(ratios)}
    moe = _v4_moe(f)
    hashed = attrs.evolve(moe, hashed=f.int("vocab_size"))
    first_hashed = f.int("num_hash_layers", default=0, minimum=0)
    streams, iters = f.int("hc_mult", default=1), f.int("hc_sinkhorn_iters", default=20)

    def layer(i: int) -> parts.Layer:
        return parts.Layer((parts.Sublayer(attention[ratios[i]], "attn_norm.weight", key="attn"),
                            parts.Sublayer(hashed if i < first_hashed else moe, "ffn_norm.weight", key="ffn")),
                           streams=streams, hc_iters=iters)
    window, head_dim = att["window"], att["head_dim"]
    said = [f"attention: every layer's queries see the last {window} positions' keys (one shared {head_dim}-wide "
            f"key-value head) and, where compress_ratios is m > 0, the entries pooled one per m positions: all of "
            f"them, or with m = {compressed.OVERLAPPING_RATIO} the indexer's top {index.topk}; the cache holds the "
            f"window and the entries at the KV-cache dtype, the indexer's keys in fp8 with a scale, and each "
            f"compressor's fp32 state"]
    if first_hashed:
        said.append(f"the first {first_hashed} layers route by token id: their gate.tid2eid tables ([vocab, top-k], "
                    f"int64) are counted as parameters, which published totals leave out")
    mtp = _mtp(f)
    # the MTP module's layer (reference MTPBlock): its own ratio (compress_ratios lists it after the main layers; a
    # window alone in the released checkpoints), routed by scores
    stack = (Stack.uniform(layer(n), mtp["mtp_layers"]) if mtp["mtp_layers"] and len(ratios) > n and
             all(r == ratios[n] for r in ratios[n:]) else None)
    kv = (dict(kv_cache=FP8_DS_MLA, kv_from="DeepSeek-V4's trained KV layout, FlashMLA's: 448 fp8 values with ue8m0 "
                                            "scales and 64 rope values in bf16 a 512-wide entry")
          if (head_dim, att["rope_dim"]) == (512, 64) else {})
    return dict(mtp_stack=stack, d_model=d, n_heads=att["heads"], n_kv_heads=1, d_ffn=moe.d_expert, n_layers=n,
                vocab_size=f.int("vocab_size"), head_dim=head_dim, dtype=_dtype(f),
                **_deepseek_v4_storage(f, _weights(f)["weight_format"], kv,
                                       f.choice({k: k for k in V4_EXPERTS}, "expert_dtype", default="fp4")),
                layers=Stack.listed([layer(i) for i in range(n)]), streams=streams,
                tie_embeddings=f.bool("tie_word_embeddings", False), mtp_layers=mtp["mtp_layers"],
                notes=(*said, *mtp["notes"]))


def _layer_ids(f: Fields, key: str, n: int, default=_MISSING) -> list[int]:
    """A list of distinct layer indices, in order (DeepSeek-V4.1's kv_source_layer_ids and the like)."""
    _, v = f.get(key, default=default)
    if v is default and default is not _MISSING:
        return v
    if (not isinstance(v, list) or any(not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < n for i in v)
            or v != sorted(set(v))):
        raise f.error(key, f"must list distinct layer indices from 0 to {n - 1} in order, got {str(v)[:60]}")
    return v


def _deepseek_v41(f: Fields) -> dict:
    """DeepSeek-V4.1 (Flash; its text_config, its reference inference/model.py and transformers' deepseek_v41):
    V4's attention, MoE and hyper-connection streams, with the compressed cache shared across layers.

    - compress_ratios 0, 1 or 2. Only the kv_source_layer_ids compress: a ratio-2 source pools two positions
      an entry (its compressor without V4's position bias), a ratio-1 source projects and norms each; every other
      layer with a ratio attends to the entries of the last source at or before it (of the same ratio), cached once.
      Entries are fp4 (288 bytes), the window fp8 (528 bytes an entry).
    - The index_source_layer_ids select entries: with keys of their own from the source's latent (wk, k_norm;
      68 bytes an entry) at a source, the source's keys elsewhere; the other layers reuse the selection of the last
      index source before them. candidate_source_layer_id picks candidate_topk_blocks blocks of
      candidate_block_size entries, and the index sources after it mask their scores to them (every entry is
      still scored, as the reference does).
    - engram_layer_ids: an Engram memory (models.engram) added to the streams before the layer.
    - The head collapses the streams with the last layer's coefficients (no hc_head).

    The DSpark draft stages (num_nextn_predict_layers, dspark_*) are not counted and not modelled as a draft."""
    d, n = f.int("hidden_size"), f.int("num_hidden_layers")
    att = _v4_attention(f)
    mtp = f.int("num_nextn_predict_layers", default=0, minimum=0)
    ratios = _v4_ratios(f, n, mtp, (0, 1, 2))
    sources = _layer_ids(f, "kv_source_layer_ids", n)
    index_sources = _layer_ids(f, "index_source_layer_ids", n)
    for key, ids in (("kv_source_layer_ids", sources), ("index_source_layer_ids", index_sources)):
        if any(not ratios[i] for i in ids):
            raise f.error(key, f"names layer {next(i for i in ids if not ratios[i])}, whose compress ratio is 0: "
                               f"it has no compressed entries")

    def last(ids: list[int], i: int, key: str) -> int:
        """The last of `ids` at or before layer i, which layer i's ratio must be."""
        j = max((s for s in ids if s <= i), default=None)
        if j is None or ratios[j] != ratios[i]:
            raise f.error(key, f"leaves layer {i} (compress ratio {ratios[i]}) without a layer of its ratio at or "
                               f"before it to take {'entries' if key.startswith('kv') else 'a selection'} from")
        return j
    candidate = f.int("candidate_source_layer_id", default=None, minimum=0)
    if candidate is not None and candidate not in index_sources:
        raise f.error("candidate_source_layer_id", f"({candidate}) must be one of index_source_layer_ids: the layer "
                                                   f"picks candidates from its own scores")
    blocks = ((f.int("candidate_topk_blocks"), f.int("candidate_block_size")) if candidate is not None else None)
    index = Indexer(heads=f.int("index_n_heads"), head_dim=f.int("index_head_dim"), topk=f.int("index_topk"),
                    from_latent=True, key_dtype=V41_INDEX_KEY)
    engram_at = _layer_ids(f, "engram_layer_ids", n, default=[])
    tables = (f.ints("engram_num_embeddings", 2 ** 62, minimum=1) or []) if engram_at else []
    if len(tables) != len(engram_at):
        raise f.error("engram_num_embeddings", f"must give one table size for each of the {len(engram_at)} "
                                               f"engram_layer_ids")
    if engram_at:
        for key in ("engram_vocab_size", "engram_pad_token_id", "engram_compressed_vocab_size"):
            f.get(key, default=None)  # the hash's inputs: the same ops whatever their values
        memory = dict(heads=f.int("engram_n_heads"), head_dim=f.int("engram_head_dim"),
                      ngram=f.int("engram_max_ngram_size", minimum=2), table_dtype=V41_ENGRAM)
    moe = _v4_moe(f)
    hashed = attrs.evolve(moe, hashed=f.int("vocab_size"))
    first_hashed = f.int("num_hash_layers", default=0, minimum=0)
    streams, iters = f.int("hc_mult", default=1), f.int("hc_sinkhorn_iters", default=20)

    def attention(i: int) -> parts.CompressedAttention:
        r = ratios[i]
        if not r:
            return parts.CompressedAttention(**att)
        source = last(sources, i, "kv_source_layer_ids")
        owner = last(index_sources, i, "index_source_layer_ids")
        selects = attrs.evolve(index, shared=owner != i,
                               candidates=blocks if i == candidate else None,
                               masked=blocks if owner == i and candidate is not None and candidate < i
                               and ratios[candidate] == r else None)
        return parts.CompressedAttention(**att, ratio=r, indexer=selects, compressor="plain" if r == 1 else "gated",
                                         source=source == i, entry_dtype=V41_ENTRY)

    def layer(i: int) -> parts.Layer:
        mem = (Engram(table_rows=tables[engram_at.index(i)], **memory) if i in engram_at else None)
        return parts.Layer((parts.Sublayer(attention(i), "attn_norm.weight", key="attn"),
                            parts.Sublayer(hashed if i < first_hashed else moe, "ffn_norm.weight", key="ffn")),
                           streams=streams, hc_iters=iters, memory=mem)
    for key in ("hc_eps", "dspark_block_size", "dspark_noise_token_id", "dspark_target_layer_ids",
                "dspark_markov_rank", "dspark_n_routed_experts", "dspark_num_experts_per_tok"):
        f.get(key, default=None)  # the DSpark draft's fields: noted below, not modelled
    window, head_dim = att["window"], att["head_dim"]
    said = [f"attention: every layer's queries see the last {window} positions' keys (one {head_dim}-wide key-value "
            f"head, fp8 with a scale per 32) and, where compress_ratios is m > 0, the top {index.topk} of the entries "
            f"pooled one per m positions (fp4), which only the layers of kv_source_layer_ids compute and cache; the "
            f"others read those of the last source before them. The indexer runs on index_source_layer_ids (fp4 keys "
            f"at the sources); the other layers reuse its selection"]
    if engram_at:
        said.append(f"Engram memories before layers {', '.join(map(str, engram_at))}: "
                    f"{sum(tables):,} table rows of {memory['head_dim']} (fp8), "
                    f"{(memory['ngram'] - 1) * memory['heads']} rows read a token a layer")
    if first_hashed:
        said.append(f"the first {first_hashed} layers route by token id: their gate.tid2eid tables are counted")
    said.append("not counted: each layer's gate.bias_vl (a selection bias for image tokens, 4 bytes an expert), "
                "which text does not read")
    if mtp:
        said.append(f"not counted: the DSpark draft ({counted(mtp, 'stage')} of its own experts, a Markov head and a "
                    f"confidence head), which next-token inference does not run; --draft mtp does not model it")
    experts = _v41_expert_dtype(f)  # before the fp8 reader, which does not know the key
    storage = _deepseek_v4_storage(f, _weights(f)["weight_format"],
                                   dict(kv_cache=V41_WINDOW, kv_from="DeepSeek-V4.1's window cache: fp8 with a ue8m0 "
                                                                     "scale per 32 values"), experts)
    return dict(d_model=d, n_heads=att["heads"], n_kv_heads=1, d_ffn=moe.d_expert, n_layers=n,
                vocab_size=f.int("vocab_size"), head_dim=head_dim, dtype=_dtype(f), **storage,
                layers=Stack.listed([layer(i) for i in range(n)]), streams=streams, hc_head=False, mtp_layers=mtp,
                tie_embeddings=f.bool("tie_word_embeddings", False), notes=tuple(said))


def _v41_expert_dtype(f: Fields) -> str:
    """DeepSeek-V4.1 writes expert_dtype inside quantization_config (V4 beside it): taken out before the fp8 reader,
    which does not know it."""
    _, q = f.get("quantization_config", default=None)
    if not isinstance(q, dict) or "expert_dtype" not in q:
        return "fp4"
    f.data["quantization_config"] = {k: v for k, v in q.items() if k != "expert_dtype"}
    if q["expert_dtype"] not in V4_EXPERTS:
        raise f.error("quantization_config", f"expert_dtype is {q['expert_dtype']!r}; supported: "
                                             f"{', '.join(V4_EXPERTS)}")
    return q["expert_dtype"]


def _minimax_m3(f: Fields) -> dict:
    """MiniMax-M3 (its text_config; vLLM's vllm/models/minimax_m3, SGLang's minimax_m3.py, transformers'
    minimax_m3_vl): GQA attention with per-head q and k norms (qk_norm_type "per_head", one [head_dim] scale) and
    rope on rotary_dim; on the layers sparse_attention_freq marks, MiniMax's sparse attention
    (parts.BlockSparseAttention: sparse_attention_config's index heads and dim, the top sparse_topk_blocks blocks
    of sparse_block_size keys by their largest score, the query's own block among them); a SwiGLU-OAI
    (hidden_act swigluoai: gpt-oss's clamped form) MLP of dense_intermediate_size where moe_layer_freq is 0, else
    num_local_experts experts of intermediate_size, top num_experts_per_tok by sigmoid scores with a selection bias
    (use_routing_bias), renormalized and scaled by routed_scaling_factor, the router and its bias in fp32, and
    n_shared_experts of shared_intermediate_size. Its RMSNorms scale by 1 + w (use_gemma_norm), costed as any
    RMSNorm, as Gemma's are. The multi-token-prediction modules are not counted."""
    core = _core(f, ffn_default=None)
    n, head_dim, rotary = _minimax_rotary(f, core)
    if f.bool("use_qk_norm", False) is not True or f.str("qk_norm_type", default="per_head") != "per_head":
        raise f.error("qk_norm_type", "must be per_head, with use_qk_norm true, as MiniMax-M3's attention norms q "
                                      "and k")
    if f.bool("attention_output_gate", False):
        raise f.error("attention_output_gate", "is true: MiniMax-M3's attention has no output gate")
    f.bool("use_gemma_norm", False)
    full = _attention(f, core, rotary_dim=rotary, qk_norm="head")
    sp = f.sub("sparse_attention_config")

    sparse_at = sp.flags("sparse_attention_freq", n) if sp.bool("use_sparse_attention", False) else [0] * n
    if any(a and not b for a, b in zip(sparse_at, sp.flags("sparse_disable_index_value", n))):
        raise sp.error("sparse_disable_index_value", "must be 1 on every sparse layer: the index value branch is not "
                                                     "modelled")
    if sp.str("sparse_score_type", default="max") != "max" or sp.int("sparse_init_block", default=0, minimum=0) \
            or sp.int("sparse_local_block", default=1, minimum=0) != 1:
        raise sp.error("sparse_score_type", "must be max, with sparse_init_block 0 and sparse_local_block 1, as the "
                                            "engines select MiniMax-M3's blocks")
    if any(sparse_at) and sp.int("sparse_num_index_heads") != full.kv_heads:
        raise sp.error("sparse_num_index_heads", f"({sp.int('sparse_num_index_heads')}) must equal "
                                                 f"'num_key_value_heads' ({full.kv_heads}): each index head picks its "
                                                 f"KV head's blocks")
    sparse = parts.BlockSparseAttention(full.heads, full.kv_heads, head_dim, sp.int("sparse_num_index_heads"),
                                        sp.int("sparse_index_dim"), sp.int("sparse_topk_blocks"),
                                        sp.int("sparse_block_size"), rotary_dim=rotary)
    act = f.choice({"swigluoai": "clamp_swiglu"}, "hidden_act")
    f.number("swiglu_alpha"), f.number("swiglu_limit")  # the clamp's constants: the same ops whatever their values
    moe_at = f.flags("moe_layer_freq", n)
    shared, width = f.int("n_shared_experts", default=0, minimum=0), f.int("intermediate_size")
    shared_width = shared * f.int("shared_intermediate_size", default=width)
    moe = MoE(experts=f.int("num_local_experts"), top_k=f.int("num_experts_per_tok"), d_expert=width, shared=shared,
              shared_d=shared_width if shared_width != shared * width else None, scores=_scores(f, "sigmoid"),
              router_bias="selection" if f.bool("use_routing_bias", False) else None, renormalize=True,
              scaled=f.number("routed_scaling_factor", default=1.0) != 1.0, act=act, router_dtype=FP32,
              prefix="block_sparse_moe.", shared_name="shared_experts")
    dense = MLP(f.int("dense_intermediate_size"), act)
    stack = _stack(n, lambda i: parts.pre_norm(sparse if sparse_at[i] else full, moe if moe_at[i] else dense),
                   period=n)
    declared = max(f.int("num_mtp_modules", default=0, minimum=0), f.int("num_nextn_predict_layers", default=0,
                                                                            minimum=0))
    said = (f"the config declares {counted(declared, 'multi-token-prediction module')}, but the released checkpoints "
            f"hold no mtp tensors: none is counted, and --draft mtp prices one it would need",) if declared else ()
    return dict(**_summary_fields({**core, "d_ffn": dense.d_ffn}, full), mlp="swiglu", layers=stack,
                tie_embeddings=f.bool("tie_word_embeddings", False), notes=said)


def _kimi_linear(f: Fields) -> dict:
    """Kimi Linear (Moonshot AI; vLLM's kimi_linear.py and layers/kda.py, arXiv 2510.26692): Kimi Delta Attention
    layers (linear_attn_config: kda_layers, full_attn_layers, 1-based; num_heads of head_dim; short_conv_kernel_size)
    beside MLA layers without rope (mla_use_nope; q_lora_rank null: a plain q_proj), dense below
    first_k_dense_replace and MoE every moe_layer_freq-th layer after: num_experts of moe_intermediate_size,
    num_experts_per_token each, num_shared_experts, routed as DeepSeek-V3's router (sigmoid scores with
    e_score_correction_bias, renormalized where moe_renormalize, times routed_scaling_factor). The KDA state is kept
    in fp32, as vLLM keeps it whatever it is told (MambaStateDtypeCalculator.kda_state_dtype).

    Kimi-K3's text model (model_type kimi_k3 wraps it; its modeling_kimi_linear.py, vLLM's models/kimi_k3, SGLang's
    kimi_k3.py) adds: the SiTU activation (hidden_act situ), MLA's q_lora_rank and a sigmoid output gate
    (mla_use_output_gate), KDA's full-rank output gate (use_full_rank_gate) and bounded decay (gate_lower_bound), a
    latent MoE (routed_expert_hidden_size, its sum normed where latent_moe_use_norm) and Block AttnRes
    (attn_res_block_size: _attn_res)."""
    d, n, heads = f.int("hidden_size"), f.int("num_hidden_layers"), f.int("num_attention_heads")
    f.int("head_dim", default=None)  # the generic hidden_size / heads (72): neither mixer's width
    f.int("num_key_value_heads", default=None)  # MLA has no KV heads of its own
    lin = f.sub("linear_attn_config")
    kda = lin.ints("kda_layers", n + 1, minimum=1) or []
    full = lin.ints("full_attn_layers", n + 1, minimum=1) or []
    if sorted(kda + full) != list(range(1, n + 1)):
        raise lin.error("kda_layers", f"and 'full_attn_layers' must name each of the layers 1 to {n} once, between "
                                      f"them")
    _, bound = lin.get("gate_lower_bound", default=None)  # its value changes no cost: whether it is given does
    if bound is not None and (isinstance(bound, bool) or not isinstance(bound, (int, float)) or not bound < 0):
        raise lin.error("gate_lower_bound", f"must be a negative number (the decay's floor) or null, got {bound!r}")
    mixer = parts.KimiDelta(lin.int("num_heads"), lin.int("head_dim"), lin.int("short_conv_kernel_size", default=4),
                            full_rank_gate=lin.bool("use_full_rank_gate", False), bounded=bound is not None,
                            fp32_weights=f.wrapper == "kimi_k3")  # as K3's checkpoint stores them (its tensor list)
    mla = _mla(f)
    attention = LatentAttention(heads, mla, rotary=not f.bool("mla_use_nope", False),
                                gate=f.bool("mla_use_output_gate", False))
    if f.str("topk_method", default="noaux_tc") != "noaux_tc":
        raise f.error("topk_method", f"is {f.data['topk_method']!r}; Kimi's router is DeepSeek-V3's: valid: 'noaux_tc'")
    act = _gated_act(f)
    if act == "situ" and (f.number("activation_situ_beta") is None or f.number("activation_situ_linear_beta") is None):
        raise f.error("activation_situ_linear_beta", "must be given with hidden_act situ (and activation_situ_beta): "
                                                     "SiTU without its soft cap of up is not modelled")
    latent = f.int("routed_expert_hidden_size", default=None)
    latent = None if latent == d else latent
    groups = f.int("num_expert_group", default=1) if f.bool("use_grouped_topk", False) else 1
    if groups > 1:
        f.int("topk_group")
    moe = MoE(experts=f.int("num_experts"), top_k=f.int("num_experts_per_token"),
              d_expert=f.int("moe_intermediate_size"),
              shared=f.int("num_shared_experts", default=0, minimum=0),
              first_dense=f.int("first_k_dense_replace", default=0, minimum=0),
              layer_freq=f.int("moe_layer_freq", default=1), router_bias="selection",
              scores=f.choice({"sigmoid": "sigmoid", "softmax": "softmax"}, "moe_router_activation_func",
                              default="sigmoid"),
              groups=groups, renormalize=f.bool("moe_renormalize", True),
              scaled=f.number("routed_scaling_factor", default=1.0) != 1.0, act=act,
              prefix="block_sparse_moe.", latent=latent, bias_dtype=FP32 if f.wrapper == "kimi_k3" else None,
              latent_names=("routed_expert_down_proj", "routed_expert_up_proj"),
              latent_norm="routed_expert_norm" if latent and f.bool("latent_moe_use_norm", False) else None)
    dense = MLP(f.int("intermediate_size"), act)
    res = _attn_res(f, n)
    stack = _stack(n, lambda i: attrs.evolve(parts.pre_norm(mixer if i + 1 in kda else attention,
                                                            moe if moe.placed(i) else dense), **res.get(i, {})),
                   period=n)
    weights = _weights(f)
    if weights["weight_format"] is not None:  # modules Kimi-K3's checkpoint keeps in bf16 though its ignore list
        # admits them (the engines build them unquantized: vLLM's and SGLang's kimi_k3 quant_config=None)
        fmt = weights["weight_format"]
        weights["weight_format"] = attrs.evolve(fmt, exclude=(*fmt.exclude, *KIMI_UNQUANTIZED))
    return dict(d_model=d, n_heads=heads, n_kv_heads=heads, d_ffn=dense.d_ffn, n_layers=n,
                vocab_size=f.int("vocab_size"),
                head_dim=mla.qk_nope_head_dim + mla.qk_rope_head_dim, dtype=_dtype(f), **weights, layers=stack,
                mlp=_gated(f), state_dtype=FP32, state_fixed=True, tie_embeddings=f.bool("tie_word_embeddings", False),
                res_blocks=(n - 1) // res["block"] + 1 if res else 0, **_mtp(f))


KIMI_UNQUANTIZED = ("model.layers.*.block_sparse_moe.routed_expert_down_proj",
                    "model.layers.*.block_sparse_moe.routed_expert_up_proj", "model.layers.*.self_attention_res_proj",
                    "model.layers.*.mlp_res_proj", "model.output_attn_res_proj")


def _attn_res(f: Fields, n: int) -> dict:
    """Block AttnRes (Kimi-K3's attn_res_block_size S; its modeling_kimi_linear.py _forward_attn_residual): each
    layer's Layer fields by index, and "block": S. Layer l's attention input mixes the ceil(l / S) snapshots written
    before it with the running sum (none at layer 0, whose input is the embedding), and where l is a multiple of S
    that input becomes a snapshot and the attention's output starts a new sum; its FFN input mixes the l // S + 1
    snapshots then written. {}: no AttnRes."""
    size = f.int("attn_res_block_size", default=None)
    if size is None:
        return {}
    return {"block": size, **{i: dict(res_mix=(-(-i // size), i // size + 1), res_restart=i % size == 0)
                              for i in range(n)}}


def _per_layer(f: Fields, key: str, built: list[str], otherwise: str) -> None:
    """A config's list of each layer's kind (`key`), read where it is the list the family builds (`built`); another
    list is refused, naming the first layer that differs and why (`otherwise`)."""
    _, given = f.get(key, default=None)
    if given is None or given == built:
        return
    if not isinstance(given, list) or len(given) != len(built):
        raise f.error(key, f"must list each of the {len(built)} layers, got {str(given)[:60]}")
    i = next(i for i, (a, b) in enumerate(zip(given, built)) if a != b)
    raise f.error(key, f"says {given[i]!r} for layer {i}, where this family builds {built[i]!r}: {otherwise}")


def _glm4_moe(f: Fields) -> dict:
    """GLM-4.5: GQA attention with q/k/v biases (attention_bias), partial rotary (0.5), per-head q/k norms where
    use_qk_norm, and DeepSeek-V3's MoE (sigmoid scores, selection bias, shared experts, first_k_dense_replace).
    The multi-token-prediction layers are not counted."""
    core = _core(f)
    bias = f.bool("attention_bias", False)
    attention = _attention(f, core, o_bias=False, qk_norm="head" if f.bool("use_qk_norm", False) else None)
    moe = _deepseek_moe(f, v3=True)
    stack = _moe_stack(core["n_layers"], attention, moe, MLP(core["d_ffn"], _gated_act(f)))
    return dict(**dict(core, qkv_bias=bias), mlp=_gated(f), moe=moe, layers=stack, **_mtp(f),
                tie_embeddings=f.bool("tie_word_embeddings", False))


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
                dtype=_dtype(f), **_weights(f), tie_embeddings=f.bool("tie_word_embeddings", True))


def _gpt_neo(f: Fields) -> dict:
    """EleutherAI's GPT-Neo (125M, 1.3B, 2.7B; transformers' gpt_neo): GPT-2's layer (LayerNorms with a shift,
    learned positions, a plain biased MLP of intermediate_size, else 4 x hidden) with q, k and v unbiased and
    out_proj biased; each layer global or local as attention_types expands ([[["global", "local"], 12]]: the pair
    twelve times), a local layer attending to the window_size keys up to its own; tied embeddings."""
    # GPTNeoConfig's attribute_map: num_hidden_layers and num_attention_heads are the same two fields
    n = f.int("num_layers", "num_hidden_layers")
    d, heads = f.int("hidden_size"), f.int("num_heads", "num_attention_heads")
    if d % heads:
        raise f.error("hidden_size", f"({d}) must be a multiple of 'num_heads' ({heads})")
    _, spec = f.get("attention_types")
    try:
        types = [kind for kinds, repeat in spec for _ in range(repeat) for kind in kinds]
    except (TypeError, ValueError):
        raise f.error("attention_types", f"must be a list of [[kinds...], repeats], got {str(spec)[:60]}") from None
    if len(types) != n or set(types) - {"global", "local"}:
        raise f.error("attention_types", f"must expand to one of 'global' or 'local' for each of the {n} layers "
                                         f"(num_layers), got {len(types)}: {sorted(set(map(str, types)))}")
    if f.get("attention_layers", default=types)[1] != types:  # the expansion GPTNeoConfig also saves
        raise f.error("attention_layers", "disagrees with what 'attention_types' expands to; give one")
    f.choice({a: "gelu" for a in GPT2_ACTS}, "activation_function", default="gelu_new")
    ffn = f.int("intermediate_size", default=4 * d)
    full = Attention(heads, heads, d // heads, rotary=False, o_bias=True)
    local = attrs.evolve(full, keys=Keys("sliding", f.int("window_size", default=256)))
    mlp = MLP(ffn, "gelu", gated=False, bias=True)
    layers = {k: parts.pre_norm(local if k == "local" else full, mlp, norm="layernorm", norm_bias=True)
              for k in ("global", "local")}
    return dict(d_model=d, n_heads=heads, n_kv_heads=heads, d_ffn=ffn, n_layers=n, vocab_size=f.int("vocab_size"),
                max_positions=f.int("max_position_embeddings"), positions="learned", norm="layernorm",
                norm_bias=True, mlp="gelu", mlp_bias=True, o_bias=True, dtype=_dtype(f), **_weights(f),
                layers=Stack.listed([layers[t] for t in types]), tie_embeddings=f.bool("tie_word_embeddings", True))


def _opt(f: Fields) -> dict:
    """Meta's OPT (transformers' opt, vLLM's opt.py): multi-head attention and a plain MLP, fc2(relu(fc1(x))) of
    ffn_dim, every projection biased where enable_bias; LayerNorms with a shift; learned positions, the table
    max_position_embeddings + 2 rows (OPTLearnedPositionalEmbedding's offset). do_layer_norm_before: pre-norm
    (self_attn_layer_norm, final_layer_norm), with a final norm unless _remove_final_layer_norm; false (OPT-350m):
    the original Transformer's post-norm, each branch's residual sum normed, and no final norm. Where
    word_embed_proj_dim is not hidden_size (OPT-350m's 512), the embeddings are that wide, project_in after the
    lookup and project_out before lm_head (DecoderConfig.embed_dim). lm_head tied unless tie_word_embeddings says
    otherwise. Two all-reduces a layer under tensor parallelism."""
    d = f.int("hidden_size")
    heads = f.int("num_attention_heads")
    if d % heads:
        raise f.error("hidden_size", f"({d}) must be a multiple of 'num_attention_heads' ({heads})")
    act = f.choice({"relu": "relu", **{a: "gelu" for a in GPT2_ACTS}}, "activation_function", default="relu")
    if not f.bool("layer_norm_elementwise_affine", True):
        raise f.error("layer_norm_elementwise_affine", "is false: LayerNorms without a scale or shift are not "
                                                       "modelled for OPT (published OPT models have them)")
    bias = f.bool("enable_bias", True)
    width = f.int("word_embed_proj_dim", default=d)
    layers = f.int("num_hidden_layers")
    core = dict(d_model=d, n_heads=heads, n_kv_heads=heads, d_ffn=f.int("ffn_dim"),
                n_layers=layers, vocab_size=f.int("vocab_size"), head_dim=d // heads,
                dtype=_dtype(f), **_weights(f), rotary_dim=None)
    attention = _attention(f, core, q_bias=bias, k_bias=bias, v_bias=bias, o_bias=bias, rotary=False)
    mlp = MLP(core["d_ffn"], act, gated=False, bias=bias)
    pre = f.bool("do_layer_norm_before", True)
    names = ("self_attn_layer_norm.weight", "final_layer_norm.weight")
    layer = (parts.pre_norm(attention, mlp, norm="layernorm", norm_bias=True) if pre else
             parts.Layer((parts.Sublayer(attention, key="attn", after=names[0]),
                          parts.Sublayer(mlp, key="mlp", after=names[1])), "layernorm", norm_bias=True))
    # training and generation (output_projection: OPT-13b's, which OPTConfig does not read): no cost
    f.get("layerdrop", "init_std", "prefix", "activation_dropout", "output_projection", default=None)
    positions = f.int("max_position_embeddings")
    return dict(**_summary_fields(core, attention), mlp=act, mlp_bias=bias, norm="layernorm", norm_bias=True,
                positions="learned", max_positions=positions, position_offset=2, context_window=positions,
                final_norm=pre and not f.bool("_remove_final_layer_norm", False), embed_dim=width if width != d else None,
                layers=Stack.uniform(layer, core["n_layers"]), tie_embeddings=f.bool("tie_word_embeddings", True))


def _gpt_bigcode(f: Fields) -> dict:
    """BigCode's StarCoder, StarCoderBase and SantaCoder (transformers' gpt_bigcode, vLLM's gpt_bigcode.py): GPT-2's
    layer (LayerNorms with a shift, learned positions of n_positions, biased projections, a plain MLP of n_inner,
    null: 4 x n_embd), with one KV head where multi_query (one c_attn of hidden + 2 x head_dim), else every head;
    lm_head tied. Two all-reduces a layer under tensor parallelism."""
    fields = _gpt2(f)
    if f.bool("multi_query", True):
        fields["n_kv_heads"] = 1
    f.get("attention_softmax_in_fp32", "scale_attention_softmax_in_fp32", default=None)  # numerics: no cost
    # BigCode's Megatron runner settings, which transformers and vLLM do not read
    f.get("inference_runner", "max_batch_size", "max_sequence_length", "pad_key_length", "pre_allocate_kv_cache",
          "validate_runner_input", "runner_max_sequence_length", default=None)
    return fields


def _olmo(f: Fields) -> dict:
    """AllenAI's OLMo (transformers' olmo, vLLM's olmo.py): Llama's layer in non-parametric LayerNorms (OlmoLayerNorm:
    no weight, no shift), the final norm too; q, k, v and o biased where attention_bias; clip_qkv's clamps of q, k
    and v noted, not counted."""
    core = _core(f)
    attention = _attention(f, core)
    f.choice({"silu": "silu"}, "hidden_act", default="silu")
    layer = parts.pre_norm(attention, MLP(core["d_ffn"], "silu"), norm="layernorm", norm_scale=False)
    return dict(**_summary_fields(core, attention), mlp="swiglu", norm="layernorm", norm_scale=False,
                layers=Stack.uniform(layer, core["n_layers"]), notes=_clip_qkv_note(f),
                tie_embeddings=f.bool("tie_word_embeddings", False))


def _stablelm(f: Fields) -> dict:
    """Stability AI's StableLM-3B-4E1T, StableLM-2 and Zephyr (transformers' stablelm, vLLM's stablelm.py): LayerNorms
    with a shift; GQA with q, k and v biased where use_qkv_bias (o_proj never); rope over partial_rotary_factor
    (default 0.25) of each head; where qk_layernorm (StableLM-2-12B), q and k LayerNormed per head, each head with a
    scale of its own and no shift (StableLmLayerNormPerHead); a SwiGLU; where use_parallel_residual (StableLM-2-12B),
    x + attention(ln(x)) + mlp(ln(x)) under one input_layernorm, else Llama's order. lm_head untied unless
    tie_word_embeddings says otherwise. The first remote-code configs (stablelm_epoch) spell partial_rotary_factor
    rope_pct; their use_norm_bias is not read by transformers, which builds the shifts (noted where false).
    vLLM's stablelm.py builds neither the q/k norms nor the parallel residual (it cannot load StableLM-2-12B):
    noted where set."""
    core = _core(f, rotary_default=_rotary_spelling(f, "rope_pct", 0.25))
    qkv = f.bool("use_qkv_bias", False)
    qk_norm, parallel = f.bool("qk_layernorm", False), f.bool("use_parallel_residual", False)
    attention = _attention(f, core, q_bias=qkv, k_bias=qkv, v_bias=qkv, o_bias=False,
                           qk_norm="head_layernorm" if qk_norm else None)
    mlp = MLP(core["d_ffn"], _gated_act(f))
    layer = (_parallel_block(attention, mlp) if parallel else
             parts.pre_norm(attention, mlp, norm="layernorm", norm_bias=True))
    f.get("norm_eps", "rotary_scaling_factor", "num_heads", default=None)  # legacy spellings: no cost
    unbuilt = [w for w, on in (("the q/k norms", qk_norm), ("the parallel residual", parallel)) if on]
    notes = [f"vLLM's stablelm.py does not build {' or '.join(unbuilt)} (it cannot load this checkpoint); priced "
             f"as transformers builds it"] if unbuilt else []
    if not f.bool("use_norm_bias", True):
        notes.append("use_norm_bias is false, which transformers' StableLM does not read: its LayerNorms have "
                     "shifts, and are priced with them")
    return dict(**_summary_fields(core, attention), mlp=_gated(f), norm="layernorm", norm_bias=True, notes=notes,
                layers=Stack.uniform(layer, core["n_layers"]), tie_embeddings=f.bool("tie_word_embeddings", False))


def _exaone(f: Fields) -> dict:
    """LG's EXAONE-3.0 and 3.5 (remote code ExaoneForCausalLM; vLLM's exaone.py): Llama's layer under its own names
    (num_layers, activation_function, wte / ln_1 / ln_2 / c_fc_0 / c_fc_1 / c_proj): RMSNorms, GQA of head_dim
    (else hidden / heads) without biases, a SwiGLU of intermediate_size (null: 4 x hidden_size); the head tied
    unless tie_word_embeddings says otherwise (ExaoneConfig's default is tied)."""
    d = f.int("hidden_size")
    heads = f.int("num_attention_heads")
    head_dim = f.int("head_dim", default=None)
    core = dict(d_model=d, n_heads=heads, n_kv_heads=f.int("num_key_value_heads", default=heads),
                d_ffn=f.int("intermediate_size", default=4 * d), n_layers=f.int("num_layers", "num_hidden_layers"),
                vocab_size=f.int("vocab_size"), head_dim=head_dim, dtype=_dtype(f), **_weights(f),
                rotary_dim=_rotary_dim(f, head_dim or d // heads))
    f.choice({"silu": "silu"}, "activation_function", default="silu")
    f.get("embed_dropout", default=None)  # training only
    attention = _attention(f, core)
    return dict(**_summary_fields(core, attention), mlp="swiglu",
                layers=Stack.uniform(parts.pre_norm(attention, MLP(core["d_ffn"], "silu")), core["n_layers"]),
                tie_embeddings=f.bool("tie_word_embeddings", True))


# vLLM 0.11.0 on Hopper picks FlashAttention 3, which has no ALiBi (flash_attn_interface.py asserts it away)
ALIBI_NOTE = ("ALiBi attention is priced as FlashAttention 2 runs it (slope x distance added to each score, 2 FLOPs); "
              "vLLM 0.11's default FlashAttention 3 on H100/H200 has no ALiBi: serve it with "
              "VLLM_FLASH_ATTN_VERSION=2 or VLLM_ATTENTION_BACKEND=TRITON_ATTN")


def _bloom(f: Fields) -> dict:
    """BigScience's BLOOM and BLOOMZ (transformers' bloom, vLLM's bloom.py): the embeddings LayerNormed
    (word_embeddings_layernorm); multi-head ALiBi attention (no positions) from one biased query_key_value and a
    biased dense; a plain biased MLP 4 x hidden wide (n_inner is read by neither transformers nor vLLM: another
    value is noted) with gelu; LayerNorms with a shift; the head tied. Two all-reduces a layer under tensor
    parallelism. The first configs' n_embed, num_attention_heads and num_hidden_layers are read as BloomConfig maps
    them."""
    d = f.int("hidden_size", "n_embed")
    heads = f.int("n_head", "num_attention_heads")
    layers = f.int("n_layer", "num_hidden_layers")
    if d % heads:
        raise f.error("hidden_size", f"({d}) must be a multiple of 'n_head' ({heads})")
    core = dict(d_model=d, n_heads=heads, n_kv_heads=heads, d_ffn=4 * d, n_layers=layers,
                vocab_size=f.int("vocab_size"), head_dim=d // heads, dtype=_dtype(f), **_weights(f), rotary_dim=None)
    attention = _attention(f, core, q_bias=True, k_bias=True, v_bias=True, o_bias=True, rotary=False, alibi=True)
    inner = f.int("n_inner", default=None)
    notes = [ALIBI_NOTE]
    if inner not in (None, 4 * d):
        notes.append(f"n_inner ({inner:,}) is read by neither transformers nor vLLM: the MLP is 4 x hidden_size "
                     f"({4 * d:,}) wide, as priced")
    # Megatron-DeepSpeed's training settings, which BloomConfig keeps and transformers and vLLM do not run
    f.get("offset_alibi", "masked_softmax_fusion", "attention_softmax_in_fp32", "bias_dropout_fusion",
          "skip_bias_add", "skip_bias_add_qkv", "unk_token_id", "slow_but_exact",
          "apply_residual_connection_post_layernorm", default=None)
    layer = parts.pre_norm(attention, MLP(4 * d, "gelu", gated=False, bias=True), norm="layernorm", norm_bias=True)
    return dict(**_summary_fields(core, attention), mlp="gelu", mlp_bias=True, norm="layernorm", norm_bias=True,
                embed_norm=True, positions="alibi", layers=Stack.uniform(layer, layers), notes=notes,
                tie_embeddings=f.bool("tie_word_embeddings", True))


def _baichuan(f: Fields) -> dict:
    """Baichuan-7B and 13B, Baichuan2-7B and 13B (remote code; vLLM's baichuan.py): Llama's layer with one W_pack
    (q, k and v fused, no biases), RMSNorms, a SwiGLU, the head untied. Positions as vLLM picks them: rope for
    BaiChuanForCausalLM (Baichuan-7B) and for BaichuanForCausalLM of hidden_size 4,096 (Baichuan2-7B), ALiBi for the
    others (Baichuan-13B, Baichuan2-13B). Baichuan2's lm_head is normalized once at load (NormHead), no cost a
    step."""
    core = _core(f)
    _, archs = f.get("architectures", default=[])
    alibi = "BaiChuanForCausalLM" not in (archs or []) and core["d_model"] != 4096
    f.choice({"silu": "silu"}, "hidden_act", default="silu")
    f.get("model_max_length", "z_loss_weight", "gradient_checkpointing", default=None)  # training: no cost
    attention = _attention(f, core, **({"rotary": False, "alibi": True} if alibi else {}))
    return dict(**_summary_fields(core, attention), mlp="swiglu", notes=[ALIBI_NOTE] if alibi else [],
                layers=Stack.uniform(parts.pre_norm(attention, MLP(core["d_ffn"], "silu")), core["n_layers"]),
                tie_embeddings=f.bool("tie_word_embeddings", False), **({"positions": "alibi"} if alibi else {}),
                context_window=f.int("model_max_length", "max_position_embeddings", default=None))


def _mpt(f: Fields) -> dict:
    """MosaicML's MPT-7B and 30B (model_type mpt; vLLM's mpt.py on transformers' MptConfig): multi-head ALiBi
    attention from one Wqkv and out_proj; a plain MLP of expansion_ratio x d_model with exact gelu; LayerNorms; every
    bias (the norms' too) where no_bias is false; the head tied. attn_config is read: alibi must be true (vLLM
    asserts it), attn_type multihead_attention, kv_n_heads absent or every head (transformers' MptConfig drops it and
    vLLM builds every head), no rope, prefix_lm or qk_ln (refused by name); clip_qkv is noted. ffn_config must be
    the plain MLP (mptmlp); its ffn_hidden_size, softmax_scale and logit_scale, which vLLM does not run, are noted.
    norm_type must be low_precision_layernorm and the head tied (vLLM asserts both). learned_pos_emb builds no
    table beside ALiBi (MPT's checkpoints have none)."""
    d = f.int("d_model", "hidden_size")
    heads = f.int("n_heads", "num_attention_heads")
    layers = f.int("n_layers", "num_hidden_layers")
    if d % heads:
        raise f.error("d_model", f"({d}) must be a multiple of 'n_heads' ({heads})")
    attn = f.optional_sub("attn_config")
    if not attn.bool("alibi", True):
        raise attn.error("alibi", "is false: MPT without ALiBi (learned positions or rope) is not modelled, and "
                                  "vLLM's mpt.py asserts ALiBi")
    attn.choice({"multihead_attention": "mha"}, "attn_type", default="multihead_attention")
    if attn.int("kv_n_heads", default=heads) != heads:
        raise attn.error("kv_n_heads", f"is not n_heads ({heads}): grouped-query MPT is not modelled (transformers' "
                                       f"MptConfig drops it and vLLM builds every head)")
    for key, why in (("rope", "rope positions"), ("prefix_lm", "a prefix LM's bidirectional prefix"),
                     ("qk_ln", "LayerNorms of q and k")):
        if attn.bool(key, False):
            raise attn.error(key, f"is true: {why} in MPT is not modelled")
    notes = [ALIBI_NOTE, *_clip_qkv_note(attn)]
    attn.get("alibi_bias_max", "attn_impl", "attn_pdrop", "attn_uses_sequence_id", default=None)  # no cost
    if attn.get("softmax_scale", default=None)[1] is not None:
        notes.append("attn_config.softmax_scale is set; vLLM scales the scores by head_dim^-0.5 whatever it says "
                     "(the same cost)")
    ffn = f.optional_sub("ffn_config")
    ffn.choice({"mptmlp": "mlp"}, "ffn_type", default="mptmlp")
    ratio = f.number("expansion_ratio", default=4)
    width = int(d * ratio)
    if ffn.get("ffn_hidden_size", default=None)[1] not in (None, width):
        notes.append(f"ffn_config.ffn_hidden_size is not run by vLLM, which builds expansion_ratio x d_model "
                     f"({width:,}), as priced")
    _, act = ffn.get("ffn_act_fn", default=None)
    if act is not None:
        notes.append(f"ffn_config.ffn_act_fn ({str(act)[:40]}) is not read by vLLM, which runs gelu, as priced")
    f.choice({"low_precision_layernorm": "layernorm"}, "norm_type", default="low_precision_layernorm")
    if not f.bool("tie_word_embeddings", True):
        raise f.error("tie_word_embeddings", "is false: vLLM's mpt.py builds MPT's head tied to wte (it asserts it)")
    if f.get("logit_scale", default=None)[1] is not None:
        notes.append("logit_scale is set; neither transformers' MPT nor vLLM scales the logits, as priced")
    # training and initialization settings, and learned_pos_emb (no table beside ALiBi): no cost
    f.get("learned_pos_emb", "init_config", "init_device", "tokenizer_name", "verbose", "emb_pdrop",
          "embedding_fraction", default=None)
    bias = not f.bool("no_bias", True)
    core = dict(d_model=d, n_heads=heads, n_kv_heads=heads, d_ffn=width, n_layers=layers,
                vocab_size=f.int("vocab_size"), head_dim=d // heads, dtype=_dtype(f), **_weights(f), rotary_dim=None)
    attention = _attention(f, core, q_bias=bias, k_bias=bias, v_bias=bias, o_bias=bias, rotary=False, alibi=True)
    notes += _unread_keys(attn, {"alibi", "attn_type", "kv_n_heads", "rope", "prefix_lm", "qk_ln", "clip_qkv",
                                 "alibi_bias_max", "attn_impl", "attn_pdrop", "attn_uses_sequence_id",
                                 "softmax_scale"}, "attn_config")
    notes += _unread_keys(ffn, {"ffn_type", "ffn_hidden_size", "ffn_act_fn"}, "ffn_config")
    layer = parts.Layer((parts.Sublayer(attention, "norm_1.weight", key="attn"),
                         parts.Sublayer(MLP(width, "gelu", gated=False, bias=bias), "norm_2.weight", key="mlp")),
                        "layernorm", norm_bias=bias)
    return dict(**_summary_fields(core, attention), mlp="gelu", mlp_bias=bias, norm="layernorm", norm_bias=bias,
                positions="alibi", layers=Stack.uniform(layer, layers), notes=notes, tie_embeddings=True,
                context_window=f.int("max_seq_len", default=None))


def _rotary_spelling(f: Fields, key: str, default: float) -> float:
    """The rotated fraction of each head as an older config spells partial_rotary_factor (GPT-NeoX's rotary_pct,
    StableLM's first rope_pct), else `default`: _core's rotary_default, which a partial_rotary_factor beside it
    overrides, so the two must agree (refused by name where they do not)."""
    f.read.add(key)
    value = f.data.get(key)
    if value is not None and "partial_rotary_factor" in f.data and f.data["partial_rotary_factor"] != value:
        raise f.error(key, f"is {value!r} and 'partial_rotary_factor' is {f.data['partial_rotary_factor']!r}: they "
                           f"disagree; give one")
    return default if value is None else f.number(key)


def _parallel_block(attention, mlp, *, norms: tuple[str, ...] = ("input_layernorm.weight",),
                    reduce_once: bool = False) -> parts.Layer:
    """The parallel residual of GPT-J, GPT-NeoX, Phi and Falcon, x + attention(ln(x)) + mlp(ln(x)), in LayerNorms
    with a shift: one norm both branches read, or one each (`norms`: GPT-NeoX's input_layernorm and
    post_attention_layernorm, Falcon-40B's ln_attn and ln_mlp); `reduce_once`: the two partial sums added, then
    all-reduced once under tensor parallelism (vLLM's falcon.py)."""
    pre, own = (norms[0], ()) if len(norms) == 1 else (None, norms)
    block = parts.Branches((attention, mlp), norms=own, norm="layernorm", norm_bias=True, reduce_once=reduce_once)
    return parts.Layer((parts.Sublayer(block, pre, key="attn"),), "layernorm", norm_bias=True)


def _gpt_neox(f: Fields) -> dict:
    """EleutherAI's GPT-NeoX-20B and Pythia (transformers' gpt_neox, vLLM's gpt_neox.py): LayerNorms with a shift;
    multi-head attention from one query_key_value with biases (attention_bias) and a biased dense; rope over
    rotary_pct of each head (newer configs: partial_rotary_factor); a plain biased MLP, dense_4h_to_h(act(
    dense_h_to_4h(x))); where use_parallel_residual, x + attention(input_layernorm(x)) + mlp(
    post_attention_layernorm(x)), else Llama's order; embed_out untied unless tie_word_embeddings. Under tensor
    parallelism dense and dense_4h_to_h each all-reduce (RowParallelLinear), two a layer."""
    core = _core(f, rotary_default=_rotary_spelling(f, "rotary_pct", 0.25))
    _fixed_head_dim(f, core, "GPT-NeoX")
    act = f.choice({a: "gelu" for a in GPT2_ACTS}, "hidden_act", default="gelu")
    bias = f.bool("attention_bias", True)
    attention = _attention(f, core, q_bias=bias, k_bias=bias, v_bias=bias, o_bias=bias)
    mlp = MLP(core["d_ffn"], act, gated=False, bias=True)
    layer = (_parallel_block(attention, mlp, norms=("input_layernorm.weight", "post_attention_layernorm.weight"))
             if f.bool("use_parallel_residual", True) else
             parts.pre_norm(attention, mlp, norm="layernorm", norm_bias=True))
    return dict(**_summary_fields(core, attention), mlp="gelu", mlp_bias=True, norm="layernorm", norm_bias=True,
                layers=Stack.uniform(layer, core["n_layers"]), tie_embeddings=f.bool("tie_word_embeddings", False))


def _gptj(f: Fields) -> dict:
    """EleutherAI's GPT-J (transformers' gptj, vLLM's gpt_j.py) and Salesforce's CodeGen (codegen: the same block,
    its q, k and v one qkv_proj): GPT-2's field names; one LayerNorm (ln_1) both
    branches of a parallel residual read; q, k, v and out_proj without biases; rope over rotary_dim of each head
    (null: all of it); a plain biased MLP, fc_out(gelu(fc_in(x))) of n_inner (null: 4 x n_embd); lm_head untied and
    biased, its bias added (vLLM adds lm_head.bias to the logits too). Two all-reduces a layer under tensor
    parallelism (out_proj and fc_out)."""
    d = f.int("n_embd", "hidden_size")
    heads = f.int("n_head", "num_attention_heads")
    f.choice({a: "gelu" for a in GPT2_ACTS}, "activation_function", default="gelu_new")
    core = dict(d_model=d, n_heads=heads, n_kv_heads=heads, d_ffn=f.int("n_inner", default=4 * d),
                n_layers=f.int("n_layer", "num_hidden_layers"), vocab_size=f.int("vocab_size"), head_dim=d // heads,
                dtype=_dtype(f), **_weights(f), rotary_dim=f.int("rotary_dim", default=None))
    if d % heads:
        raise f.error("n_embd", f"({d}) must be a multiple of 'n_head' ({heads})")
    attention = _attention(f, core)
    layer = _parallel_block(attention, MLP(core["d_ffn"], "gelu", gated=False, bias=True), norms=("ln_1.weight",))
    return dict(**_summary_fields(core, attention), mlp="gelu", mlp_bias=True, norm="layernorm", norm_bias=True,
                layers=Stack.uniform(layer, core["n_layers"]), tie_embeddings=f.bool("tie_word_embeddings", False),
                head_bias=True, context_window=f.int("n_positions", default=None))


def _phi(f: Fields) -> dict:
    """Microsoft's Phi-1, Phi-1.5 and Phi-2 (transformers' phi, vLLM's phi.py): a parallel residual under one
    LayerNorm with a shift, x + attention(ln(x)) + mlp(ln(x)); biased q, k, v and dense; rope over
    partial_rotary_factor (default 0.5) of each head; where qk_layernorm, q and k LayerNormed per head with one
    scale and shift of head_dim the heads share; a plain biased MLP, fc2(gelu_new(fc1(x))); lm_head untied and
    biased, its bias added (as vLLM adds it). Two all-reduces a layer under tensor parallelism. vLLM's phi.py
    builds every KV head, no q/k norms and an MLP of n_inner (else 4 x hidden_size) whatever num_key_value_heads,
    qk_layernorm and intermediate_size say; where they say otherwise a note tells (priced as transformers)."""
    core = _core(f, rotary_default=0.5)
    _fixed_head_dim(f, core, "Phi")
    f.choice({a: "gelu" for a in GPT2_ACTS}, "hidden_act", default="gelu_new")
    qk_norm = f.bool("qk_layernorm", False)
    attention = _attention(f, core, q_bias=True, k_bias=True, v_bias=True, o_bias=True,
                           qk_norm="shared_layernorm" if qk_norm else None)
    f.get("resid_pdrop", "embd_pdrop", "attention_dropout", default=None)  # training only
    vllm_ffn = f.int("n_inner", default=4 * core["d_model"])
    differ = [what for what, differs in (
        (f"num_key_value_heads ({core['n_kv_heads']}: vLLM builds {core['n_heads']})",
         core["n_kv_heads"] != core["n_heads"]),
        ("qk_layernorm (vLLM builds no q/k norms)", qk_norm),
        (f"intermediate_size ({core['d_ffn']:,}: vLLM builds {vllm_ffn:,})", core["d_ffn"] != vllm_ffn)) if differs]
    notes = (f"vLLM's phi.py does not read {', '.join(differ)}; priced as transformers builds it",) if differ else ()
    layer = _parallel_block(attention, MLP(core["d_ffn"], "gelu", gated=False, bias=True))
    return dict(**_summary_fields(core, attention), mlp="gelu", mlp_bias=True, norm="layernorm", norm_bias=True,
                layers=Stack.uniform(layer, core["n_layers"]), tie_embeddings=f.bool("tie_word_embeddings", False),
                head_bias=True, notes=notes)


def _persimmon(f: Fields) -> dict:
    """Adept's Persimmon-8B (transformers' persimmon, vLLM's persimmon.py): LayerNorms with a shift; multi-head
    attention from one biased query_key_value, q and k LayerNormed per head with one scale and shift of head_dim the
    heads share (where qk_layernorm), rope over partial_rotary_factor (default 0.5) of each head, a biased dense; a
    plain biased MLP, dense_4h_to_h(relu(dense_h_to_4h(x))^2); lm_head untied and without a bias (vLLM never ties
    it, so tie_word_embeddings true is refused)."""
    core = _core(f, rotary_default=0.5)
    _fixed_head_dim(f, core, "Persimmon")
    if core["n_kv_heads"] != core["n_heads"]:
        raise f.error("num_key_value_heads", f"is {core['n_kv_heads']}, but Persimmon's attention (transformers' "
                                             f"and vLLM's) has a key and value head for each of its {core['n_heads']} "
                                             f"heads")
    f.choice({"relu2": "relu2"}, "hidden_act", default="relu2")
    attention = _attention(f, core, q_bias=True, k_bias=True, v_bias=True, o_bias=True,
                           qk_norm="shared_layernorm" if f.bool("qk_layernorm", True) else None)
    if f.bool("tie_word_embeddings", False):
        raise f.error("tie_word_embeddings", "is true, but vLLM's persimmon.py never ties lm_head to the embeddings")
    layer = parts.pre_norm(attention, MLP(core["d_ffn"], "relu2", gated=False, bias=True), norm="layernorm",
                           norm_bias=True)
    return dict(**_summary_fields(core, attention), mlp="relu2", mlp_bias=True, norm="layernorm", norm_bias=True,
                layers=Stack.uniform(layer, core["n_layers"]), tie_embeddings=False)


def _falcon(f: Fields, *, legacy: bool = False) -> dict:
    """TII's Falcon-7B, 40B, 180B and 11B (transformers' falcon, vLLM's falcon.py): head_dim hidden_size / heads;
    one KV head where multi_query, num_kv_heads of them where new_decoder_architecture (default: every head), else
    every head; q, k, v, dense and the MLP biased where bias; a plain MLP, dense_4h_to_h(gelu(dense_h_to_4h(x))) of
    ffn_hidden_size (null: 4 x hidden_size); rope. Where parallel_attn or new_decoder_architecture, a parallel
    residual: under one input_layernorm (Falcon-7B, and Falcon-11B's num_ln_in_parallel_attn 1), or ln_attn and
    ln_mlp (new_decoder_architecture's default, 2: Falcon-40B, 180B); its attention and MLP summed before one
    all-reduce under tensor parallelism, as vLLM's reduce_row_parallel_results. Else Llama's order with
    input_layernorm and post_attention_layernorm, two all-reduces. LayerNorms with a shift; lm_head tied unless
    tie_word_embeddings says otherwise. Where alibi (Falcon-RW), ALiBi biases in place of rope, as vLLM runs them
    (Attention.alibi). The first in-library configs' n_embed, n_head, n_head_kv and n_layer are read as their later
    names. vLLM builds the MLP 4 x hidden_size wide with gelu whatever ffn_hidden_size and activation say; where they
    say otherwise a note tells (priced as transformers).
    `legacy`: the remote-code RefinedWeb and RefinedWebModel configs (Falcon-40B's and 7B's first files), the new
    decoder architecture where n_head_kv is given, as transformers' convert_custom_code_checkpoint.py converts them
    (Falcon-40B's n_head_kv 8; vLLM's RWConfig takes it from hidden_size 8,192, which agrees for every published
    one)."""
    d = f.int("hidden_size", "n_embed")
    heads = f.int("num_attention_heads", "n_head")
    if d % heads:
        raise f.error("hidden_size", f"({d}) must be a multiple of 'num_attention_heads' ({heads})")
    alibi = f.bool("alibi", False)
    new = (f.get("n_head_kv", default=None)[1] is not None if legacy else
           f.bool("new_decoder_architecture", False))
    multi_query = f.bool("multi_query", True)
    kv = f.int("num_kv_heads", "n_head_kv", default=heads) if new else 1 if multi_query else heads
    parallel = f.bool("parallel_attn", not legacy)  # vLLM's RWConfig defaults it false, FalconConfig true
    lns = f.int("num_ln_in_parallel_attn", default=2 if new else 1)
    if lns not in (1, 2) or (lns == 2 and not new):
        raise f.error("num_ln_in_parallel_attn", f"is {lns}: 1 (one input_layernorm), or 2 (ln_attn and ln_mlp) "
                                                 f"with new_decoder_architecture")
    bias = f.bool("bias", False)
    core = dict(d_model=d, n_heads=heads, n_kv_heads=kv, d_ffn=f.int("ffn_hidden_size", default=4 * d),
                n_layers=f.int("num_hidden_layers", "n_layer"), vocab_size=f.int("vocab_size"), head_dim=d // heads,
                dtype=_dtype(f), **_weights(f), rotary_dim=None if alibi else _rotary_dim(f, d // heads))
    act = f.choice({a: "gelu" for a in GPT2_ACTS}, "activation", default="gelu")
    _, named = f.get("activation", default="gelu")
    notes = [ALIBI_NOTE] if alibi else []
    if core["d_ffn"] != 4 * d or named != "gelu":
        notes.append(f"vLLM's falcon.py builds the MLP 4 x hidden_size wide with gelu whatever ffn_hidden_size "
                     f"({core['d_ffn']:,}) and activation ({named}) say; priced as transformers builds it")
    # neither transformers nor vLLM reads these
    f.get("apply_residual_connection_post_layernorm", "ff_factor", default=None)
    attention = _attention(f, core, q_bias=bias, k_bias=bias, v_bias=bias, o_bias=bias,
                           **({"rotary": False, "alibi": True} if alibi else {}))
    mlp = MLP(core["d_ffn"], act, gated=False, bias=bias)
    if new or parallel:
        norms = ("ln_attn.weight", "ln_mlp.weight") if new and lns == 2 else ("input_layernorm.weight",)
        layer = _parallel_block(attention, mlp, norms=norms, reduce_once=True)
    else:
        layer = parts.pre_norm(attention, mlp, norm="layernorm", norm_bias=True)
    return dict(**_summary_fields(core, attention), mlp="gelu", mlp_bias=bias, norm="layernorm", norm_bias=True,
                layers=Stack.uniform(layer, core["n_layers"]), tie_embeddings=f.bool("tie_word_embeddings", True),
                notes=notes, **({"positions": "alibi"} if alibi else {}))


# Hybrid layer letters (Nemotron-H's hybrid_override_pattern): Mamba-2, attention, MLP, MoE; and the same kinds as
# transformers' later layers_block_type spells them.
HYBRID = {"M": "mamba", "*": "attention", "-": "mlp", "E": "moe"}


def _mamba(f: Fields, d: int, *, heads_key: str = "mamba_num_heads", head_dim_key: str = "mamba_head_dim",
           state_key: str = "ssm_state_size", expanded: bool = True) -> Mamba2:
    """A Mamba-2 mixer from Mamba2Config's / NemotronHConfig's fields; `expanded` (Mamba2Config's): its heads x
    head_dim must be expand x d. Nemotron-H's mixer is heads x head_dim wide whatever expand says
    (NemotronHMamba2Mixer: intermediate_size = mamba_num_heads * mamba_head_dim; Nemotron-3 Nano's 64 x 64 beside
    expand 2 x 2,688)."""
    mamba = Mamba2(n_heads=f.int(heads_key), head_dim=f.int(head_dim_key), d_state=f.int(state_key),
                   n_groups=f.int("n_groups", default=1), d_conv=f.int("conv_kernel", default=4),
                   chunk_size=f.int("chunk_size", default=256), conv_bias=f.bool("use_conv_bias", True),
                   proj_bias=f.bool("use_bias", False))
    expand = f.int("expand", default=2)
    if expanded and mamba.n_heads * mamba.head_dim != expand * d:
        raise f.error(heads_key, f"x {head_dim_key!r} ({mamba.n_heads} x {mamba.head_dim}) must equal 'expand' x "
                                 f"'hidden_size'")
    return mamba


def _mamba_fields(f: Fields, d: int, width: int, width_key: str, **options) -> Mamba2:
    """A Mamba-2 mixer from the mamba_* fields Falcon-H1's and Granite-4.0's configs share (their transformers
    defaults): mamba_n_heads heads of mamba_d_head ("auto": `width` / heads) making up `width` (named `width_key` in
    errors), mamba_d_state, mamba_n_groups, mamba_d_conv, mamba_chunk_size, mamba_conv_bias, mamba_proj_bias."""
    n_heads = f.int("mamba_n_heads", default=128)
    _, d_head = f.get("mamba_d_head", default="auto")
    if d_head == "auto":
        if width % n_heads:
            raise f.error(width_key, f"({width}) must be a multiple of 'mamba_n_heads' ({n_heads}) when "
                                     f"'mamba_d_head' is auto")
        d_head = width // n_heads
    else:
        d_head = f.int("mamba_d_head")
    if n_heads * d_head != width:
        raise f.error(width_key, f"({width}) must equal 'mamba_n_heads' x 'mamba_d_head' ({n_heads} x {d_head})")
    return Mamba2(n_heads=n_heads, head_dim=d_head, d_state=f.int("mamba_d_state", default=256),
                  n_groups=f.int("mamba_n_groups", default=1), d_conv=f.int("mamba_d_conv", default=4),
                  chunk_size=f.int("mamba_chunk_size", default=256), conv_bias=f.bool("mamba_conv_bias", True),
                  proj_bias=f.bool("mamba_proj_bias", False), **options)


def _zamba2(f: Fields) -> dict:
    """Zyphra's Zamba2 (1.2B, 2.7B, 7B; transformers' zamba2, vLLM's zamba2.py): layers_block_type names each of
    num_hidden_layers layers mamba or hybrid (hybrid_layer_ids, which transformers derives from it, must agree). Every
    layer is a Mamba-2 mixer after its input_layernorm: n_mamba_heads heads making up mamba_expand x hidden
    (mamba_headdim, where given, must be that / heads), mamba_d_state, mamba_ngroups, mamba_d_conv, chunk_size,
    use_conv_bias, add_bias_linear. A hybrid layer first runs shared block j mod num_mem_blocks (j: its place among
    the hybrid layers, models.zamba.HybridMamba): multi-head attention over num_attention_heads heads of 2 x hidden /
    heads (attention_head_dim and attention_hidden_size, where given, must say so), rope where use_mem_rope, q, k and
    v adapters of adapter_rank where use_shared_attention_adapter; a GeGLU of intermediate_size (4 x hidden where
    absent) with its gate_up adapter of adapter_rank. vLLM builds every KV head whatever num_key_value_heads says and
    ties lm_head whatever tie_word_embeddings says (noted where they differ); ffn_hidden_size, kv_channels and
    num_query_groups are overwritten by transformers and read by neither. The first Zyphra-format configs
    (state_size, layers "m" and "g") are refused by layers_block_type: vLLM and transformers cannot build them."""
    n, d = f.int("num_hidden_layers"), f.int("hidden_size")
    heads = f.int("num_attention_heads")
    types = f.words("layers_block_type", n, ("mamba", "hybrid"))
    if types is None:
        raise f.error("layers_block_type", "is missing: Zamba2 names each layer mamba or hybrid")
    hybrid = [i for i, t in enumerate(types) if t == "hybrid"]
    if f.ints("hybrid_layer_ids", n) not in (None, hybrid):
        raise f.error("hybrid_layer_ids", f"disagrees with the hybrid layers of 'layers_block_type' ({hybrid})")
    width = f.int("mamba_expand", default=2) * d
    mamba_heads = f.int("n_mamba_heads", default=8)
    if width % mamba_heads or f.int("mamba_headdim", default=width // mamba_heads) != width // mamba_heads:
        raise f.error("n_mamba_heads", f"({mamba_heads}) must split mamba_expand x hidden_size ({width}) into "
                                       f"heads of mamba_headdim")
    mamba = Mamba2(n_heads=mamba_heads, head_dim=width // mamba_heads, d_state=f.int("mamba_d_state", default=64),
                   n_groups=f.int("mamba_ngroups", default=1), d_conv=f.int("mamba_d_conv", default=4),
                   chunk_size=f.int("chunk_size", default=256), conv_bias=f.bool("use_conv_bias", True),
                   proj_bias=f.bool("add_bias_linear", False))
    if (2 * d) % heads:
        raise f.error("num_attention_heads", f"({heads}) must divide the shared blocks' width, 2 x hidden_size")
    head_dim = 2 * d // heads
    _restated(f, "Zamba2", attention_hidden_size=2 * d, attention_head_dim=head_dim)
    f.get("ffn_hidden_size", "kv_channels", "num_query_groups", "use_mem_eff_path", "use_long_context", default=None)
    f.choice({"gelu": "gelu"}, "hidden_act", default="gelu")
    rank = f.int("adapter_rank", default=128)
    _rotary_dim(f, head_dim)  # type checks only: rope turns whole heads
    attention = Attention(heads, heads, head_dim, rotary=f.bool("use_mem_rope", False), out_dim=d,
                          lora_rank=rank if f.bool("use_shared_attention_adapter", False) else None)
    mlp = MLP(f.int("intermediate_size", default=4 * d), "gelu", lora_rank=rank)
    blocks = f.int("num_mem_blocks", default=1)
    mamba_layer = parts.Layer((parts.Sublayer(mamba, "input_layernorm.weight", key="attn"),))
    layers = [mamba_layer] * n
    for j, i in enumerate(hybrid):
        part = zamba.HybridMamba(mamba, attention, mlp, block=j % blocks, holds=j < blocks)
        layers[i] = parts.Layer((parts.Sublayer(part, None, key="attn"),))
    kv = f.int("num_key_value_heads", default=heads)
    notes = [what for what, differs in (
        (f"num_key_value_heads ({kv}): vLLM's zamba2.py builds a key and value head for each of the {heads} heads, "
         f"as priced", kv != heads),
        ("tie_word_embeddings is false, but vLLM's zamba2.py ties lm_head to the embeddings, as priced",
         not f.bool("tie_word_embeddings", True))) if differs]
    return dict(d_model=d, n_heads=heads, n_kv_heads=heads, head_dim=head_dim, d_ffn=mlp.d_ffn, n_layers=n,
                vocab_size=f.int("vocab_size"), dtype=_dtype(f), **_weights(f), mlp="geglu",
                layers=Stack.listed(layers), tie_embeddings=True, notes=tuple(notes),
                **_state_dtype(f, "mamba_ssm_cache_dtype"))


def _mimo_v2(f: Fields) -> dict:
    """Xiaomi's MiMo-V2.5 and V2.6 (model_type mimo_v2, MiMoV2ForCausalLM): MiMo-V2-Flash's text model, its fields
    at the top level beside the vision and audio towers' configs, which are not costed (a note says so)."""
    fields = _mimo_v2_flash(f)
    towers = [k for k in ("vision_config", "audio_config") if f.get(k, default=None)[1] is not None]
    if towers:
        fields["notes"] = (*fields.get("notes", ()), f"the language model is costed; the towers {', '.join(towers)} "
                                                     f"describe are not")
    return fields


def _moe_layers_enum(f: Fields, n: int) -> set[int]:
    """StepFun's moe_layers_enum: the MoE layers, a comma-separated string (the engines split it on commas)."""
    _, listed = f.get("moe_layers_enum", default=None)
    if not isinstance(listed, str) or not all(i.strip().isdigit() for i in listed.split(",")):
        raise f.error("moe_layers_enum", f"must list the MoE layers, comma-separated, got {listed!r}")
    layers = {int(i) for i in listed.split(",")}
    if max(layers) >= n:
        raise f.error("moe_layers_enum", f"names a layer beyond the {n}")
    return layers


def _step3(f: Fields) -> dict:
    """StepFun's Step-3 (step3_text, Step-3's text_config; vLLM's step3_text.py, SGLang's step3_vl.py): MFA attention,
    q through a low rank (q_proj [d -> share_q_dim], its RMSNorm inter_norm, wq [share_q_dim -> heads x head_dim]) over
    one KV head of head_dim from k_proj and v_proj (the engines build one whatever num_attention_groups says, so
    another is refused), rope over whole heads, no biases and no q/k norms; a SwiGLU of intermediate_size, or where
    moe_layers_enum lists the layer moe_num_experts experts of moe_intermediate_size, softmax top moe_top_k,
    renormalized where norm_expert_weight, beside a shared expert of share_expert_dim; the head untied. Under tensor
    parallelism q_proj, k_proj, v_proj and inter_norm run whole on every GPU, as vLLM replicates them; wq and o_proj
    split by heads."""
    d, n, heads = f.int("hidden_size"), f.int("num_hidden_layers"), f.int("num_attention_heads")
    if f.int("num_attention_groups", default=1) != 1:
        raise f.error("num_attention_groups", "must be 1: vLLM's and SGLang's Step-3 attention builds one KV head")
    head_dim = f.int("head_dim", default=d // heads)
    attention = Attention(heads, 1, head_dim, q_rank=f.int("share_q_dim", default=2048),
                          rotary_dim=_rotary_dim(f, head_dim))
    f.get("max_seq_len", default=None)  # a context limit
    moe_layers = _moe_layers_enum(f, n)
    moe = MoE(experts=f.int("moe_num_experts", default=48), top_k=f.int("moe_top_k", default=3),
              d_expert=f.int("moe_intermediate_size", default=5120),
              shared_d=f.int("share_expert_dim", default=5120, minimum=0) or None,
              renormalize=f.bool("norm_expert_weight", False), prefix="moe.", shared_name="share_expert")
    dense = MLP(f.int("intermediate_size", default=18432), "silu")
    f.choice({"silu": "silu"}, "hidden_act", default="silu")
    return dict(d_model=d, n_heads=heads, n_kv_heads=1, head_dim=head_dim, d_ffn=dense.d_ffn, n_layers=n,
                vocab_size=f.int("vocab_size", default=128815), dtype=_dtype(f), **_weights(f), mlp="swiglu",
                layers=_stack(n, lambda i: parts.pre_norm(attention, moe if i in moe_layers else dense), period=n),
                moe=moe, tie_embeddings=f.bool("tie_word_embeddings", False),
                context_window=f.int("max_position_embedding", "max_position_embeddings", default=None))


def _step3p5(f: Fields) -> dict:
    """StepFun's Step-3.5-Flash (model_type step3p5; Step-3.7's text_config: its modeling_step3p5.py, vLLM's and
    SGLang's step3p5.py). Layers as layer_types says: full attention (num_attention_heads over num_attention_groups KV
    heads of head_dim) or sliding (attention_other_setting's heads, a window of sliding_window), each with its
    partial_rotary_factors entry, per-head q/k norms (use_qk_norm) and a sigmoid gate a head (use_head_wise_attn_gate:
    g_proj [heads, d]) before o_proj; a dense SwiGLU MLP of intermediate_size, or where moe_layers_enum lists the
    layer moe_num_experts experts of moe_intermediate_size (sigmoid scores, a selection bias where
    use_moe_router_bias, top moe_top_k renormalized where norm_expert_weight, times moe_router_scaling_factor; the
    router in fp32 where need_fp32_gate, as vLLM holds it) beside a shared expert of share_expert_dim; SwiGLU clamped
    where swiglu_limits (routed) and swiglu_limits_shared (the shared expert, and the dense MLP) give a limit (8
    FLOPs an element, as limit_swiglu). Its norms add 1 to their weights (zero_centered), a cost of none. The
    per-layer lists may also cover the num_nextn_predict_layers MTP layers, which are not counted: `serve --draft
    mtp` runs one (a sliding-attention layer with a dense MLP)."""
    d, n = f.int("hidden_size"), f.int("num_hidden_layers")
    mtp = f.int("num_nextn_predict_layers", default=0, minimum=0)
    total = n + mtp

    def listed(key: str, default):
        _, v = f.get(key, default=None)
        if v is None:
            return [default] * total
        if not isinstance(v, list) or len(v) not in (n, total):
            raise f.error(key, f"must list each of the {n} layers (or the {total} with the MTP layers)")
        return v + [default] * (total - len(v))
    types = listed("layer_types", "full_attention")
    if set(types) - {"full_attention", "sliding_attention"}:
        raise f.error("layer_types", "must list 'full_attention' or 'sliding_attention' for each layer")
    factors = listed("partial_rotary_factors", 1.0)
    limits, shared_limits = listed("swiglu_limits", 0.0), listed("swiglu_limits_shared", 0.0)
    for key, values in (("partial_rotary_factors", factors), ("swiglu_limits", limits),
                        ("swiglu_limits_shared", shared_limits)):
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 for v in values if v is not None):
            raise f.error(key, "must be non-negative numbers, one a layer")
    listed("rope_theta", None)  # a base a layer: no cost
    for key in ("yarn_only_types", "zero_centered", "att_impl_type", "max_seq_len"):
        f.get(key, default=None)
    _, rope_layers = f.get("use_rope_layers", default=[])
    if rope_layers:
        raise f.error("use_rope_layers", "lists layers without rope, which the family does not model; valid: []")
    if f.bool("sink", False):
        raise f.error("sink", "is true: attention sinks in Step-3.5 are not modelled")
    head_dim = f.int("head_dim", default=d // f.int("num_attention_heads"))
    other = f.sub("attention_other_setting") if f.get("attention_other_setting", default=None)[1] else None

    def attention(kind: str, factor: float) -> Attention:
        g = f if kind == "full_attention" or other is None else other
        width = g.int("head_dim", default=head_dim)
        if g is other:
            other.get("attention_type", "true_head_dim", default=None)
        rotary = None if factor in (None, 1, 1.0) else max(1, int(width * factor))
        keys = FULL if kind == "full_attention" else Keys("sliding", f.int("sliding_window"))
        return Attention(g.int("num_attention_heads"), g.int("num_attention_groups"), width, keys=keys,
                         rotary_dim=rotary, qk_norm="head" if f.bool("use_qk_norm", False) else None,
                         head_gate=f.bool("use_head_wise_attn_gate", False))

    def clamp(limit) -> str:
        return "limit_swiglu" if limit else "silu"
    moe_layers = _moe_layers_enum(f, n) if f.bool("use_moe", False) else set()
    if (f.int("moe_layer_offset", default=0, minimum=0), f.int("moe_every_n_layer", default=1)) != (0, 1):
        raise f.error("moe_layer_offset", "and 'moe_every_n_layer' must be 0 and 1: the family places the MoE layers "
                                          "as moe_layers_enum lists them")
    moe = (MoE(experts=f.int("moe_num_experts"), top_k=f.int("moe_top_k"), d_expert=f.int("moe_intermediate_size"),
               shared_d=f.int("share_expert_dim", default=0, minimum=0) or None,
               scores=f.choice({"sigmoid": "sigmoid", "softmax": "softmax"}, "moe_router_activation"),
               router_bias="selection" if f.bool("use_moe_router_bias", False) else None,
               renormalize=f.bool("norm_expert_weight", False),
               scaled=f.number("moe_router_scaling_factor", default=1.0) != 1.0,
               router_dtype=FP32 if f.bool("need_fp32_gate", False) else None, prefix="moe.",
               shared_name="share_expert") if moe_layers else None)
    dense = f.int("intermediate_size")

    def layer(i: int) -> parts.Layer:
        ffn = (attrs.evolve(moe, act=clamp(limits[i]), shared_act=clamp(shared_limits[i])) if i in moe_layers else
               MLP(dense, clamp(shared_limits[i])))
        return parts.pre_norm(attention(types[i], factors[i]), ffn)
    full = attention("full_attention", None)
    return dict(d_model=d, n_heads=full.heads, n_kv_heads=full.kv_heads, head_dim=head_dim, d_ffn=dense, n_layers=n,
                vocab_size=f.int("vocab_size"), dtype=_dtype(f), **_weights(f), mlp="swiglu",
                layers=Stack.listed([layer(i) for i in range(n)]), moe=moe,
                tie_embeddings=f.bool("tie_word_embeddings", False),
                mtp_stack=Stack.uniform(layer(n), 1) if mtp else None,
                **_mtp(f))


def _bailing_moe(f: Fields) -> dict:
    """inclusionAI's Ling-2.0 and Ring-2.0 (architectures BailingMoeV2ForCausalLM; their model_type is bailing_moe, Ling
    v1's too: inclusionAI/Ling-V2 models/modeling_bailing_moe_v2.py): GQA with one fused query_key_value projection
    (biased where use_qkv_bias), per-head q/k norms before a partial rope (use_qk_norm, partial_rotary_factor), o_proj
    (attention.dense, biased where use_bias); dense SwiGLU layers below first_k_dense_replace, then MoE
    (_bailing_ffn). Ling v1 (BailingMoeForCausalLM, softmax routing) is refused by name."""
    core = _core(f)
    _, archs = f.get("architectures", default=[])
    if "BailingMoeV2ForCausalLM" not in (archs or []) and f.get("score_function", default=None)[1] is None:
        raise f.error("architectures", f"is {archs!r}: Ling v1's bailing_moe (BailingMoeForCausalLM) is not "
                                       f"modelled; valid: ['BailingMoeV2ForCausalLM'] (Ling-2.0, Ring-2.0)")
    attention = _bailing_attention(f, core)
    moe, dense = _bailing_ffn(f, core)
    stack = _moe_stack(core["n_layers"], attention, moe, dense)
    return dict(**_summary_fields(core, attention), mlp=_gated(f), moe=moe, layers=stack, **_mtp(f),
                tie_embeddings=f.bool("tie_word_embeddings", False))


def _bailing_attention(f: Fields, core: dict) -> Attention:
    """Ling-2.0's softmax attention (_bailing_moe), which Ring-linear's softmax layers are."""
    qkv_bias = f.bool("use_qkv_bias", False)
    return _attention(f, core, q_bias=qkv_bias, k_bias=qkv_bias, v_bias=qkv_bias, o_bias=f.bool("use_bias", False),
                      qk_norm="head" if f.bool("use_qk_norm", False) else None)


def _bailing_ffn(f: Fields, core: dict) -> tuple[MoE, MLP]:
    """Ling-2.0's MoE and dense MLP, which Ring-linear's and Ling-2.5's layers share: num_experts of
    moe_intermediate_size, routed as DeepSeek-V3's (score_function sigmoid, moe_router_enable_expert_bias a
    selection bias, n_group / topk_group, norm_topk_prob, routed_scaling_factor; the router in router_dtype, fp32
    by default) beside num_shared_experts of moe_intermediate_size (moe_shared_expert_intermediate_size where
    given); dense SwiGLU layers of intermediate_size below first_k_dense_replace."""
    if not f.bool("moe_router_enable_expert_bias", True):
        raise f.error("moe_router_enable_expert_bias", "is false: Ling-2.0's routing without its selection bias "
                                                       "is not modelled")
    scores = f.choice({"sigmoid": "sigmoid", "softmax": "softmax"}, "score_function", default="sigmoid")
    # Ling-2.5's configs also give DeepSeek-V3's names for the same router (its configuration_bailing_moe_v2_5.py)
    if f.str("scoring_func", default=scores) != scores:
        raise f.error("scoring_func", f"is {f.data['scoring_func']!r}, where score_function is {scores!r}: the "
                                      f"engines route by score_function; the two must agree")
    if f.str("topk_method", default="noaux_tc") != "noaux_tc":
        raise f.error("topk_method", f"is {f.data['topk_method']!r}: Ling's router picks by the biased scores; "
                                     f"valid: 'noaux_tc'")
    groups = f.int("n_group", default=1)
    if groups > 1:
        f.int("topk_group")
    experts, d_expert = f.int("num_experts"), f.int("moe_intermediate_size")
    shared = f.int("num_shared_experts", default=0, minimum=0)
    moe = MoE(experts=experts, top_k=f.int("num_experts_per_tok"), d_expert=d_expert,
              shared_d=f.int("moe_shared_expert_intermediate_size", default=shared * d_expert) or None,
              first_dense=f.int("first_k_dense_replace", default=0, minimum=0), router_bias="selection",
              scores=scores, groups=groups, renormalize=f.bool("norm_topk_prob", True),
              scaled=f.number("routed_scaling_factor", default=1.0) != 1.0,
              router_dtype=f.choice({"fp32": FP32, "float32": FP32, "bf16": None, "bfloat16": None}, "router_dtype",
                                    default="fp32"))  # the router's weight and its bias; fp32 is Ling's default
    return moe, MLP(core["d_ffn"], _gated_act(f))


def _bailing_layers(f: Fields, core: dict, softmax) -> tuple[Stack, MoE, tuple[str, ...]]:
    """Ring-linear's and Ling-2.5's layers, the MoE in them and the notes they need: lightning attention
    (parts.Lightning; SGLang's models/bailing_moe_linear.py, vLLM's layers/mamba/linear/bailing_linear_attn.py) but
    in each layer_group_size-th, where the `softmax` attention is (layer i where (i + 1) % layer_group_size == 0);
    Ling-2.0's MoE and dense MLPs (_bailing_ffn). The lightning layers: one query_key_value of every head's q, k and
    v (MHA-shaped, whatever num_key_value_heads says), SiLU on them where linear_silu, per-head q/k norms
    (use_qk_norm), rope over partial_rotary_factor of each head (linear_rope), q times head_dim^-1/2, the output
    RMS-normed in group_norm_size groups and gated by sigmoid(g_proj x), then dense. Prefill is priced by vLLM's
    lightning kernels (SGLang's `minimax` backend); SGLang's default `seg_la` backend runs other tiles, which
    linear_backend naming it notes."""
    n, heads = core["n_layers"], core["n_heads"]
    head_dim = core["head_dim"] or core["d_model"] // heads
    _, every = f.get("layer_group_size")
    if isinstance(every, list):
        raise f.error("layer_group_size", "is a list: vLLM's and SGLang's models place the softmax layers by one "
                                          "period (a number), and a list of layer kinds is not modelled")
    every = f.int("layer_group_size")
    if n % every:
        raise f.error("layer_group_size", f"({every}) must divide num_hidden_layers ({n}): the engines place a softmax "
                                          f"layer at the end of each group")
    _lightning_head_dim(f, head_dim)
    if not f.bool("use_rmsnorm", True):
        raise f.error("use_rmsnorm", "is false: the lightning layers are modelled with RMSNorm")
    for key in ("use_qkv_bias", "use_bias"):
        if f.bool(key, False):
            raise f.error(key, "is true: biases on the lightning layers' projections are not modelled")
    rope = f.bool("linear_rope", True)
    lightning = parts.Lightning(heads, head_dim, act=f.bool("linear_silu", False) or f.bool("use_linear_silu", False),
                                qk_norm=f.bool("use_qk_norm", False),
                                rotary_dim=(core["rotary_dim"] or head_dim) if rope else None, q_scale=True,
                                norm_groups=f.int("group_norm_size", default=1),
                                names=("query_key_value", "g_proj", "dense", "g_norm"), prefix="attention.")
    notes = ()
    backend = f.str("linear_backend", default="minimax")
    if backend != "minimax":
        notes += (f"linear_backend {backend!r}: prefill is priced by vLLM's lightning kernels (SGLang's 'minimax' "
                  f"backend), whose tiles differ from {backend!r}'s; decode is the same recurrence",)
    moe, dense = _bailing_ffn(f, core)
    stack = _stack(n, lambda i: parts.pre_norm(softmax if (i + 1) % every == 0 else lightning,
                                               moe if moe.placed(i) else dense), period=n)
    return stack, moe, notes


def _bailing_moe_linear(f: Fields) -> dict:
    """inclusionAI's Ring-mini-linear-2.0 and Ring-flash-linear-2.0 (model_type bailing_moe_linear,
    BailingMoeLinearV2ForCausalLM; arXiv 2510.19338): lightning layers with Ling-2.0's GQA (_bailing_attention) in
    each layer_group_size-th (_bailing_layers); lm_head in fp32, as SGLang runs it."""
    core = _core(f)
    attention = _bailing_attention(f, core)
    stack, moe, notes = _bailing_layers(f, core, attention)
    mtp = _mtp(f)
    return dict(**_summary_fields(core, attention), mlp=_gated(f), moe=moe, layers=stack, head_fp32=True,
                tie_embeddings=f.bool("tie_word_embeddings", False), mtp_layers=mtp["mtp_layers"],
                notes=(*mtp["notes"], "lm_head in fp32 (4 bytes a weight), as SGLang runs Ring-linear "
                                      "(lm_head.float())", *notes))


def _bailing_hybrid(f: Fields) -> dict:
    """inclusionAI's Ling-2.5 / Ring-2.5 and Ling-2.6 / Ring-2.6 (BailingMoeV2_5ForCausalLM; model_type
    bailing_hybrid, as SGLang's configs/bailing_hybrid.py names it; inclusionAI/Ring-V2.5
    models/modeling_bailing_moe_v2_5.py, vLLM's models/bailing_moe_linear.py BailingMoeV25ForCausalLM): Ring-linear's
    lightning layers with MLA (_mla: q_a_layernorm and kv_a_layernorm, no per-head norms) in each
    layer_group_size-th, over the same num_attention_heads (_bailing_layers). The
    multi-token-prediction layer (num_nextn_predict_layers: MLA and MoE, as `--draft mtp` builds it) is not counted.
    The head is held at the model's dtype, as vLLM runs it. Ling-3.0 (BailingMoeV3ForCausalLM: Kimi Delta Attention
    in place of lightning) is refused by name."""
    _, archs = f.get("architectures", default=[])
    if "BailingMoeV3ForCausalLM" in (archs or []) or f.get("short_conv_kernel_size", default=None)[1] is not None:
        raise f.error("architectures" if "BailingMoeV3ForCausalLM" in (archs or []) else "short_conv_kernel_size",
                      "names Ling-3.0's layers (BailingMoeV3ForCausalLM: Kimi Delta Attention with a short conv in "
                      "place of lightning attention), which this family does not model; valid: "
                      "['BailingMoeV2_5ForCausalLM'] (Ling-2.5, Ring-2.5, Ling-2.6, Ring-2.6)")
    if f.bool("use_qkv_bias", False):
        raise f.error("use_qkv_bias", "is true: biases on the MLA projections (q_a_proj, kv_a_proj_with_mqa, dense) "
                                      "are not modelled")
    core = _core(f)
    heads = core["n_heads"]
    mla = _mla(f)
    stack, moe, notes = _bailing_layers(f, core, LatentAttention(heads, mla))
    linear_kv = f.int("num_kv_heads_for_linear_attn", default=heads)
    if linear_kv != heads:
        notes += (f"num_kv_heads_for_linear_attn ({linear_kv}) is not read: the engines build the lightning layers "
                  f"with K and V for each of the {heads} heads (vLLM's and SGLang's bailing_moe_linear.py)",)
    mtp = _mtp(f)
    return dict(core, n_kv_heads=heads, head_dim=mla.qk_nope_head_dim + mla.qk_rope_head_dim, mlp=_gated(f), moe=moe,
                layers=stack, tie_embeddings=f.bool("tie_word_embeddings", False), mtp_layers=mtp["mtp_layers"],
                notes=(*mtp["notes"], *notes, "lm_head at the model's dtype, as vLLM runs it; SGLang holds it in fp32 "
                                              "(ParallelLMHead params_dtype float32)"))


def _longcat_flash(f: Fields) -> dict:
    """Meituan's LongCat-Flash (LongcatFlashForCausalLM; transformers' longcat_flash, vLLM's and SGLang's
    longcat_flash.py; arXiv 2509.01322): num_layers layers, each of two MLA attentions (_mla; mla_scale_q_lora and
    mla_scale_kv_lora fold into the latent norms' weights as the engines load them: no cost) and two dense SwiGLU
    MLPs of ffn_hidden_size, and one shortcut-connected MoE (ScMoE) on the first MLP's input: n_routed_experts of
    expert_ffn_hidden_size beside zero_expert_num zero-computation (identity) experts, top moe_topk of softmax
    scores over all of them picked with a selection bias, times routed_scaling_factor; the router in router_dtype
    (fp32 by default). The MoE's output joins the residual at the end of the layer in the reference code; here it
    is summed with the first MLP's (parts.Branches), the same ops and bytes. The multi-token-prediction layer (one
    MLA and one dense MLP; nextn_use_scmoe: a whole layer) is not counted; `--draft mtp` builds it."""
    listed = f.int("num_hidden_layers", default=None)
    d, heads, n = f.int("hidden_size"), f.int("num_attention_heads"), f.int("num_layers")
    f.int("num_key_value_heads", default=heads)  # MLA has no KV heads of its own
    if listed is not None and listed not in (n, 2 * n):
        raise f.error("num_hidden_layers", f"is {listed}: it must be num_layers ({n}) or, as transformers counts "
                                           f"the attentions, twice it ({2 * n})")
    f.choice({"MLA": "MLA"}, "attention_method", default="MLA")
    for key in ("attention_bias", "router_bias"):
        if f.bool(key, False):
            raise f.error(key, "is true: LongCat-Flash is modelled without biases on its attention and router")
    f.bool("mla_scale_q_lora", False), f.bool("mla_scale_kv_lora", False)  # folded into norm weights at load
    f.choice({"identity": "identity"}, "zero_expert_type", default="identity")
    act = _gated_act(f)
    moe = MoE(experts=f.int("n_routed_experts"), top_k=f.int("moe_topk"), d_expert=f.int("expert_ffn_hidden_size"),
              zero=f.int("zero_expert_num", default=0, minimum=0), router_bias="selection", scores="softmax",
              scaled=f.number("routed_scaling_factor", default=1.0) != 1.0, act=act, router_name="router.classifier",
              router_dtype=f.choice({"float32": FP32, "fp32": FP32, "bfloat16": None, "bf16": None}, "router_dtype",
                                    default="float32"))
    attention, dense = LatentAttention(heads, _mla(f)), MLP(f.int("ffn_hidden_size"), act)
    layer = parts.Layer((parts.Sublayer(attention, "input_layernorm.0.weight", key="attn"),
                         parts.Sublayer(parts.Branches((dense, moe)), "post_attention_layernorm.0.weight", key="mlp"),
                         parts.Sublayer(attention, "input_layernorm.1.weight", key="attn1", scope="1."),
                         parts.Sublayer(dense, "post_attention_layernorm.1.weight", key="mlp1", scope="1.")))
    mtp = layer if f.bool("nextn_use_scmoe", False) else parts.pre_norm(attention, dense)
    mla = attention.mla
    return dict(d_model=d, n_heads=heads, n_kv_heads=heads, d_ffn=dense.d_ffn, n_layers=n,
                vocab_size=f.int("vocab_size"), head_dim=mla.qk_nope_head_dim + mla.qk_rope_head_dim,
                dtype=_dtype(f), **_weights(f), mlp=_gated(f), moe=moe, layers=Stack.uniform(layer, n),
                mtp_stack=Stack.uniform(mtp, 1), tie_embeddings=f.bool("tie_word_embeddings", False),
                **_mtp(f, layers=1))


# Llama-Nemotron's block_configs entries: the keys of its block_config.py dataclasses (AttentionConfig, FFNConfig)
NAS_KEYS = {"attention": {"no_op", "replace_with_linear", "n_heads_in_group", "window_length", "num_sink_tokens",
                          "unshifted_sink", "use_prefill_window_in_sink_attention", "sparsify"},
            "ffn": {"no_op", "replace_with_linear", "ffn_mult", "sparsify"}}


def _nas_ffn_width(ffn_mult: float, d: int) -> int:
    """An FFN's width from its ffn_mult, as modeling_decilm.py's _ffn_mult_to_intermediate_size and vLLM's
    nemotron_nas.py compute it: int(2 x ffn_mult x hidden / 3), rounded up to a multiple of 256 (ffn_mult rounded to
    6 decimals first, as block_config.py's FFNConfig does)."""
    width = int(2 * round(ffn_mult, 6) * d / 3)
    return -(-width // 256) * 256


def _nemotron_nas(f: Fields) -> dict:
    """NVIDIA's Llama-Nemotron Super and Ultra (model_type nemotron-nas, DeciLMForCausalLM: their modeling_decilm.py,
    vLLM's nemotron_nas.py): Llama layers made by neural architecture search, each as its block_configs entry says:
    attention with num_attention_heads / n_heads_in_group KV heads, or none (no_op: no norm, no cache); a SwiGLU of
    ffn_mult's width (_nas_ffn_width), or none. A layer with neither is the identity, and is not built (noted).
    replace_with_linear (a hidden x hidden matrix in the sublayer's place, which vLLM and SGLang do not build) and
    sink attention are refused by name; window_length is a sliding window."""
    d, heads, n = f.int("hidden_size"), f.int("num_attention_heads"), f.int("num_hidden_layers")
    f.int("num_key_value_heads", default=None), f.int("intermediate_size", default=None)  # null: per layer below
    if d % heads:
        raise f.error("num_attention_heads", f"({heads}) must divide hidden_size ({d}): the heads' width")
    bias = f.bool("attention_bias", False)
    if f.bool("mlp_bias", False):
        raise f.error("mlp_bias", "is true: biases on Llama-Nemotron's MLPs are not modelled")
    _, blocks = f.get("block_configs")
    if not isinstance(blocks, list) or len(blocks) != n:
        raise f.error("block_configs", f"must list one block for each of the {n} layers (num_hidden_layers)")
    act, layers, notes, windowed = _gated_act(f), [], [], False

    def sublayer(i: int, block: Fields, kind: str) -> Fields | None:
        part = block.sub(kind)
        notes.extend(_unread_keys(part, NAS_KEYS[kind], f"block_configs[{i}].{kind}"))
        part.get("sparsify", default=None)  # a training-time sparsity marker: no inference cost
        if part.bool("no_op", False):
            return None
        if part.bool("replace_with_linear", False):
            raise part.error("replace_with_linear", "is true: a linear layer in place of the sublayer is not modelled "
                                                    "(vLLM and SGLang do not build it)")
        return part

    for i, entry in enumerate(blocks):
        if not isinstance(entry, dict):
            raise f.error("block_configs", f"entry {i} must be an object with 'attention' and 'ffn'")
        block = Fields(entry, f.where, f"{f.path}block_configs[{i}].")
        att, ffn = sublayer(i, block, "attention"), sublayer(i, block, "ffn")
        subs = []
        if att is not None:
            window = att.int("window_length", default=None)
            if att.int("num_sink_tokens", default=None) or att.bool("unshifted_sink", False) \
                    or att.bool("use_prefill_window_in_sink_attention", False):
                raise att.error("num_sink_tokens", "is set: sink attention is not modelled")
            group = att.int("n_heads_in_group")
            if heads % group:
                raise att.error("n_heads_in_group", f"({group}) must divide num_attention_heads ({heads})")
            windowed = windowed or bool(window)
            attention = Attention(heads, heads // group, d // heads, q_bias=bias, k_bias=bias, v_bias=bias,
                                  o_bias=bias, keys=Keys("sliding", window) if window else FULL)
            subs.append(parts.Sublayer(attention, "input_layernorm.weight", key="attn"))
        if ffn is not None:
            subs.append(parts.Sublayer(MLP(_nas_ffn_width(ffn.number("ffn_mult"), d), act),
                                       "post_attention_layernorm.weight", key="mlp"))
        if subs:
            layers.append(parts.Layer(subs))
    attentions = [p for layer in layers for p in layer.parts() if isinstance(p, Attention)]
    mlps = [p for layer in layers for p in layer.parts() if isinstance(p, MLP)]
    if not attentions or not mlps:
        what = "attention" if not attentions else "an ffn"
        raise f.error("block_configs", f"gives no layer {what}: a stack without {what} is not modelled")
    if windowed:
        notes.append("window_length: a sliding window, as modeling_decilm.py applies it; vLLM's and SGLang's "
                     "nemotron_nas.py do not read it and attend to every key")
    if len(layers) < n:
        notes.append(f"{n - len(layers)} of the {n} layers are the identity (block_configs: attention and ffn both "
                     f"no_op): no ops, no weights, not built")
    return dict(d_model=d, n_heads=heads, n_kv_heads=attentions[0].kv_heads, head_dim=d // heads, d_ffn=mlps[0].d_ffn,
                n_layers=len(layers), vocab_size=f.int("vocab_size"), dtype=_dtype(f), **_weights(f), mlp=_gated(f),
                layers=Stack.listed(layers), tie_embeddings=f.bool("tie_word_embeddings", False), notes=tuple(notes))


def _ernie4_5(f: Fields, *, moe: bool) -> dict:
    """Baidu's ERNIE-4.5 (transformers' ernie4_5 and ernie4_5_moe): Llama's layer, biases where use_bias; the MoE
    model's layer i is MoE where (i + 1) % moe_layer_interval == 0 and moe_layer_start_index <= i <=
    moe_layer_end_index (-1: the last), else dense: moe_num_experts SwiGLU experts of moe_intermediate_size, top
    moe_k of softmax scores picked with moe_statics' selection bias (moe_use_aux_free, by default) and renormalized,
    the router and its bias kept in fp32 (_keep_in_fp32_modules_strict), beside moe_num_shared_experts of
    moe_intermediate_size. The multi-token-prediction layer is not counted."""
    core = _core(f)
    bias = f.bool("use_bias", False)
    attention = _attention(f, core, q_bias=bias, k_bias=bias, v_bias=bias, o_bias=bias)
    dense = MLP(core["d_ffn"], _gated_act(f), bias=bias)
    n = core["n_layers"]
    spec = None
    if moe:
        start = f.int("moe_layer_start_index", default=0, minimum=0)
        _, end = f.get("moe_layer_end_index", default=-1)
        end = n - 1 if end == -1 else f.int("moe_layer_end_index", minimum=0)
        interval = f.int("moe_layer_interval", default=1)
        placed = [(i + 1) % interval == 0 and start <= i <= end for i in range(n)]
        if not any(placed):
            raise f.error("moe_layer_start_index", f"with 'moe_layer_end_index' and 'moe_layer_interval' places no MoE "
                                                   f"layer among the {n}")
        spec = MoE(experts=f.int("moe_num_experts"), top_k=f.int("moe_k"), d_expert=f.int("moe_intermediate_size"),
                   shared=f.int("moe_num_shared_experts", default=0, minimum=0), scores="softmax",
                   router_bias="selection" if f.bool("moe_use_aux_free", True) else None, renormalize=True,
                   router_dtype=FP32)
        layers = Stack.listed([parts.pre_norm(attention, spec if placed[i] else dense) for i in range(n)])
    else:
        layers = Stack.uniform(parts.pre_norm(attention, dense), n)
    return dict(**_summary_fields(core, attention), mlp=_gated(f), mlp_bias=bias, moe=spec, layers=layers, **_mtp(f),
                tie_embeddings=f.bool("tie_word_embeddings", False))


def _hunyuan_attention(f: Fields, core: dict) -> Attention:
    """Hunyuan's GQA (transformers' hunyuan_v1_dense and hunyuan_v1_moe): biases where attention_bias, per-head q/k
    norms (query_layernorm, key_layernorm) where use_qk_norm, after rope (the same work as before it). Cross-layer
    attention (use_cla: layers that reuse another's K and V) is refused by name: not modelled yet."""
    if f.bool("use_cla", False):
        raise f.error("use_cla", "is true: cross-layer attention (layers that reuse another layer's K and V) is not "
                                 "modelled yet for this family")
    f.int("cla_share_factor", default=None)  # moot without use_cla
    head_dim = core["head_dim"] or core["d_model"] // core["n_heads"]
    if f.int("attention_head_dim", default=head_dim) != head_dim:
        raise f.error("attention_head_dim", f"must equal head_dim ({head_dim}): the attention's width")
    f.choice({"rms": "rms"}, "norm_type", default="rms")
    return _attention(f, core, qk_norm="head" if f.bool("use_qk_norm", True) else None)


def _hunyuan_v1_dense(f: Fields) -> dict:
    """Tencent's Hunyuan dense models (Hunyuan-0.5B to 7B; transformers' hunyuan_v1_dense, vLLM's hunyuan_v1.py):
    Llama's layer with _hunyuan_attention; the MLP has no biases (the reference builds none, whatever mlp_bias
    says)."""
    core = _core(f)
    attention = _hunyuan_attention(f, core)
    if f.bool("mlp_bias", False):
        raise f.error("mlp_bias", "is true, but Hunyuan's reference MLP has no biases")
    layer = parts.pre_norm(attention, MLP(core["d_ffn"], _gated_act(f)))
    return dict(**_summary_fields(core, attention), mlp=_gated(f), layers=Stack.uniform(layer, core["n_layers"]),
                tie_embeddings=f.bool("tie_word_embeddings", False))


def _hunyuan_v1_moe(f: Fields) -> dict:
    """Tencent's Hunyuan-A13B (transformers' hunyuan_v1_moe; vLLM's hunyuan_v1.py): GQA with per-head q/k norms
    (use_qk_norm) and, in every layer, a shared SwiGLU MLP of intermediate_size x num_shared_expert (where
    use_mixed_mlp_moe) beside num_experts SwiGLU experts of moe_intermediate_size, top moe_topk of softmax scores
    (HunYuanTopKGate: its weight wg and its math in fp32, the top-k renormalized), each of these four a number or a
    list of one a layer. Cross-layer attention (use_cla: layers that reuse another's K and V) is refused by name: not
    modelled yet. The capacity limits (moe_drop_tokens) are training's."""
    core = _core(f)
    n = core["n_layers"]

    def per_layer(key: str, default=_MISSING) -> list[int]:
        _, v = f.get(key, default=default)
        values = v if isinstance(v, list) else [v] * n
        if len(values) != n or any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in values):
            raise f.error(key, f"must be a non-negative integer or a list of one for each of the {n} layers")
        return values
    attention = _hunyuan_attention(f, core)
    experts, top_k, widths = per_layer("num_experts"), per_layer("moe_topk"), per_layer("moe_intermediate_size",
                                                                                       core["d_ffn"])
    shared = per_layer("num_shared_expert", 1) if f.bool("use_mixed_mlp_moe", True) else [0] * n

    def layer(i: int) -> parts.Layer:
        moe = MoE(experts=experts[i], top_k=top_k[i], d_expert=widths[i], shared_d=core["d_ffn"] * shared[i] or None,
                  renormalize=top_k[i] > 1, router_dtype=FP32)
        return parts.pre_norm(attention, moe)
    layers = Stack.listed([layer(i) for i in range(n)])
    return dict(**_summary_fields(core, attention), mlp=_gated(f), moe=layers.at(0).parts()[1], layers=layers,
                tie_embeddings=f.bool("tie_word_embeddings", False))


def _mup_layer(mixer, ffn) -> parts.Layer:
    """A muP-scaled pre-norm layer (IBM Granite's residual_multiplier, MiniCPM's scale_depth / sqrt(layers)): each
    branch's output times a constant before its residual add (one multiply an element whatever its value, as
    transformers and vLLM run it); no FFN where `ffn` is None."""
    first = parts.Sublayer(mixer, "input_layernorm.weight", key="attn", scale=True)
    return parts.Layer((first,) if ffn is None else
                       (first, parts.Sublayer(ffn, "post_attention_layernorm.weight", key="mlp", scale=True)))


def _granite_scales(f: Fields) -> dict:
    """Granite's muP multipliers as vLLM runs them: the embeddings times embedding_multiplier (always), the logits
    divided by logits_scaling where it is not 1 (vLLM's LogitsProcessor skips a scale of 1); residual_multiplier is
    _mup_layer's, attention_multiplier the softmax's scale (no op)."""
    for key in ("embedding_multiplier", "residual_multiplier", "attention_multiplier"):
        f.number(key, default=1.0)
    return dict(embed_scale=True, logit_scale=f.number("logits_scaling", default=1.0) != 1)


def _granite_experts(f: Fields, d_expert: int, shared: int) -> MoE:
    """Granite's MoE (GraniteMoeMoE): num_local_experts SwiGLU experts of d_expert (input_linear gate and up fused,
    output_linear), a bias-free router, the top num_experts_per_tok logits softmaxed (vLLM: softmax, top-k,
    renormalized: the same weights), beside a shared SwiGLU of `shared` where it is not 0."""
    return MoE(experts=f.int("num_local_experts", default=8), top_k=f.int("num_experts_per_tok", default=2),
               d_expert=d_expert, shared_d=shared or None, renormalize=True, prefix="block_sparse_moe.",
               shared_name="shared_mlp")


def _granite(f: Fields, *, experts: bool = False, shared: bool = False) -> dict:
    """IBM's Granite 3.x (transformers' granite: Llama's layer with the muP multipliers, _mup_layer and
    _granite_scales; a SwiGLU biased where mlp_bias), its MoE models (granitemoe: _granite_experts) and their
    shared-expert variant (granitemoeshared: shared_intermediate_size, none where 0). hidden_act must be silu
    (vLLM's granite.py refuses another)."""
    core = _core(f)
    attention = _attention(f, core)
    f.choice({"silu": "silu"}, "hidden_act", default="silu")
    bias = not experts and f.bool("mlp_bias", False)
    ffn = (_granite_experts(f, core["d_ffn"], f.int("shared_intermediate_size", default=0, minimum=0) if shared else 0)
           if experts else MLP(core["d_ffn"], "silu", bias=bias))
    return dict(**_summary_fields(core, attention), mlp="swiglu", mlp_bias=bias,
                layers=Stack.uniform(_mup_layer(attention, ffn), core["n_layers"]), moe=ffn if experts else None,
                tie_embeddings=f.bool("tie_word_embeddings", False), **_granite_scales(f))


def _granitemoehybrid(f: Fields) -> dict:
    """IBM's Granite-4.0 (transformers' granitemoehybrid; vLLM's granitemoehybrid.py): layers as layer_types says
    (mamba: a MambaMixer2 of mamba_expand x hidden_size; attention: GQA without positions unless
    position_embedding_type is rope), each with its FFN: num_local_experts SwiGLU experts of intermediate_size
    (_granite_experts) beside a shared SwiGLU MLP of shared_intermediate_size (none where 0); Granite's layer and
    muP multipliers (_mup_layer, _granite_scales)."""
    core = _core(f)
    d, n = core["d_model"], core["n_layers"]
    types = f.words("layer_types", n, ("mamba", "attention")) or ["mamba"] * n  # transformers' layers_block_type
    _, positions = f.get("position_embedding_type", default=None)
    if positions not in (None, "rope"):
        raise f.error("position_embedding_type", f"is {positions!r}; valid: null (no positions), 'rope'")
    attention = _attention(f, core, rotary=positions == "rope")
    mamba = _mamba_fields(f, d, f.int("mamba_expand", default=2) * d, "mamba_expand")
    f.choice({"silu": "silu"}, "hidden_act", default="silu")
    experts = f.int("num_local_experts", default=8, minimum=0)
    shared = f.int("shared_intermediate_size", default=1024, minimum=0)
    f.int("num_experts_per_tok", default=2)  # no cost without experts (micro's dense model)
    ffn = (_granite_experts(f, core["d_ffn"], shared) if experts
           else MLP(shared, "silu", prefix="shared_mlp.") if shared else None)
    return dict(**_summary_fields(core, attention), mlp="swiglu",
                layers=Stack.listed([_mup_layer(attention if t == "attention" else mamba, ffn) for t in types]),
                moe=ffn if experts else None, tie_embeddings=f.bool("tie_word_embeddings", False),
                **_granite_scales(f), **_state_dtype(f, "mamba_ssm_cache_dtype"))


def _hybrid_pattern(f: Fields, n: int) -> str:
    """Nemotron-H's layer kinds, one letter each (HYBRID): hybrid_override_pattern, or layers_block_type's list of
    kind names where a config gives that instead."""
    _, listed = f.get("layers_block_type", default=None)
    if listed is not None:
        names = {v: k for k, v in HYBRID.items()}
        if not isinstance(listed, list) or len(listed) != n or not all(v in names for v in listed):
            raise f.error("layers_block_type", f"must list {n} layer kinds from {', '.join(names)}")
        f.get("hybrid_override_pattern", default=None)  # a restatement where both are given
        return "".join(names[v] for v in listed)
    _, pattern = f.get("hybrid_override_pattern")
    if not isinstance(pattern, str) or len(pattern) != n or not set(pattern) <= set(HYBRID):
        raise f.error("hybrid_override_pattern", f"must be a string of {n} letters from {', '.join(HYBRID)} "
                                                 f"({', '.join(f'{k}: {v}' for k, v in HYBRID.items())})")
    return pattern


def _nemotron_moe(f: Fields) -> MoE:
    """Nemotron-3's MoE mixer (NemotronHMoE in modeling_nemotron_h.py): n_routed_experts plain experts
    down(act(up)) of moe_intermediate_size, routed as DeepSeek-V3 routes (NemotronHTopkRouter, its weight and
    e_score_correction_bias stored in fp32), beside one shared plain MLP of moe_shared_expert_intermediate_size;
    Super's and Ultra's experts work in moe_latent_size dims, projected there and back (fc1_latent_proj,
    fc2_latent_proj: LatentMoE), the shared MLP in the full hidden size."""
    if f.int("n_shared_experts", default=1) != 1:
        raise f.error("n_shared_experts", "must be 1: NemotronHMoE builds one shared MLP of "
                                          "moe_shared_expert_intermediate_size")
    act = f.choice({"relu2": "relu2", "silu": "silu", "gelu": "gelu"}, "mlp_hidden_act", default="relu2")
    return MoE(d_expert=f.int("moe_intermediate_size"), shared_d=f.int("moe_shared_expert_intermediate_size"),
               act=act, gated=False, router_dtype=FP32, prefix="mixer.",
               latent=f.int("moe_latent_size", default=None), **_deepseek_router(f, v3=True))


def _nemotron_mtp(f: Fields, layer: Callable[[str], parts.Layer]) -> dict:
    """Nemotron-3 Super's multi-token-prediction module (num_nextn_predict_layers: 1): the layers
    mtp_hybrid_override_pattern names ("*E": attention, then MoE), built as the stack's layers of those letters
    (vLLM's nemotron_h_mtp.py, which supports one such module)."""
    modules = f.int("num_nextn_predict_layers", default=0, minimum=0)
    if not modules:
        return _mtp(f, layers=0)
    if modules != 1:
        raise f.error("num_nextn_predict_layers", f"is {modules}: Nemotron-H's MTP module is one pass through "
                                                  f"mtp_hybrid_override_pattern (vLLM's nemotron_h_mtp.py supports 1)")
    _, pattern = f.get("mtp_hybrid_override_pattern")
    if not isinstance(pattern, str) or not pattern or not set(pattern) <= set(HYBRID):
        raise f.error("mtp_hybrid_override_pattern", f"must be a string of letters from {', '.join(HYBRID)}")
    return dict(_mtp(f, layers=len(pattern)), mtp_stack=Stack.listed([layer(c) for c in pattern]))


def _state_dtype(f: Fields, key: str) -> dict:
    """The recurrent state's dtype where the config's `key` asks for one, and the key (engines read different
    ones: opgraph.analysis.serve.served_state_dtype)."""
    if f.get(key, default=None)[1] is None:
        return {}
    return dict(state_dtype=f.choice(TORCH_DTYPES, key), state_key=key)


def _nemotron_h(f: Fields) -> dict:
    """Nemotron-H and Nemotron-3: one mixer per layer as hybrid_override_pattern says (M: Mamba-2, *: attention,
    -: a squared-ReLU MLP, E: a mixture of squared-ReLU experts), each with its own pre-norm (modeling_nemotron_h.py).
    The recurrent state's dtype is mamba_ssm_cache_dtype where the config gives it, as vLLM serves it
    (NemotronHForCausalLMConfig in vllm/model_executor/models/config.py takes it for its "auto")."""
    n = f.int("num_hidden_layers")
    pattern = _hybrid_pattern(f, n)
    d, heads = f.int("hidden_size"), f.int("num_attention_heads")
    kv, head_dim = f.int("num_key_value_heads", default=heads), f.int("attention_head_dim", "head_dim", default=d // heads)
    attention = Attention(heads, kv, head_dim, rotary=False, q_bias=f.bool("attention_bias", False),
                          k_bias=f.bool("attention_bias", False), v_bias=f.bool("attention_bias", False),
                          o_bias=f.bool("attention_bias", False))
    moe = _nemotron_moe(f) if "E" in pattern + str(f.data.get("mtp_hybrid_override_pattern") or "") else None
    # a stack of no dense MLP layer needs no intermediate_size (Nemotron-3's summary width is then its experts')
    width = f.int("intermediate_size") if moe is None else f.int("intermediate_size", default=moe.d_expert)
    mlp = MLP(width, f.choice({"relu2": "relu2", "silu": "silu", "gelu": "gelu"}, "mlp_hidden_act", default="relu2"),
              gated=False, bias=f.bool("mlp_bias", False), prefix="mixer.")
    mamba = _mamba(f, d, expanded=False)
    f.choice({"silu": "silu"}, "mamba_hidden_act", default="silu")
    mixers = {"M": mamba, "*": attention, "-": mlp, "E": moe}

    def layer(c: str) -> parts.Layer:
        return parts.Layer((parts.Sublayer(mixers[c], "norm.weight", key="mixer"),))
    return dict(d_model=d, n_heads=heads, n_kv_heads=kv, head_dim=head_dim, d_ffn=mlp.d_ffn, n_layers=n,
                vocab_size=f.int("vocab_size"), dtype=_dtype(f), **_weights(f),
                layers=Stack.listed([layer(c) for c in pattern]), tie_embeddings=f.bool("tie_word_embeddings", False),
                **_state_dtype(f, "mamba_ssm_cache_dtype"),
                **_nemotron_mtp(f, layer))


def _mamba2(f: Fields) -> dict:
    """Mamba-2 (transformers' Mamba2Config): n_layers Mamba-2 mixers with pre-norms, no attention, no MLP; the
    inner width is expand x hidden_size in num_heads heads of head_dim."""
    d, n = f.int("hidden_size"), f.int("num_hidden_layers")
    mamba = _mamba(f, d, heads_key="num_heads", head_dim_key="head_dim", state_key="state_size")
    layer = parts.Layer((parts.Sublayer(mamba, "norm.weight", key="mixer"),))
    return dict(d_model=d, n_heads=mamba.n_heads, n_kv_heads=mamba.n_heads, head_dim=mamba.head_dim, d_ffn=d,
                n_layers=n, vocab_size=f.int("vocab_size"), dtype=_dtype(f), **_weights(f),
                layers=Stack.uniform(layer, n), tie_embeddings=f.bool("tie_word_embeddings", True))


def _multipliers(f: Fields, key: str, n: int) -> list[float]:
    """A list of n positive numbers (Falcon-H1's ssm_multipliers, mlp_multipliers); all 1.0 when absent."""
    _, v = f.get(key, default=None)
    if v is None:
        return [1.0] * n
    if not isinstance(v, list) or len(v) != n or any(isinstance(x, bool) or not isinstance(x, (int, float)) or x <= 0
                                                     for x in v):
        raise f.error(key, f"must be a list of {n} positive numbers, got {str(v)[:60]}")
    return v


def _falcon_h1(f: Fields) -> dict:
    """Falcon-H1 (TII; transformers' modeling_falcon_h1.py, vLLM's falcon_h1.py): every layer is a parallel hybrid,
    attention and a Mamba-2 mixer side by side on the same input_layernorm output, their outputs added to the
    residual (parts.Branches), then a SwiGLU MLP after pre_ff_layernorm. The attention has head_dim (default
    hidden_size / heads), full keys, rope, biases where attention_bias says; the mixer has mamba_n_heads heads of
    mamba_d_head ("auto": mamba_d_ssm / mamba_n_heads), mamba_d_ssm (null: mamba_expand x hidden_size) inner
    width, which must equal heads x head width, mamba_n_groups groups of mamba_d_state, a gated RMSNorm only where
    mamba_rms_norm (else the gate alone), in_proj's bias from mamba_proj_bias and out_proj's from projectors_bias.

    The muP multipliers run at inference, as vLLM applies them (none is folded into the weights at load), each
    one multiply per element it scales, counted whatever its value: embedding_multiplier (the embeddings),
    attention_in_multiplier and ssm_in_multiplier (each branch's input), key_multiplier (k, before rope),
    ssm_multipliers (in_proj's output z | x | B | C | dt), attention_out_multiplier and ssm_out_multiplier (each
    branch's output, after its all-reduce), mlp_multipliers (the gate projection, and the MLP's output after its
    all-reduce); lm_head_multiplier scales the logits only when it is not 1 (vLLM's LogitsProcessor skips a
    scale of 1)."""
    core = _core(f)
    d, heads = core["d_model"], core["n_heads"]
    head_dim = core["head_dim"] or d // heads
    core["head_dim"] = head_dim
    for key in ("key_multiplier", "attention_in_multiplier", "attention_out_multiplier", "ssm_in_multiplier",
                "ssm_out_multiplier", "embedding_multiplier"):
        f.number(key, default=1.0)
    _multipliers(f, "ssm_multipliers", 5)
    _multipliers(f, "mlp_multipliers", 2)
    logit_scale = f.number("lm_head_multiplier", default=1.0) != 1
    attention = _attention(f, core, k_scale=True)
    mamba = _mamba_fields(f, d, f.int("mamba_d_ssm", default=f.int("mamba_expand", default=2) * d), "mamba_d_ssm",
                          out_bias=f.bool("projectors_bias", False), rms_norm=f.bool("mamba_rms_norm", False),
                          norm_before_gate=f.bool("mamba_norm_before_gate", True), in_scale=True, prefix="mamba.")
    mixer = parts.Branches((attention, mamba), in_scale=(True, True), out_scale=(True, True))
    mlp = MLP(core["d_ffn"], _gated_act(f), bias=f.bool("mlp_bias", False), prefix="feed_forward.",
              gate_scale=True, out_scale=True)
    layer = parts.Layer((parts.Sublayer(mixer, "input_layernorm.weight", key="attn"),
                         parts.Sublayer(mlp, "pre_ff_layernorm.weight", key="mlp")))
    return dict(**_summary_fields(core, attention), mlp=_gated(f), mlp_bias=mlp.bias,
                layers=Stack.uniform(layer, core["n_layers"]), tie_embeddings=f.bool("tie_word_embeddings", False),
                embed_scale=True, logit_scale=logit_scale)


FAMILIES: dict[str, Callable[[Fields], dict]] = {
    "llama": _llama,
    "mistral": _mistral,
    "mixtral": _mixtral,
    "qwen2": _qwen2,
    "qwen3": _qwen3,
    "qwen3_moe": lambda f: _qwen3(f, moe=True),
    "qwen3_next": _qwen3_next,
    "qwen3_5_text": _qwen3_next,
    "qwen3_5_moe_text": _qwen3_next,
    "qwen3_vl_text": _qwen3,
    "qwen3_vl_moe_text": lambda f: _qwen3(f, moe=True),
    "gpt2": _gpt2,
    "gpt_neox": _gpt_neox,
    "bloom": _bloom,
    "mpt": _mpt,
    "baichuan": _baichuan,
    "olmo": _olmo,
    "stablelm": _stablelm,
    "stablelm_epoch": _stablelm,
    "exaone": _exaone,
    "opt": _opt,
    "gpt_bigcode": _gpt_bigcode,
    "gptj": _gptj,
    "codegen": _gptj,  # Salesforce's CodeGen: GPT-J's block (one fused qkv_proj, the same shapes and work)
    "gpt_neo": _gpt_neo,
    "phi": _phi,
    "persimmon": _persimmon,
    "falcon": _falcon,
    "RefinedWeb": lambda f: _falcon(f, legacy=True),
    "RefinedWebModel": lambda f: _falcon(f, legacy=True),
    "gpt_oss": _gpt_oss,
    "deepseek": _deepseek_v1,
    "deepseek_v2": lambda f: _deepseek(f, v3=False),
    "deepseek_v3": lambda f: _deepseek(f, v3=True),
    "kimi_k2": lambda f: _deepseek(f, v3=True),
    "deepseek_v32": _deepseek_v32,
    "glm_moe_dsa": _glm_moe_dsa,
    "deepseek_v4": _deepseek_v4,
    "deepseek_v41_text": _deepseek_v41,
    "kimi_linear": _kimi_linear,
    "minimax_m3": _minimax_m3,
    "gemma": _gemma,
    "gemma2": _gemma2,
    "gemma3_text": lambda f: _gemma2(f, v3=True),
    "vaultgemma": lambda f: _gemma2(f, vault=True),
    "gemma4_text": _gemma4,
    "llama4_text": _llama4,
    "phi3": _phi3,
    "olmo2": _olmo2,
    "olmo3": _olmo3,
    "ministral3": _ministral3,
    "seed_oss": _seed_oss,
    "glm4_moe": _glm4_moe,
    "glm4_moe_lite": _glm4_moe_lite,
    "minimax_m2": _minimax_m2,
    "minimax_text_01": _minimax_01,
    "minimax_m1": _minimax_01,
    "minimax": _minimax_01,
    "mimo_v2_flash": _mimo_v2_flash,
    "mimo_v2": _mimo_v2,
    "nemotron_h": _nemotron_h,
    "mamba2": _mamba2,
    "zamba2": _zamba2,
    "falcon_h1": _falcon_h1,
    "granitemoehybrid": _granitemoehybrid,
    "step3p5": _step3p5,
    "bailing_moe": _bailing_moe,
    "bailing_moe_linear": _bailing_moe_linear,
    "bailing_hybrid": _bailing_hybrid,
    "qwen2_moe": _qwen2_moe,
    "olmoe": _olmoe,
    "flex_olmo": _flex_olmo,
    "ministral": _ministral,
    "helium": _helium,
    "smollm3": _smollm3,
    "exaone4": _exaone4,
    "glm4": _glm4,
    "gemma3n_text": _gemma3n,
    "glm": _glm,
    "chatglm": _chatglm,
    "dots1": _dots1,
    "hunyuan_v1_dense": _hunyuan_v1_dense,
    "longcat_flash": _longcat_flash,
    "nemotron-nas": _nemotron_nas,
    "glm4v_text": _glm4,  # GLM-4.1V's language model: GLM-4-0414's layer, its 3-D rope rotating the same dims
    "glm4v_moe_text": _glm4_moe,  # GLM-4.5V's: GLM-4.5-Air's layer (modeling_glm4v_moe.py), 3-D rope likewise
    "Glm4vMoe_text": _glm4_moe,  # the same, as GLM-4.5V's first configs named it
    "hunyuan_v1_moe": _hunyuan_v1_moe,
    "ernie4_5": lambda f: _ernie4_5(f, moe=False),
    "ernie4_5_moe": lambda f: _ernie4_5(f, moe=True),
    "qwen": _qwen1,
    "qwen2_vl_text": _qwen2,  # Qwen2-VL's and Qwen2.5-VL's language model: Qwen2's layer, M-RoPE rotating the same dims
    "qwen2_5_vl_text": _qwen2,
    "qwen2_5_omni_text": _qwen2,
    "step3_text": _step3,
    "phimoe": _phimoe,
    "minicpm": _minicpm,
    "minicpm3": _minicpm3,
    "internlm": _internlm1,
    "arctic": _arctic,
    "molmo": _molmo,
    "aria_text": _aria_text,
    "internlm2": _internlm,
    "internlm3": lambda f: _internlm(f, v3=True),
    "dbrx": _dbrx,
    "starcoder2": _starcoder2,
    "qwen3_omni_moe_text": lambda f: _qwen3(f, moe=True),  # Qwen3-Omni's thinker: Qwen3-MoE's layer
    "mamba": _mamba1,
    "falcon_mamba": lambda f: _mamba1(f, falcon=True),
    "jamba": _jamba,
    "arcee": _relu2_llama,
    "nemotron": lambda f: _relu2_llama(f, nemotron=True),
    "bamba": _bamba,
    "cohere": _cohere,
    "cohere2": lambda f: _cohere(f, v2=True),
    "apertus": _apertus,
    "afmoe": _afmoe,
    "lfm2": _lfm2,
    "lfm2_moe": lambda f: _lfm2(f, moe=True),
    "granite": _granite,
    "granitemoe": lambda f: _granite(f, experts=True),
    "granitemoeshared": lambda f: _granite(f, experts=True, shared=True),
}

# Multimodal wrappers: the language model in text_config is costed (its own model_type, or this default).
WRAPPERS = {"gemma3": "gemma3_text", "gemma3n": "gemma3n_text", "gemma4": "gemma4_text", "llama4": "llama4_text", "mistral3": "mistral", "qwen3_5": "qwen3_5_text",
            "qwen3_5_moe": "qwen3_5_moe_text", "qwen3_vl": "qwen3_vl_text", "qwen3_vl_moe": "qwen3_vl_moe_text",
            "kimi_k25": "kimi_k2", "minimax_m3_vl": "minimax_m3", "kimi_k3": "kimi_linear", "step3p7": "step3p5",
            "deepseek_v41": "deepseek_v41_text", "glm4v": "glm4v_text", "glm4v_moe": "glm4v_moe_text",
            "minimax_vl_01": "minimax_text_01", "internvl": "qwen3", "internvl_chat": "qwen3",
            "qwen2_vl": "qwen2_vl_text", "qwen2_5_vl": "qwen2_5_vl_text", "kimi_vl": "deepseek_v3",
            "qwen3_omni_moe": "qwen3_omni_moe_text", "step3_vl": "step3_text",
            # LLaVA and its kin: the text_config's own model_type, else the wrapper's default text model
            "llava": "llama", "llava_next": "llama", "llava_next_video": "llama", "video_llava": "llama",
            "vipllava": "llama", "llava_onevision": "qwen2", "paligemma": "gemma", "aya_vision": "cohere2",
            "cohere2_vision": "cohere2", "lfm2_vl": "lfm2", "lfm2-vl": "lfm2", "idefics2": "mistral",
            "idefics3": "llama", "smolvlm": "llama",
            "qwen2_5_omni": "qwen2_5_omni_text", "minicpmv": "qwen2", "minicpmo": "qwen2", "phi4mm": "phi3",
            "phi4_multimodal": "phi3", "deepseek_vl_v2": "deepseek_v2",
            # InternVL's kin with llm_config (vLLM renames it text_config), Intern-S1 (Qwen3-MoE; its text_config
            # must name its model_type: NAMED_TEXT), Ovis, Keye, and the speech models' language models
            "NVLM_D": "qwen2", "Llama_Nemotron_Nano_VL": "llama", "NemotronH_Nano_VL_V2": "nemotron_h",
            "interns1": "qwen3_moe", "ovis": "qwen2", "ovis2_5": "qwen3", "Keye": "qwen3", "qwen2_audio": "qwen2",
            "voxtral": "llama", "granite_speech": "granite", "aria": "aria_text", "fuyu": "persimmon"}
# Wrappers whose language model's config must name its model_type (InternS1Config refuses a text_config without one)
NAMED_TEXT = frozenset({"interns1"})
# Model types refused with a reason of their own (what the engines do with them, and what to cost instead)
UNSUPPORTED = {
    "hunyuan": "Hunyuan-Large's cross-layer attention (use_cla: odd layers attend over the layer before's K and V) is "
               "not modelled, and neither vLLM nor transformers serves HunYuanForCausalLM (Tencent points to a fork of "
               "vLLM); Hunyuan-A13B's and the dense Hunyuan models' configs (hunyuan_v1_moe, hunyuan_v1_dense) load",
    "ultravox": "Ultravox's config.json holds no language model: it runs the one text_model_id names (vLLM loads its "
                "config and weights from there); cost that model's config.json",
    "mllama": "Llama-3.2-Vision's cross-attention layers are not modelled, and vLLM no longer serves it (its native "
              "support ended after 0.10.2); a text-only request runs its self-attention layers alone, Llama-3.1-8B's "
              "or 70B's: cost that model's config.json",
}
# Flat wrappers whose language model `version` names (vLLM's minicpmv.py _SUPPORT_VERSION): its value -> model_type
VERSIONED = {"minicpmv": {"2.0": "minicpm", "2.5": "llama", "2.6": "qwen2", "4.0": "llama", "4.5": "qwen3"},
             "minicpmo": {"2.6": "qwen2"}}
# A flat wrapper's own top-level keys (its vision, audio and speech side, and LoRA adapters that run only for those
# inputs): read, not costed, and named in its note
FLAT_OWN = {
    "minicpmv": ("version", "batch_vision_input", "drop_vision_last_layer", "image_size", "patch_size", "query_num",
                 "slice_config", "slice_mode", "use_image_id", "vision_batch_size"),
    "phi4mm": ("embd_layer", "audio_processor", "img_processor", "vision_lora", "speech_lora", "full_attn_mod",
               "interpolate_factor"),
}
FLAT_OWN["minicpmo"] = (*FLAT_OWN["minicpmv"], "audio_config", "tts_config", "audio_pool_step", "audio_chunk_length",
                        "init_vision", "init_audio", "init_tts", "stream_input", "listen_speak_type")
FLAT_OWN["phi4_multimodal"] = (*FLAT_OWN["phi4mm"], "audio_config")
FLAT_OWN["fuyu"] = ("image_size", "patch_size", "num_channels", "image_token_id")
# Notes of what a wrapper's language model runs without (Phi-4-multimodal's LoRA adapters, Qwen2.5-Omni's talker)
WRAPPER_NOTES = {
    "phi4mm": "its vision and speech LoRA adapters (rank 256 and 320 on qkv, o, gate_up and down) run only for image "
              "and audio requests (vLLM --enable-lora); text is priced without them",
    "qwen2_5_omni": "its talker and token2wav (speech output), which vLLM does not serve, are not costed",
}
WRAPPER_NOTES["phi4_multimodal"] = WRAPPER_NOTES["phi4mm"]
WRAPPER_NOTES["granite_speech"] = ("its LoRA adapter (has_lora_adapter) runs only for audio requests; text is priced "
                                   "without it")
WRAPPER_NOTES["voxtral"] = ("vLLM builds its language model from params.json, Mistral's format, as MistralForCausalLM: "
                            "the same layers as text_config")
# Wrappers whose saved text_config holds only what differs from its text class's defaults (transformers'
# to_diff_dict): each key it omits takes the transformers class default (TEXT_CLASS_DEFAULTS), tie_word_embeddings
# too (the language model ties as its own config says, not as the wrapper's top level does), and a note names them.
# The value is the wrapper's own default text config where that is not its text class's bare defaults.
DIFF_WRAPPERS = {"llava": {}, "llava_next": {}, "llava_next_video": {}, "video_llava": {}, "vipllava": {},
                 "llava_onevision": {}, "aya_vision": {}, "cohere2_vision": {}, "lfm2_vl": {}, "lfm2-vl": {},
                 "paligemma": {"hidden_size": 2048, "num_hidden_layers": 18, "intermediate_size": 16384,
                               "num_attention_heads": 8, "num_key_value_heads": 1, "vocab_size": 257152},
                 "idefics2": {"max_position_embeddings": 32768, "tie_word_embeddings": False},
                 "idefics3": {"tie_word_embeddings": False}, "smolvlm": {"tie_word_embeddings": False},
                 "deepseek_vl_v2": {}, "qwen2_audio": {}, "aria": {}, "fuyu": {}}
# transformers 4.57.1's text config classes: their defaults for the keys that shape the cost (configuration_*.py)
TEXT_CLASS_DEFAULTS = {
    "llama": dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                  num_attention_heads=32, max_position_embeddings=2048, tie_word_embeddings=False),
    "mistral": dict(vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                    num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=131072,
                    sliding_window=4096, tie_word_embeddings=False),
    "qwen2": dict(vocab_size=151936, hidden_size=4096, intermediate_size=22016, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=32768,
                  tie_word_embeddings=False),
    "gemma": dict(vocab_size=256000, hidden_size=3072, intermediate_size=24576, num_hidden_layers=28,
                  num_attention_heads=16, num_key_value_heads=16, head_dim=256, max_position_embeddings=8192,
                  tie_word_embeddings=True),
    "gemma2": dict(vocab_size=256000, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
                   num_attention_heads=8, num_key_value_heads=4, head_dim=256, max_position_embeddings=8192,
                   sliding_window=4096, final_logit_softcapping=30.0, attn_logit_softcapping=50.0,
                   query_pre_attn_scalar=256, tie_word_embeddings=True),
    "cohere": dict(vocab_size=256000, hidden_size=8192, intermediate_size=22528, logit_scale=0.0625,
                   num_hidden_layers=40, num_attention_heads=64, max_position_embeddings=8192,
                   tie_word_embeddings=True),
    "lfm2": dict(vocab_size=65536, hidden_size=2560, intermediate_size=12288, num_hidden_layers=32,
                 num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=128000,
                 tie_word_embeddings=True),
}
TEXT_CLASS_DEFAULTS["cohere2"] = {**TEXT_CLASS_DEFAULTS["cohere"], "sliding_window": 4096}  # Cohere2Config: a window
TEXT_CLASS_DEFAULTS["aria_text"] = dict(  # AriaTextConfig's (configuration_aria.py)
    vocab_size=32000, hidden_size=4096, intermediate_size=4096, num_hidden_layers=32, num_attention_heads=32,
    max_position_embeddings=2048, tie_word_embeddings=False, moe_num_experts=8, moe_topk=2, moe_num_shared_experts=2)
TEXT_CLASS_DEFAULTS["persimmon"] = dict(  # PersimmonConfig's, which Fuyu's text_config {"model_type": "persimmon"} is
    vocab_size=262144, hidden_size=4096, intermediate_size=16384, num_hidden_layers=36, num_attention_heads=64,
    max_position_embeddings=16384, qk_layernorm=True, partial_rotary_factor=0.5, tie_word_embeddings=False)
# DeepSeek-VL2's own DeepseekV2Config (its configuration_deepseek.py; vLLM's configs/deepseek_vl2.py the same), which
# its language_config leaves keys to (DeepSeek-VL2's names no layer or head counts)
TEXT_CLASS_DEFAULTS["deepseek_v2"] = dict(
    vocab_size=102400, hidden_size=4096, intermediate_size=11008, moe_intermediate_size=1407, num_hidden_layers=30,
    num_attention_heads=32, num_key_value_heads=32, kv_lora_rank=512, q_lora_rank=1536, qk_rope_head_dim=64,
    v_head_dim=128, qk_nope_head_dim=128, max_position_embeddings=2048, tie_word_embeddings=False)
# The key that holds a wrapper's language model where it is not text_config (InternVL's original format)
WRAPPER_KEYS = {"internvl_chat": "llm_config", "qwen3_omni_moe": "thinker_config.text_config",
                "qwen2_5_omni": "thinker_config.text_config", "deepseek_vl_v2": "language_config",
                "NVLM_D": "llm_config", "Llama_Nemotron_Nano_VL": "llm_config", "NemotronH_Nano_VL_V2": "llm_config",
                "ovis": "llm_config", "ovis2_5": "llm_config"}
# Wrappers whose published configs hold the language model's fields at the top level, beside vision_config (Qwen2-VL
# and Qwen2.5-VL as Qwen released them; transformers builds their text_config from those fields, and files it saves
# later carry both, the same values)
FLAT_WRAPPERS = frozenset({"qwen2_vl", "qwen2_5_vl", "minicpmv", "minicpmo", "phi4mm", "phi4_multimodal", "Keye",
                           "fuyu"})
# Wrappers of a language model and an audio tower alone (no vision side), for their note
AUDIO_ONLY = frozenset({"qwen2_audio", "voxtral", "granite_speech"})


def _class_defaults(f: Fields, wrapper: str, model_type: str, *, absent: bool) -> list[str]:
    """Fill the keys a diff-saved text_config omits (DIFF_WRAPPERS) with its text class's transformers defaults,
    as transformers builds the language model (an explicit null stays null); where the file has no text_config at
    all (`absent`), the wrapper's own default text config first. The note names each."""
    if model_type not in TEXT_CLASS_DEFAULTS:
        return []
    own = DIFF_WRAPPERS[wrapper] if absent else {}
    filled = {k: v for k, v in {**TEXT_CLASS_DEFAULTS[model_type], **own}.items() if k not in f.data}
    if not filled:
        return []
    f.data = {**f.data, **filled}
    own = f" and {wrapper}'s default text config (the file has none)" if own else ""
    listed = ", ".join(f"{k} {v}" for k, v in filled.items())
    return [f"{f.path.rstrip('.') or 'the language model'} omits what equals its defaults (transformers saves only "
            f"the differences): taken from its {model_type} config class's defaults{own}: {listed}"]


def _towers(data: dict) -> str:
    """What a multimodal checkpoint has beside its language model, for its note: an audio tower where it (or its
    thinker) has an audio_config or audio_processor, and only that where it is a speech model (AUDIO_ONLY)."""
    if data.get("model_type") in AUDIO_ONLY:
        return "the audio tower and projector"
    thinker = data.get("thinker_config") if isinstance(data.get("thinker_config"), dict) else {}
    audio = any(k in d for d in (data, thinker) for k in ("audio_config", "audio_processor"))
    return "the vision and audio towers" if audio else "the vision tower and projector"


def _flat_language_model(f: Fields, wrapper: str) -> str:
    """The model_type of a flat wrapper's language model: the one `version` names (MiniCPM-V, MiniCPM-o: as vLLM
    picks it, and without a version 2.0 for hidden 2,304 with query_num 64, else 2.5), else the wrapper's own."""
    if wrapper not in VERSIONED:
        return WRAPPERS[wrapper]
    _, version = f.get("version", default=None)
    if version is None:
        version = "2.0" if f.data.get("hidden_size") == 2304 and f.data.get("query_num") == 64 else "2.5"
    model_type = VERSIONED[wrapper].get(str(version))
    if model_type is None:
        raise f.error("version", f"is {version!r}; {wrapper} supported: {', '.join(VERSIONED[wrapper])}")
    return model_type


def register_family(model_type: str, family: Callable[[Fields], dict]) -> str:
    """Make `model_type` load with `family`, a function from a config.json's Fields to DecoderConfig's fields
    (`core_fields(f)` gives the Llama-style ones; add `layers=` for a stack of your own). Fields the family does
    not read are checked as for the shipped families: a set cost field refuses the file."""
    if not isinstance(model_type, str) or not model_type.isidentifier():
        raise OpgraphError(f"a model_type must be a name (letters, digits, _), got {model_type!r}")
    if not callable(family):
        raise OpgraphError(f"the family for {model_type!r} must be a function of the config's fields")
    FAMILIES[model_type] = family
    return model_type


def core_fields(f: Fields) -> dict:
    """The Llama-style DecoderConfig fields most families share (sizes, dtype, weights' storage, partial rotary)."""
    core = _core(f)
    core["head_dim"] = core["head_dim"] or core["d_model"] // core["n_heads"]
    return core


def context_window(f: Fields) -> int | None:
    """The positions the config declares (max_position_embeddings), or None where it declares no positive integer:
    a context limit, not a cost, so a malformed one refuses nothing."""
    _, v = f.get("max_position_embeddings", default=None)
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None


def _context_within(f: Fields, key: str) -> int | None:
    """The context window where a second field bounds it too (Qwen's seq_length, Arctic's max_sequence_length:
    vLLM's max_model_len is the smallest of the lengths a config gives)."""
    windows = [w for w in (context_window(f), f.int(key, default=None)) if w]
    return min(windows) if windows else None


def from_dict(data: dict, *, name: str, source: str, where: str = "config.json") -> DecoderConfig:
    """A DecoderConfig from the fields of a config.json; `where` names the file in error messages."""
    if not isinstance(data, dict):
        raise OpgraphError(f"{where}: the top level must be a JSON object")
    f = Fields(data, where)
    model_type = f.str("model_type")
    notes: list[str] = []
    outer = None
    if model_type in FLAT_WRAPPERS and WRAPPER_KEYS.get(model_type, "text_config") not in data:
        f.wrapper, model_type = model_type, _flat_language_model(f, model_type)  # the top level's fields
        f.read.update(FLAT_OWN.get(f.wrapper, ()))  # its own side's keys: read, not costed
        notes.append(f"the language model (the top level's fields) is costed; {_towers(data)} of this {f.wrapper} "
                     f"checkpoint are not")
    elif model_type in WRAPPERS:
        key = WRAPPER_KEYS.get(model_type, "text_config")
        outer = f
        diff = model_type in DIFF_WRAPPERS
        absent = diff and f.get(key, default=None)[1] is None  # then transformers builds its default text config
        for part in key.split("."):  # Qwen3-Omni's language model is its thinker's text_config
            f = f.optional_sub(part) if absent else f.sub(part)
        inherited = {k: outer.data[k] for k in ("torch_dtype", "dtype", "quantization_config",
                                                *(() if diff else ("tie_word_embeddings",)))
                     if k in outer.data and k not in f.data}
        f.data = {**f.data, **inherited}
        default = {} if model_type in NAMED_TEXT else {"default": WRAPPERS[model_type]}
        f.wrapper, model_type = model_type, f.str("model_type", **default)
        if diff:
            notes += _class_defaults(f, f.wrapper, model_type, absent=absent)
        if f.wrapper in FLAT_WRAPPERS:  # a re-saved file (Fuyu's: every file) repeats the language model's fields
            outer.read.update(k for k, v in outer.data.items() if k != "model_type" and f.data.get(k) == v)
        notes.append(f"the language model ({key}) is costed; {_towers(outer.data)} of this "
                     f"{outer.data['model_type']} checkpoint are not")
    if f.wrapper in WRAPPER_NOTES:
        notes.append(f"{f.wrapper}: {WRAPPER_NOTES[f.wrapper]}")
    if model_type in UNSUPPORTED:
        raise f.error("model_type", f"is {model_type!r}, which is not supported: {UNSUPPORTED[model_type]}")
    if model_type not in FAMILIES:
        raise f.error("model_type", f"is {model_type!r}, which is not supported; supported: "
                                    f"{', '.join([*FAMILIES, *WRAPPERS])}; or write the model in Python and pass "
                                    f"FILE.py:NAME (see docs/models.md)")
    try:
        fields = FAMILIES[model_type](f)
        notes += unread(f, model_type)
        if outer is not None:
            outer.read.update(k for k in inherited if k in f.read)  # read where the language model reads it
            notes += unread(outer, model_type, wrapper=True)
        fields["notes"] = (*fields.get("notes", ()), *notes)
        fields.setdefault("context_window", context_window(f))
        return DecoderConfig(name, source=source, **fields)
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
