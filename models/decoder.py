"""One decoder-only transformer config: embeddings, a stack of layers, a final norm and lm_head.

Every family in the zoo is a value of this one class; `models.hf_config` makes one from a Hugging Face
config.json. A family either gives the Llama-style fields alone (the uniform stack they describe: a sliding
window on some layers, MoE every k-th layer after the first dense ones), or also `layers`, a Stack of per-layer
compositions of parts (models.parts): Gemma-3's 5 local : 1 global, gpt-oss's alternating windows, Llama-4's
chunked rope layers beside global NoPE ones, Nemotron-H's Mamba, attention and MLP layers. Identical layers are
built once and counted.
"""

from __future__ import annotations

import functools

import attrs

from . import altup, hyper, parts, pieces
from .parallel import Parallel
from .parts import MLA, MLP, Attention, Keys, LatentAttention, Layer, MoE
from .quantization import WeightFormat
from .stack import Stack
from opgraph.core.model import BuildOptions
from opgraph.core import checks
from opgraph.errors import OpgraphError, counted
from opgraph.core.graph import Graph, GraphBuilder
from opgraph.core.model import Block, Model, Stage, expert_groups, no_experts
from opgraph.core.phase import Phase
from opgraph.core.tensor import BF16, FP32, DType, Precision
from opgraph.core.sizes import minimum, shown


def _positive(inst, attribute, value) -> None:
    checks.integer(attribute.name, value)


def _optional_positive(inst, attribute, value) -> None:
    if value is not None:
        _positive(inst, attribute, value)


def _one_of(*valid: str):
    def check(inst, attribute, value) -> None:
        if value not in valid:
            raise OpgraphError(f"{attribute.name} must be one of {', '.join(valid)}, got {value!r}")
    return check


ACTIVATIONS = {"swiglu": "silu", "geglu": "gelu", "gelu": "gelu", "situ": "situ", "xielu": "xielu", "relu": "relu",
               "relu2": "relu2"}
PLAIN_MLPS = ("gelu", "xielu", "relu", "relu2")  # the `mlp` values that are down(act(up)), without a gate


# The speculative-decoding heads a model makes of itself (DecoderConfig.draft_head: `serve --draft mtp|eagle`).
DRAFT_HEADS = ("mtp", "eagle")


@attrs.frozen
class DecoderConfig:
    """A decoder-only transformer: its embeddings and head, and its layers (`layers`, a Stack of per-layer part
    compositions). The first fields are the Llama ones (and keep their meaning everywhere): d_ffn is the dense
    MLP width; head_dim defaults to d_model // n_heads. Without `layers`, the stack is the uniform one these
    fields describe (a sliding window on `window_layers` or all, MoE per `moe.first_dense` / `layer_freq`); with
    it, the fields describe the model for listings and notes, and the stack decides what each layer computes."""

    name: str
    d_model: int = attrs.field(validator=_positive)
    n_heads: int = attrs.field(validator=_positive)
    n_kv_heads: int = attrs.field(validator=_positive)
    d_ffn: int = attrs.field(validator=_positive)
    n_layers: int = attrs.field(validator=_positive)
    vocab_size: int = attrs.field(validator=_positive)
    head_dim: int | None = None  # default d_model // n_heads, as in the HF config
    dtype: DType = BF16
    tie_embeddings: bool = False
    source: str = ""
    # Attention.
    qkv_bias: bool = False
    o_bias: bool = False
    rotary_dim: int | None = None  # rotated dims per head (partial rotary); None: all
    sliding_window: int | None = attrs.field(default=None, validator=_optional_positive)
    # Layers with the window, when not all of them are (Qwen2's max_window_layers / HF layer_types).
    window_layers: frozenset[int] | None = attrs.field(default=None, converter=attrs.converters.optional(frozenset))
    mla: MLA | None = None
    # Feed-forward.
    mlp: str = attrs.field(default="swiglu", validator=_one_of(*ACTIVATIONS))
    mlp_bias: bool = False
    moe: MoE | None = None
    # Norms, positions.
    norm: str = attrs.field(default="rmsnorm", validator=_one_of("rmsnorm", "layernorm"))
    norm_bias: bool = False
    norm_scale: bool = True  # the final norm has a weight (False: OLMo's non-parametric LayerNorm)
    positions: str = attrs.field(default="rope", validator=_one_of("rope", "learned", "alibi"))
    max_positions: int | None = attrs.field(default=None, validator=_optional_positive)
    # Rows of the learned position table before position 0 (OPT's OPTLearnedPositionalEmbedding offset of 2): the
    # table holds max_positions + position_offset rows
    position_offset: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    # The positions the checkpoint declares it serves (config.json max_position_embeddings; None: not declared).
    # It changes no cost; engines refuse longer requests by default (vLLM's max_model_len is derived from it).
    context_window: int | None = attrs.field(default=None, validator=_optional_positive)
    # Storage type of the weight matrices when the checkpoint is quantized (DeepSeek-V3's fp8); None: dtype.
    weight_dtype: DType | None = None
    # Multi-token-prediction layers the checkpoint ships (num_nextn_predict_layers): next-token inference runs none;
    # `serve --draft mtp` runs one as its draft head (draft_head).
    mtp_layers: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    # The layers of that module where it is not one layer of the last layer's kind (Nemotron-3 Super's attention
    # and MoE layers, mtp_hybrid_override_pattern "*E"); None: the last layer's kind, as DeepSeek-V3's.
    mtp_stack: Stack | None = None
    # What the loader wants every report to say (what it counted, what it left out).
    notes: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    # The layers, each its own composition of parts (None: the uniform stack the fields above describe).
    layers: Stack | None = None
    embed_norm: bool = False  # a LayerNorm with a shift on the looked-up embeddings (BLOOM's word_embeddings_layernorm)
    embed_scale: bool = False  # embeddings times a constant: sqrt(d_model) (Gemma), embedding_multiplier (Falcon-H1)
    state_dtype: DType | None = None  # the recurrent state's dtype the checkpoint asks for (None: the model's)
    # The config field that asks for it (mamba_ssm_dtype, mamba_ssm_cache_dtype): engines read different ones
    # (opgraph.analysis.serve.served_state_dtype).
    state_key: str | None = None
    # Whether the kernels keep the recurrent state at state_dtype whatever an engine is told (Kimi Linear's KDA state,
    # fp32: vLLM's MambaStateDtypeCalculator.kda_state_dtype); opgraph.analysis.serve.served_state_dtype reads it.
    state_fixed: bool = False
    # A quantized checkpoint's storage (models.quantization): which weight matrices it quantizes, and how.
    weight_format: WeightFormat | None = None
    # Gemma-4 E2B/E4B's per-layer embeddings: (hidden_size_per_layer_input, vocab_size_per_layer_input); the
    # embedding block computes them (pieces.per_layer_inputs), each layer reads its slice (parts.PerLayerInput)
    per_layer_input: tuple[int, int] | None = None
    logit_softcap: bool = False  # final logits soft-capped (Gemma-2)
    logit_scale: bool = False  # final logits times a constant (Falcon-H1's lm_head_multiplier)
    head_input_scale: bool = False  # lm_head's input times a constant (MiniCPM's hidden / dim_model_base)
    head_bias: bool = False  # lm_head has a bias (Phi-3.5-MoE's lm_head_bias)
    # The embeddings' width where it is not d_model (OPT-350m's word_embed_proj_dim): project_in [d_model, embed_dim]
    # after the lookup, project_out [embed_dim, d_model] before lm_head, which is embed_dim wide; None: d_model
    embed_dim: int | None = attrs.field(default=None, validator=_optional_positive)
    # A speculative-decoding head's input (draft_head): "mtp" or "eagle" joins the embedding and the target's hidden
    # state (pieces.draft_join); None: the embedding alone, as a model's own first layer takes it.
    draft_join: str | None = attrs.field(default=None, validator=attrs.validators.optional(_one_of(*DRAFT_HEADS)))
    final_norm: bool = True  # the norm before lm_head (an EAGLE head has none)
    # DeepSeek-V4's hyper-connection streams (hc_mult; models.hyper): the hidden state between layers is this many
    # times d_model wide. The layers' own Layer.streams must say the same.
    streams: int = attrs.field(default=1, validator=_positive)
    # The streams are Gemma-3n's AltUp streams (models.altup: made by projections of the embeddings, averaged back at
    # the head) rather than hyper-connections (copied in, collapsed by weights)
    altup: bool = False
    # Whether the head collapses the streams with weights of its own (V4's hc_head_fn); False: with the pre
    # coefficients the last layer's feed-forward computed, as DeepSeek-V4.1's, whose checkpoint has no hc_head
    hc_head: bool = True
    # Block AttnRes (Kimi-K3's attn_res_block_size; pieces.attn_res): the block snapshots the head's input mixes with
    # the last block's running sum; 0: none. The layers say their own mixes (Layer.res_mix).
    res_blocks: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    # lm_head kept in fp32 whatever the checkpoint stores (MiniMax-01's: vLLM's minimax_text_01.py lm_head.float())
    head_fp32: bool = False
    # Rows of the embedding table beyond the vocab_size lm_head scores (Molmo's 128 image-token rows, vLLM's
    # ADDITIONAL_VOCAB_SIZE): weights the lookup may read, never scored; an untied head only
    embed_rows: int = attrs.field(default=0, validator=attrs.validators.ge(0))

    def __attrs_post_init__(self) -> None:
        if self.n_heads % self.n_kv_heads:
            raise OpgraphError(f"{self.name}: n_kv_heads ({self.n_kv_heads}) must divide n_heads ({self.n_heads}) "
                               f"evenly: each KV head serves a whole group of query heads")
        if self.head_dim is None and self.mla is not None:  # MLA's heads have widths of their own
            object.__setattr__(self, "head_dim", self.mla.qk_nope_head_dim + self.mla.qk_rope_head_dim)
        if self.head_dim is None:
            if self.d_model % self.n_heads:
                raise OpgraphError(f"{self.name}: d_model ({self.d_model}) must be divisible by n_heads "
                                   f"({self.n_heads}) when head_dim is not given")
            object.__setattr__(self, "head_dim", self.d_model // self.n_heads)
        else:
            _positive(self, attrs.fields(DecoderConfig).head_dim, self.head_dim)
        if self.embed_rows and self.tie_embeddings:
            raise OpgraphError(f"{self.name}: extra embedding rows (embed_rows) need an untied lm_head")
        if self.positions == "learned" and self.max_positions is None:
            raise OpgraphError(f"{self.name}: learned positions need max_positions (the table's size)")
        if self.moe is not None and self.moe.first_dense > self.n_layers:
            raise OpgraphError(f"{self.name}: first_dense ({self.moe.first_dense}) exceeds n_layers ({self.n_layers})")
        if self.layers is None:
            object.__setattr__(self, "layers", self._uniform_stack())
        elif len(self.layers) != self.n_layers:
            raise OpgraphError(f"{self.name}: the stack has {len(self.layers)} layers, n_layers says {self.n_layers}")
        object.__setattr__(self, "layers", self._split_by_storage())
        if any(k.streams != self.streams for k in self.layers.distinct()):
            raise OpgraphError(f"{self.name}: every layer must carry the model's {self.streams} residual stream(s)")

    def _split_by_storage(self) -> Stack:
        """The stack with the layers of one kind that the checkpoint stores differently made kinds of their own
        (Layer.storage: the dtypes they keep the modules that differ in), so that each block prices its own layers'
        storage (blocks moe_fp4_layer and moe_bf16_layer where one MoE layer's experts are left unquantized); the
        stack as it is where the checkpoint's patterns name no layer (WeightFormat.per_layer) or none differ."""
        fmt = self.weight_format
        if fmt is None or not fmt.per_layer:
            return self.layers
        relabelled: dict[int, str] = {}
        for kind in self.layers.distinct():
            modules = self._matrix_modules(kind)
            groups: dict[tuple, list[int]] = {}
            for i in self.layer_indices(kind):
                groups.setdefault(tuple(fmt.dtype_for(m, i) or self.dtype for m in modules), []).append(i)
            if len(groups) == 1:
                continue
            # each group named by the dtypes it keeps the modules the groups differ on in
            differ = [j for j in range(len(modules)) if len({stored[j] for stored in groups}) > 1]
            labels: list[str] = []
            for stored, indices in groups.items():
                label = "_".join(sorted({stored[j].name for j in differ}))
                label = label if label not in labels else f"{label}_{len(labels) + 1}"
                labels.append(label)
                relabelled.update((i, label) for i in indices)
        if not relabelled:
            return self.layers
        return Stack.listed([attrs.evolve(self.layers.at(i), storage=relabelled[i]) if i in relabelled
                             else self.layers.at(i) for i in range(len(self.layers))])

    def _matrix_modules(self, kind: Layer) -> tuple[str, ...]:
        """The checkpoint modules whose weight matrices a layer of `kind` stores, as its build looks them up."""
        seen: list[str] = []

        def record(name: str) -> DType:
            seen.append(name.split("[")[0].removesuffix(".weight"))
            return self.dtype
        phase, options = Phase.decode(1, 1), BuildOptions()
        b = GraphBuilder(Precision.uniform(self.dtype), "storage", weight_dtype=record)
        kind.build(b, b.input("x", self.hidden_shape(phase, options)), phase, self.parallel(phase, options), options)
        return tuple(dict.fromkeys(seen))

    def draft_head(self, kind: str) -> "DecoderConfig":
        """A speculative-decoding head made of this model, for `serve --draft mtp|eagle`: `mtp`, one more layer of its
        last layer's kind (the multi-token-prediction module DeepSeek-V3/R1, GLM-4.5 and Qwen3-Next ship:
        num_nextn_predict_layers, DeepSeek-V3 technical report section 2.2), or the module's own layers where the
        checkpoint says (mtp_stack: Nemotron-3 Super's attention and MoE layers); `eagle`, one dense decoder layer of its
        attention and its dense MLP (EAGLE, Li et al. 2024). Either runs the model's embedding and head again each
        step (shared weights, counted here as the head's own), and joins the token's embedding with the target's
        last hidden state first (pieces.draft_join: the MTP module's enorm, hnorm and eh_proj; EAGLE's fc). The EAGLE
        head is vLLM's (llama_eagle.py, after EAGLE's cnets.py): its layer has no input norm and its output goes to
        lm_head without a final norm."""
        final_norm = True
        if self.streams > 1 and (kind != "mtp" or self.mtp_stack is None):
            which = ("is the one to use" if self.mtp_stack is not None else
                     "opgraph does not build for it (its notes say why)" if self.mtp_layers else "it does not ship")
            raise OpgraphError(f"{self.name}: a speculative-decoding head over residual streams (hyper-connections, "
                               f"AltUp) is modelled as "
                               f"the checkpoint's own multi-token-prediction module (--draft mtp), which {which}")
        if kind == "mtp":
            if self.mtp_stack is not None:
                moe = None if self.moe is None else attrs.evolve(self.moe, first_dense=0)
                return attrs.evolve(self, name=f"{self.name} {kind} head", n_layers=len(self.mtp_stack),
                                    layers=self.mtp_stack, moe=moe, draft_join=kind, res_blocks=0)
            layer = self.layers.at(self.n_layers - 1)
        elif kind == "eagle":
            dense = MLP(self.d_ffn, ACTIVATIONS[self.mlp], gated=self.mlp not in PLAIN_MLPS, bias=self.mlp_bias)
            layer = parts.Layer((parts.Sublayer(self._attention(), key="attn"),
                                 parts.Sublayer(dense, "post_attention_layernorm.weight", key="mlp")),
                                self.norm, self.norm_bias)
            final_norm = False
        else:
            raise OpgraphError(f"unknown draft head {kind!r}; valid: {', '.join(DRAFT_HEADS)}")
        moe = None if self.moe is None else attrs.evolve(self.moe, first_dense=0)
        return attrs.evolve(self, name=f"{self.name} {kind} head", n_layers=1, layers=Stack.uniform(layer, 1), moe=moe,
                            draft_join=kind, final_norm=final_norm, res_blocks=0)

    # -- the uniform stack the Llama-style fields describe ---------------------------------------------
    def _uniform_stack(self) -> Stack:
        attention = self._attention()
        windowed = attrs.evolve(attention, keys=Keys("sliding", self.sliding_window)) \
            if self.sliding_window is not None and self.mla is None else attention
        dense = MLP(self.d_ffn, ACTIVATIONS[self.mlp], gated=self.mlp not in PLAIN_MLPS, bias=self.mlp_bias)
        moe, listed = self.moe, self.window_layers if self.sliding_window is not None else None
        layers = {(f, w): parts.pre_norm(windowed if w else attention, moe if f else dense, norm=self.norm,
                                         norm_bias=self.norm_bias) for f in (False, True) for w in (False, True)}

        def layer_at(i: int) -> Layer:
            return layers[moe is not None and moe.placed(i), self.sliding_window is not None and (listed is None or i in listed)]

        edges = [moe.first_dense] if moe is not None else []
        for i in listed or ():  # a listed window layer is a stretch of its own
            edges += [i, i + 1]
        return Stack.build(self.n_layers, layer_at, period=moe.layer_freq if moe is not None else 1, breaks=edges,
                           what="moe_layer_freq")

    def _attention(self):
        if self.mla is not None:
            return LatentAttention(self.n_heads, self.mla)
        return Attention(self.n_heads, self.n_kv_heads, self.head_dim, rotary=self.positions == "rope",
                         alibi=self.positions == "alibi", rotary_dim=self.rotary_dim, q_bias=self.qkv_bias,
                         k_bias=self.qkv_bias, v_bias=self.qkv_bias, o_bias=self.o_bias)

    # -- structure ----------------------------------------------------------------------------------
    def layer_kinds(self) -> dict[Layer, int]:
        """Each distinct layer with its count, in order of first appearance (counted, not enumerated)."""
        return dict(self._kinds)

    @functools.cached_property
    def _kinds(self) -> dict[Layer, int]:
        return self.layers.counts()

    def kinds_between(self, start: int, stop: int) -> dict[Layer, int]:
        """Each layer kind's count among layers start..stop-1 (a pipeline stage), in `layer_kinds`'s order."""
        order = list(self.layer_kinds())
        return dict(sorted(self.layers.counts(start, stop).items(), key=lambda kv: order.index(kv[0])))

    def parts(self, kind: type) -> list:
        """The distinct parts of a kind (MoE, Attention, ...) among the model's layers, in order."""
        return list(dict.fromkeys(p for layer in self.layers.distinct() for p in layer.parts() if isinstance(p, kind)))

    def moe_spec(self) -> MoE | None:
        """The routed experts of the model's MoE layers (the first, where layers differ)."""
        found = self.parts(MoE)
        return found[0] if found else None

    def stage_layers(self, pp: int, given: tuple[int, ...] | None) -> list[int]:
        """Layers per pipeline stage: `given` (checked), else as even as can be, the first stages one more."""
        n = self.n_layers
        if pp > n:
            raise OpgraphError(f"--pp {pp} exceeds the {n} layers of {self.name}; every stage needs a layer")
        if given is None:
            return [n // pp + (s < n % pp) for s in range(pp)]
        if len(given) != pp or any(not isinstance(c, int) or isinstance(c, bool) or c < 1 for c in given) \
                or sum(given) != n:
            raise OpgraphError(f"--pp-layers {','.join(map(str, given))}: give {pp} positive layer counts, one per "
                               f"stage, that add up to the {n} layers of {self.name}")
        return list(given)

    @functools.cached_property
    def _block_names(self) -> dict[Layer, str]:
        """"layer" when all layers are alike, else the words that set each kind apart, axis by axis (ffn: dense /
        moe; keys: full / sliding / chunked; positions: rope / nope; mixer: attention / mla / mamba / deltanet):
        dense_layer, sliding_layer, chunked_rope_layer, mamba_layer ...; the MLP's width, then a number, where that is
        not enough."""
        kinds = self.layers.distinct()
        if len(kinds) == 1:
            return {kinds[0]: "layer"}
        words = [k.words() for k in kinds]
        # An axis names layers apart where the layers that have it differ on it (a Mamba layer has no keys).
        axes = [a for a in ("ffn", "keys", "positions", "mixer", "memory", "storage", "res")
                if len({w[a] for w in words if a in w}) > 1
                or (a == "memory" and 0 < sum(a in w for w in words) < len(words))]  # some layers have one
        bases = ["_".join(w[a] for a in axes if a in w) or "_".join(w.values()) for w in words]
        names: dict[Layer, str] = {}
        for k, base in zip(kinds, bases):
            widths = [p.d_ffn for p in k.parts() if isinstance(p, MLP)]
            if bases.count(base) > 1 and widths:  # kinds alike but for their MLPs' widths (Llama-Nemotron's)
                base = f"{base}_ffn{widths[0]}"
            name, n = f"{base}_layer", 2
            while name in names.values():
                name, n = f"{base}_layer_{n}", n + 1
            names[k] = name
        return names

    def block_name(self, kind: Layer) -> str:
        return self._block_names[kind]

    # -- building -----------------------------------------------------------------------------------
    def precision(self, options: BuildOptions) -> Precision:
        if options.precision is not None:
            p = options.precision
            return attrs.evolve(p, state=self.state_dtype) if p.state is None and self.state_dtype else p
        return Precision(self.weight_dtype or self.dtype, self.dtype, self.declared_kv or self.dtype,
                         state=self.state_dtype)

    @property
    def recurrent(self) -> bool:
        """Whether some layer keeps a recurrent state (a Mamba-2, Gated DeltaNet or Kimi Delta Attention mixer)."""
        return bool(self.parts(parts.Mamba2) or self.parts(parts.DeltaNet) or self.parts(parts.KimiDelta))

    @property
    def declared_kv(self):
        """The KV cache's dtype the checkpoint's quantization_config declares (WeightFormat.kv_cache), else None."""
        return None if self.weight_format is None else self.weight_format.kv_cache

    def layer(self, phase: Phase, options: BuildOptions = BuildOptions(), kind: Layer | None = None) -> Graph:
        """One layer's graph; by default of the most numerous kind (the only one in a homogeneous model)."""
        kinds = self.layer_kinds()
        kind = max(kinds, key=kinds.__getitem__) if kind is None else kind
        b = GraphBuilder(self.precision(options), self.block_name(kind),
                         weight_dtype=self.weight_dtype_for(options, kind))
        par = self.parallel(phase, options)
        x = b.input("x", self.hidden_shape(phase, options))
        return b.build(outputs=[kind.build(b, x, phase, par, options)])

    def stores_own_weights(self, options: BuildOptions) -> bool:
        """Whether the weights are the quantized checkpoint's own: no precision given, or one that keeps them
        (opgraph.choices.precision keeps them unless --dtype or --weight-dtype is given)."""
        return self.weight_dtype is not None and (options.precision is None
                                                  or options.precision.weight == self.weight_dtype)

    def head_dtype(self, options: BuildOptions):
        """lm_head's storage where the checkpoint quantizes it (GPTQ's lm_head: true, a MIXED_PRECISION entry) or
        the engines widen it (head_fp32), else None: a head of its own, the checkpoint's weights kept."""
        fmt = self.weight_format
        if self.head_fp32 and not self.tie_embeddings:
            return FP32
        if fmt is None or self.tie_embeddings or not self.stores_own_weights(options):
            return None
        return fmt.dtype_for("lm_head")

    def layer_indices(self, kind: Layer) -> tuple[int, ...]:
        """The indices of the layers of one kind."""
        return tuple(i for i in range(len(self.layers)) if self.layers.at(i) == kind)

    def weight_dtype_for(self, options: BuildOptions, kind: Layer | None = None):
        """What each weight matrix is stored as, by its checkpoint name, when the checkpoint quantizes some modules
        and not others (gpt-oss keeps attention and the router in bf16); None where all matrices share the
        precision's weight dtype (an unquantized model, or the user's --weight-dtype). Where the checkpoint's
        patterns name particular layers (WeightFormat.per_layer: NVIDIA's GLM-5.1 NVFP4 keeps its three dense layers
        whole in bf16), a layer `kind`'s matrices are resolved over its own layers, which store them alike: layers
        of one kind stored differently are kinds of their own (_split_by_storage). A module they store differently
        all the same is refused, since one block prices them all."""
        fmt = self.weight_format
        if fmt is None or not self.stores_own_weights(options):
            return None
        # the kind's layers are looked up only for patterns that name layers: most checkpoints' do not
        dtype, indices = self.dtype, self.layer_indices(kind) if kind is not None and fmt.per_layer else (None,)

        def of(name: str):
            module = name.split("[")[0].removesuffix(".weight")
            found = {i: fmt.dtype_for(module, i) or dtype for i in indices}
            if len(set(found.values())) > 1:
                stored: dict[str, list[int]] = {}
                for i, d in found.items():
                    stored.setdefault(d.name, []).append(i)
                raise OpgraphError(f"{fmt.where}: quantization_config stores {module} as "
                                   + " and as ".join(f"{d} in layers {_spans(ix)}" for d, ix in stored.items())
                                   + ", layers this model builds alike: layers of one kind stored differently are "
                                   "not modelled")
            return found[indices[0]]
        return of

    @staticmethod
    def parallel(phase: Phase, options: BuildOptions) -> Parallel:
        """The parallel layout every part of a layer is built under."""
        return Parallel.of(phase, options.tp, options.ep, options.sp)

    def hidden_shape(self, phase: Phase, options: BuildOptions) -> tuple:
        """The hidden states between layers on one GPU: all the step's tokens, or its slice under --sp."""
        return (*self.parallel(phase, options).tokens(phase), self.d_model * self.streams)

    def embed_head(self, phase: Phase, options: BuildOptions = BuildOptions(),
                   parts: tuple[str, ...] = ("embed", "head")) -> Graph:
        """The embedding and the final norm with lm_head: one block, or (a pipeline's first and last stages) one
        of the two."""
        b = GraphBuilder(self.precision(options), "_".join(parts), weight_dtype=self.weight_dtype_for(options))
        dims = dict(vocab=self.vocab_size, d_model=self.d_model, par=self.parallel(phase, options),
                    embed_dim=self.embed_dim)
        positions = self.max_positions + self.position_offset if self.positions == "learned" else None
        outs = []
        if "embed" in parts:
            h = pieces.embedding(b, phase, positions=positions, scaled=self.embed_scale, normed=self.embed_norm,
                                 **{**dims, "vocab": self.vocab_size + self.embed_rows})
            if self.per_layer_input is not None:  # projected from the embeddings, before any streams
                width, vocab = self.per_layer_input
                outs.append(pieces.per_layer_inputs(b, phase, h, layers=self.n_layers, width=width, vocab=vocab,
                                                    par=dims["par"]))
            if self.streams > 1:
                h = (altup.embed(b, h, streams=self.streams, par=dims["par"]) if self.altup else
                     hyper.repeat(b, h, streams=self.streams))
            outs.insert(0, h)
        if "head" in parts:
            outs.append(pieces.lm_head(b, phase, tied=self.tie_embeddings, norm_fn=self.norm, norm_bias=self.norm_bias,
                                       softcap=self.logit_softcap, scaled=self.logit_scale,
                                       input_scaled=self.head_input_scale, bias=self.head_bias,
                                       final_norm=self.final_norm, norm_scale=self.norm_scale,
                                       dtype=self.head_dtype(options),
                                       streams=self.streams, hc_head=self.hc_head, res_blocks=self.res_blocks,
                                       altup_streams=self.altup,
                                       **dims))
        return b.build(outputs=outs)

    def draft_input(self, phase: Phase, options: BuildOptions = BuildOptions()) -> Graph:
        """A speculative head's join of the embedding and the target's hidden state (draft_join), one block."""
        b = GraphBuilder(self.precision(options), "draft_join", weight_dtype=self.weight_dtype_for(options))
        return b.build(outputs=[pieces.draft_join(b, phase, d_model=self.d_model, norms=self.draft_join == "mtp",
                                                  streams=self.streams,
                                                  norm_fn=self.norm, par=self.parallel(phase, options))])

    def build(self, phase: Phase, options: BuildOptions = BuildOptions()) -> Model:
        """The model for one phase, built as `options` say (precision per role, causal skipping, experts read,
        tensor parallelism: with tp > 1, one GPU's share)."""
        tp = checks.integer("--tp", options.tp, maximum=1024)
        ep = checks.integer("--ep", options.ep, maximum=1024)
        moe = self.moe_spec()
        if ep > 1 and moe is None and self.draft_join is not None and tp % ep == 0:
            # a dense draft head (Step-3.5's MTP layer) beside a target whose experts spread over its tensor-parallel
            # group: its layers run on that group as the target's attention does
            options, ep = attrs.evolve(options, ep=1), 1
        if ep > 1:
            if moe is None:
                raise no_experts(ep, self.name)
            if 1 < tp < ep:
                raise OpgraphError(f"--ep {ep} with --tp {tp} and --dp {ep // tp}: expert parallelism is built "
                                   f"over data-parallel attention (--dp {ep} --ep {ep}, as DeepSeek serves V3) or "
                                   f"over a tensor-parallel group (--tp {ep} --ep {ep}, as vLLM runs it), not both")
            if tp > ep and tp % ep:
                raise OpgraphError(f"--ep {ep} does not divide --tp {tp}: the experts spread over ep groups of the "
                                   f"tensor-parallel group, each of tp / ep GPUs (give --ep {tp} or a divisor of {tp})")
            if moe.experts % ep:
                more = "exceeds" if ep > moe.experts else "does not divide"
                raise OpgraphError(f"--ep {ep} {more} the {moe.experts} routed experts; expert parallelism "
                                   f"gives every GPU the same number of whole experts")
        pp = checks.integer("--pp", options.pp, maximum=1024)
        if pp > 1:
            return self._pipeline(phase, options, pp)
        blocks = [Block(self.block_name(k), n, self.layer(phase, options, k)) for k, n in self.layer_kinds().items()]
        if self.draft_join is not None:
            blocks.append(Block("draft_join", 1, self.draft_input(phase, options)))
        blocks.append(Block("embed_head", 1, self.embed_head(phase, options)))
        # The unsplit model's weights, so the group's copies and padding can be told apart from the model's.
        whole = self.whole_weight_bytes(options) if tp > 1 or ep > 1 else None
        # Under expert parallelism GPUs differ in load: the blocks are the busiest GPU's; the group's totals
        # come from a GPU with the mean load.
        mean = (functools.partial(self.build, phase, attrs.evolve(options, expert_imbalance=1.0))
                if ep > 1 and options.expert_imbalance != 1.0 else None)
        return Model(self.name, phase, blocks, notes=self.phase_notes(phase, options), gpus=max(tp, ep),
                     whole_weight_bytes=whole, mean_gpu=mean, parallel=_parallel_words(tp, ep), replicas=max(1, ep // tp))

    @functools.lru_cache(maxsize=256)
    def whole_weight_bytes(self, options: BuildOptions) -> int:
        """The unsplit model's weights (the same in every phase), so that a parallel group's copies and padding
        can be told apart from the model's own."""
        flat = attrs.evolve(options, tp=1, ep=1, dp=1, pp=1, sp=False, micro_batches=None, pp_layers=None,
                            expert_imbalance=None, experts_touched=None)
        return self.build(Phase.decode(1, 1), flat).weight_bytes()

    def _pipeline(self, phase: Phase, options: BuildOptions, pp: int) -> Model:
        """Pipeline parallelism: the layers split into `pp` stages (stage 0 also embeds, the last also runs the
        head), each on its own tp (or ep) GPUs, passing the hidden states on with a send. The batch runs as
        micro-batches of ceil(batch / M) sequences, M = min(micro_batches, batch): the stages' times are taken at
        one micro-batch (`micro`), their weights and KV cache at the whole batch."""
        if self.draft_join is not None:  # engines run a draft head beside the target's last stage, not split
            raise OpgraphError(f"{self.name}: a speculative-decoding head is not split into pipeline stages")
        flat = attrs.evolve(options, pp=1, micro_batches=None, pp_layers=None)
        split = self.stage_layers(pp, options.pp_layers)
        m = checks.integer("--micro-batches", options.micro_batches or pp, maximum=10**6)
        micro_batches = minimum(m, phase.batch)
        small = attrs.evolve(phase, batch=-(-phase.batch // micro_batches))  # its cached tokens kept, as a chunk's
        gpus = max(options.tp, options.ep) * pp

        # Each hand-over's block snapshots (Block AttnRes: those written before the next stage's first layer), and
        # the send block that carries them: one "send" where every hand-over is alike.
        starts = [sum(split[:s + 1]) for s in range(pp - 1)]
        carried = [sum(c for k, c in self.kinds_between(0, first).items() if k.res_restart) for first in starts]
        send_name = {k: "send" if len(set(carried)) == 1 else f"send_{k}" for k in carried}

        def blocks(at: Phase) -> list[Block]:
            out = [Block(self.block_name(k), n, self.layer(at, flat, k)) for k, n in self.layer_kinds().items()]
            out += [Block("embed", 1, self.embed_head(at, flat, parts=("embed",))),
                    Block("head", 1, self.embed_head(at, flat, parts=("head",)))]
            out += [Block(send_name[k], carried.count(k), self._send(at, flat, gpus, snapshots=k))
                    for k in dict.fromkeys(carried)]
            return out

        stages, first = [], 0
        for s, n in enumerate(split):
            counts = [(self.block_name(k), c) for k, c in self.kinds_between(first, first + n).items()]
            hand_over = [("head", 1)] if s == pp - 1 else [(send_name[carried[s]], 1)]
            counts = ([("embed", 1)] if s == 0 else []) + counts + hand_over
            stages.append(Stage(f"stage {s}", first, n, tuple(counts)))
            first += n
        micro = Model(self.name, small, blocks(small))
        mean = (functools.partial(self.build, phase, attrs.evolve(options, expert_imbalance=1.0))
                if options.ep > 1 and options.expert_imbalance != 1.0 else None)
        parallel = ", ".join(p for p in (_parallel_words(options.tp, options.ep), f"pipeline parallel over {pp} stages")
                             if p)
        return Model(self.name, phase, blocks(phase), notes=self.phase_notes(phase, options), gpus=gpus,
                     whole_weight_bytes=self.whole_weight_bytes(options), mean_gpu=mean, parallel=parallel,
                     replicas=max(1, options.ep // options.tp), stages=tuple(stages), micro=micro,
                     micro_batches=micro_batches)

    def _send(self, phase: Phase, options: BuildOptions, span: int, snapshots: int = 0) -> Graph:
        """A pipeline stage's hand-over: its last layer's output sent to the next stage's GPUs, with the Block
        AttnRes `snapshots` the next stage's layers read (vLLM's kimi_k3 intermediate tensors: the running sum and
        [tokens, snapshots, d])."""
        b = GraphBuilder(self.precision(options), "send")
        *tokens, width = self.hidden_shape(phase, options)
        x = b.input("hidden", (*tokens, width + snapshots * self.d_model))
        return b.build(outputs=[b.send_recv("send", x, span=span, out="hidden_sent")])

    # -- what a reader must know --------------------------------------------------------------------
    @staticmethod
    def mla_absorbed(phase: Phase) -> bool:
        """Which MLA form a phase uses: decompressed for prefill, weight-absorbed for decode."""
        return phase.past > 0

    def mla_spec(self) -> MLA | None:
        found = self.parts(LatentAttention)
        return found[0].mla if found else None

    def mla_expanded(self) -> LatentAttention | None:
        """The latent attention where it runs as multi-head attention (MiniCPM3 under vLLM), else None."""
        found = [a for a in self.parts(LatentAttention) if a.expanded]
        return found[0] if found else None

    def phase_notes(self, phase: Phase, options: BuildOptions = BuildOptions()) -> tuple[str, ...]:
        notes = list(self.notes)
        m = self.mla_spec()
        expanded = self.mla_expanded()
        if m is not None:
            h = self.n_heads
            if expanded is not None:
                width = m.qk_nope_head_dim + m.qk_rope_head_dim
                notes.append(f"{phase.name}: MLA's weights run as multi-head attention: kv_b_proj expands every "
                             f"token's {m.kv_lora_rank}-dim latent to {h} heads of K ({m.qk_nope_head_dim}+"
                             f"{m.qk_rope_head_dim} with the shared rope key) and V ({m.v_head_dim}, zero-padded to "
                             f"{width}), and the cache stores them: {expanded.cache_width} values per token")
            elif self.mla_absorbed(phase):
                notes.append(f"{phase.name}: MLA weight-absorbed: kv_b_proj's K rows fold into the query (q_absorb) "
                             f"and its V rows into the output (v_absorb); attention reads the cached "
                             f"{m.kv_lora_rank}+{m.qk_rope_head_dim} latent+rope entries, never decompressed "
                             f"(QK^T over {m.cache_width} dims per head, PV over {m.kv_lora_rank})")
            else:
                notes.append(f"{phase.name}: MLA decompressed: kv_b_proj expands the new tokens' {m.kv_lora_rank}-dim "
                             f"latents to {h} heads of K ({m.qk_nope_head_dim}+{m.qk_rope_head_dim} with the shared "
                             f"rope key) and V ({m.v_head_dim}); the cache stores {m.cache_width} values per token")
        e = self.moe_spec()
        if e is not None:
            t = phase.tokens
            touched = e.touched(t, options.experts_touched)
            how = (f"--experts-touched {options.experts_touched}; a step of {counted(shown(t), 'token')} touches at "
                   f"most {e.top_k * t}" if options.experts_touched is not None else
                   f"expected distinct experts for {counted(shown(t), 'token')} routed uniformly: "
                   f"{e.experts}*(1-(1-{e.top_k}/{e.experts + e.zero})^{t}) = "
                   f"{pieces.expected_experts_real(e.experts, e.top_k, t, e.experts + e.zero):.2f}, rounded up")
            shared = (f" + {e.shared} shared" if e.shared else f" + a shared expert of width {e.shared_d:,}"
                      if e.shared_d else "")
            zero = (f" (picked among them and {e.zero} zero-computation experts, whose picks run as weight-0 rows "
                    f"of expert 0, as vLLM and SGLang run them: {e.top_k} rows a token)" if e.zero else "")
            notes.append(f"{phase.name}: MoE layers compute {e.top_k} of {e.experts} routed experts{zero}{shared} per "
                         f"token and read the weights of {touched} routed experts ({how})")
        for keys in dict.fromkeys(a.keys for a in self.parts(Attention) if a.keys.kind != "full"):
            w = keys.size
            if keys.kind == "sliding":
                what = (f"each new token attends to min(context+1, {w}) = {minimum(phase.keys, w)} keys" if phase.past
                        else f"a query at position p attends to min(p+1, {w}) keys (the full score matrix is counted "
                             f"unless causal skipping is on)")
                notes.append(f"{phase.name}: sliding window {w}: {what}; the KV cache holds at most {w} tokens")
            else:
                what = (f"the new token attends to the {keys.cached(phase) + 1} keys of its chunk" if phase.past else
                        f"each chunk of {w} positions attends within itself (the pairs of each chunk are counted)")
                notes.append(f"{phase.name}: chunked attention over {w}-token chunks: {what}; the KV cache holds the "
                             f"current chunk")
        if self.positions != "learned" and self.context_window is not None and phase.keys > self.context_window:
            notes.append(f"{phase.name}: {phase.keys:,} positions exceed the model's context window of "
                         f"{self.context_window:,} (config.json max_position_embeddings); engines refuse such requests "
                         f"by default, and the figures extrapolate")
        if self.positions == "learned" and phase.keys > self.max_positions:
            notes.append(f"{phase.name}: {phase.keys} positions exceed the model's {self.max_positions} learned "
                         f"positions; the figures extrapolate a model that cannot run this long")
        if self.stores_own_weights(options):
            p = self.precision(options)
            notes.append(f"weights stored as {self.weight_dtype} (config.json quantization_config); "
                         + (f"activations and KV cache {p.act.name}" if p.act == p.kv else
                            f"activations {p.act.name}, KV cache {p.kv}")
                         + (" as the checkpoint declares" if p.kv == self.declared_kv else ""))
        if options.tp > 1:
            notes.append(f"tensor parallel over {options.tp} GPUs (Megatron): every figure is one GPU's; q, k, v, gate "
                         f"and up split by columns, o_proj and down_proj by rows, each followed by an all-reduce of "
                         f"the hidden states; embedding and lm_head split by vocabulary"
                         + (f" (padded from {self.vocab_size:,} to {-(-self.vocab_size // options.tp) * options.tp:,})"
                            if self.vocab_size % options.tp else ""))
            if m is not None and expanded is not None:
                notes.append(f"MLA as multi-head attention over {options.tp} GPUs: the heads and their K and V cache "
                             f"split, but every GPU computes the whole latent (q_a_proj, kv_a_proj_with_mqa)")
            elif m is not None:
                notes.append(f"MLA over {options.tp} GPUs: the heads split, but every GPU computes and caches the whole "
                             f"{m.cache_width}-wide latent (the KV cache is not split)")
            if e is not None and options.ep == 1:
                notes.append(f"MoE over {options.tp} GPUs without expert parallelism: every GPU holds every expert's "
                             f"1/{options.tp} slice and runs the router whole")
            if any(a.kv_heads < options.tp for a in self.parts(Attention)):
                notes.append(f"{self.n_kv_heads} KV heads over {options.tp} GPUs: each GPU holds one KV head, so each is "
                             f"stored {options.tp // self.n_kv_heads} times across the group (the KV cache per GPU counts "
                             f"its copy)")
        if options.sp and options.tp > 1:
            what = "positions of each prompt" if phase.name == "prefill" else "sequences of the step"
            notes.append(f"sequence parallel (Korthikanti et al., 2022): between layers each GPU holds 1/{options.tp} "
                         f"of the {what}, so norms and residual adds run on that slice; each all-reduce becomes a "
                         f"reduce-scatter to the slices and an all-gather before the next column-parallel layer "
                         f"(the same bytes on the wire, in two collectives)")
        if options.pp > 1:
            split = self.stage_layers(options.pp, options.pp_layers)
            m = minimum(options.micro_batches or options.pp, phase.batch)
            size = -(-phase.batch // m)
            uneven = (f"; the batch does not split evenly, so each micro-batch is costed at the largest, {size} "
                      f"(an upper bound)" if shown(phase.batch) % shown(m) else "")  # text only: no regime
            notes.append(f"pipeline parallel over {options.pp} stages of {', '.join(map(str, split))} layers (the "
                         f"first also embeds, the last runs the head), each handing its hidden states to the next "
                         f"(send); the batch of {phase.batch} runs as "
                         f"{counted(shown(m), 'micro-batch', 'micro-batches')} of {size}{uneven}; every "
                         f"figure is one GPU's of the busiest stage over all micro-batches, and the step takes "
                         + ("max(M x the slowest stage, the sum of the stages), M micro-batches in flight"
                            if phase.past else "the sum of the stages + (M-1) x the slowest (fill and drain)"))
        if options.ep > 1:
            ep, t, in_tp = options.ep, phase.tokens, options.tp > 1
            split = Parallel(options.tp, ep).expert_split  # GPUs of an expert group
            unit = f"groups of {split} GPUs" if split > 1 else "GPUs"
            rows = e.rows(t, ep, options.expert_imbalance, shared=in_tp)
            mean = f"{t * e.top_k / ep:,.1f}" if in_tp else f"{t * e.top_k:,}"
            how = (f"--expert-imbalance {options.expert_imbalance:g} x the mean" if options.expert_imbalance else
                   f"the busiest of {ep} {unit} under uniform routing: the mean plus "
                   f"{pieces.expected_max_normal(ep):.2f} standard deviations, rounded up")
            each = (f"expert parallel over {ep} groups of {split} GPUs of the tensor-parallel group of {options.tp}: "
                    f"every GPU has every token after attention; each GPU holds 1/{split} of the width of its group's"
                    if split > 1 else
                    f"expert parallel over the tensor-parallel group of {ep}: every GPU has every token after "
                    f"attention; each holds" if in_tp else
                    f"expert parallel over {ep} GPUs with data-parallel attention: every figure is one GPU's, "
                    f"serving its own batch of {phase.batch}; each holds")
            moves = ("gathers the rows routed to its experts and adds their weighted outputs into the all-reduce "
                     "that tensor parallelism already runs" if in_tp else
                     "sends its tokens to their experts and back (ep_dispatch, ep_combine: all-to-alls of tokens x "
                     "top_k x d_model)")
            notes.append(f"{each} {e.experts // ep} of the {e.experts} routed experts{'' if split > 1 else ' whole'} "
                         f"and runs {rows:,} token-expert rows through them ({how}; the mean is {mean}); the group's "
                         f"totals count the mean load; each MoE layer {moves}")
        p = self.precision(options)
        if p.tables is None and p.table != p.weight:
            notes.append(f"embedding table and lm_head stored as {p.table.name}, not {p.weight}: quantized "
                         f"checkpoints (GPTQ, AWQ, fp8) keep them unquantized; --table-dtype sets them")
        return tuple(notes)

    def summary(self) -> dict:
        """Shape fields for `opgraph models`."""
        s = {"layers": self.n_layers, "d_model": self.d_model, "heads": self.n_heads}
        m = self.mla_spec()
        if m is None:
            s.update(kv_heads=self.n_kv_heads, head_dim=self.head_dim)
        else:
            s.update(attention="mla", head_dim=m.qk_nope_head_dim + m.qk_rope_head_dim, v_head_dim=m.v_head_dim,
                     kv_lora_rank=m.kv_lora_rank, q_lora_rank=m.q_lora_rank,
                     kv_cache_per_token=self.parts(LatentAttention)[0].cache_width)
        s.update(d_ffn=self.d_ffn, vocab=self.vocab_size, tied_embeddings=self.tie_embeddings, dtype=self.dtype.name)
        if self.weight_dtype is not None:
            s["weight_dtype"] = str(self.weight_dtype)
        windows = sorted({a.keys.size for a in self.parts(Attention) if a.keys.kind == "sliding"})
        if windows:
            s["window"] = windows[0] if len(windows) == 1 else windows
        squeezed = self.parts(parts.CompressedAttention)
        if squeezed:
            s.update(attention="compressed", window=squeezed[0].window,
                     compress_ratios=sorted({a.ratio for a in squeezed if a.ratio}))
        if self.streams > 1:
            s["streams"] = self.streams
        chunks = sorted({a.keys.size for a in self.parts(Attention) if a.keys.kind == "chunked"})
        if chunks:
            s["chunk"] = chunks[0] if len(chunks) == 1 else chunks
        e = self.moe_spec()
        if e is not None:
            s.update(experts=e.experts, top_k=e.top_k, shared_experts=e.shared, d_expert=e.d_expert,
                     **({"zero_experts": e.zero} if e.zero else {}),
                     dense_layers=sum(n for k, n in self.layer_kinds().items()
                                      if not any(isinstance(p, MoE) for p in k.parts())))
        # Block AttnRes's mixes set layers apart as blocks, not as kinds of layer: listed without them
        plain = self if not self.res_blocks else attrs.evolve(self, layers=Stack.listed(
            [attrs.evolve(self.layers.at(i), res_mix=(), res_restart=False) for i in range(self.n_layers)]))
        kinds = plain.layer_kinds()
        if len(kinds) > 1:
            s["layer_kinds"] = {plain.block_name(k): n for k, n in kinds.items()}
        if self.res_blocks:
            s["attn_res_snapshots"] = self.res_blocks
        if self.positions == "learned":
            s["positions"] = self.max_positions
        if self.mtp_layers:
            s["mtp_layers"] = self.mtp_layers
        return s


def _parallel_words(tp: int, ep: int) -> str:
    experts = (f", experts over {ep} groups of {tp // ep}" if expert_groups(tp, 1, ep) else
               f", experts over all {ep}" if ep > 1 else "")
    return (f"tensor parallel over {tp} GPUs{experts}" if tp > 1 else
            f"data parallel over {ep} GPUs{experts}" if ep > 1 else "")


def _spans(indices: list[int]) -> str:
    """Layer indices in runs: [0, 1, 2, 5] -> '0-2, 5'."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)
