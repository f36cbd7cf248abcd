"""One decoder-only transformer config that composes the pieces: attention (MHA/GQA/MQA with optional
biases and sliding window, or multi-head latent attention), MLP (gated SwiGLU/GeGLU or plain GELU, or a
mixture of experts), norms (RMSNorm/LayerNorm), positions (rotary or learned), tied or untied embeddings.

Every family in the zoo (Llama, Mistral, Mixtral, Qwen2, Gemma, GPT-2, DeepSeek-V2/V3) is a value of
this one class; `models.hf_config` makes one from a Hugging Face config.json. Layers that differ (DeepSeek's
dense first layers, Qwen2's full-attention layers below the sliding ones) become separate blocks with
counts; identical layers are built once.
"""

from __future__ import annotations

import functools

import attrs

from . import pieces
from opgraph.core.model import BuildOptions
from opgraph.core import checks
from opgraph.errors import OpgraphError
from opgraph.core.graph import Graph, GraphBuilder
from opgraph.core.model import Block, Model, Stage
from opgraph.core.phase import Phase
from opgraph.core.tensor import BF16, DType, Precision
from opgraph.core.sizes import minimum


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


@attrs.frozen
class MLA:
    """Multi-head latent attention dimensions, named as in the DeepSeek config.json."""

    kv_lora_rank: int = attrs.field(validator=_positive)
    qk_nope_head_dim: int = attrs.field(validator=_positive)
    qk_rope_head_dim: int = attrs.field(validator=_positive)
    v_head_dim: int = attrs.field(validator=_positive)
    q_lora_rank: int | None = attrs.field(default=None, validator=_optional_positive)

    @property
    def cache_width(self) -> int:
        """KV-cache elements per token per layer: the latent plus the shared rope key."""
        return self.kv_lora_rank + self.qk_rope_head_dim


@attrs.frozen
class MoE:
    """Mixture-of-experts FFN: `experts` routed SwiGLU experts of width `d_expert`, `top_k` per token,
    `shared` always-on experts, on every `layer_freq`-th layer from `first_dense` on (the layers before
    are dense, with the config's d_ffn)."""

    experts: int = attrs.field(validator=_positive)
    top_k: int = attrs.field(validator=_positive)
    d_expert: int = attrs.field(validator=_positive)
    shared: int = 0
    first_dense: int = 0
    layer_freq: int = attrs.field(default=1, validator=_positive)
    router_bias: bool = False

    def __attrs_post_init__(self) -> None:
        if self.top_k > self.experts:
            raise OpgraphError(f"top_k ({self.top_k}; num_experts_per_tok in a config.json) must not exceed the "
                               f"number of experts ({self.experts}; num_local_experts or n_routed_experts)")
        for field in ("shared", "first_dense"):
            v = getattr(self, field)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise OpgraphError(f"{field} must be a non-negative integer, got {v!r}")

    def touched(self, tokens: int, override: int | None = None) -> int:
        """Routed experts whose weights a step of `tokens` tokens reads: the user's override, or the
        expectation under uniform routing rounded up (pieces.expected_experts)."""
        if override is None:
            return pieces.expected_experts(self.experts, self.top_k, tokens)
        if not isinstance(override, int) or isinstance(override, bool) or not self.top_k <= override <= self.experts:
            raise OpgraphError(f"experts_touched must be an integer from top_k ({self.top_k}) to the number of "
                               f"experts ({self.experts}), got {override!r}")
        # A step of T tokens cannot touch more than T*k experts: small steps cap the user's figure.
        return minimum(override, tokens * self.top_k)

    def rows(self, tokens: int, ep: int, imbalance: float | None, shared: bool = False) -> int:
        """Token-expert rows one expert-parallel GPU runs when each of `ep` GPUs routes `tokens` tokens (or, with
        `shared`, when all of them see the same `tokens`): the busiest GPU's (pieces.busiest_expert_load), or
        imbalance x the mean."""
        return pieces.busiest_expert_load(self.experts, self.top_k, ep, tokens, imbalance or 0.0, shared)

    def touched_local(self, rows: int, ep: int, override: int | None = None) -> int:
        """Experts one expert-parallel GPU reads: of its experts / ep, those its `rows` rows reach (each row one
        of them, uniformly), or the user's override."""
        local = self.experts // ep
        if override is None:
            return pieces.expected_experts(local, 1, rows)
        if not isinstance(override, int) or isinstance(override, bool) or not 1 <= override <= local:
            raise OpgraphError(f"--experts-touched with --ep {ep} counts the experts one GPU reads, from 1 to the "
                               f"{local} it holds ({self.experts} / {ep}); got {override!r}")
        return minimum(override, rows)


@attrs.frozen
class LayerKind:
    """What distinguishes one layer from another: a mixture-of-experts FFN or a dense one, and the
    attention window (None: full attention)."""

    moe: bool
    window: int | None


ACTIVATIONS = {"swiglu": "silu", "geglu": "gelu", "gelu": "gelu"}


@attrs.frozen
class DecoderConfig:
    """A decoder-only transformer. The first fields are the Llama ones (and keep their meaning everywhere):
    d_ffn is the dense MLP width; head_dim defaults to d_model // n_heads."""

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
    positions: str = attrs.field(default="rope", validator=_one_of("rope", "learned"))
    max_positions: int | None = attrs.field(default=None, validator=_optional_positive)
    # Storage type of the weight matrices when the checkpoint is quantized (DeepSeek-V3's fp8); None: dtype.
    weight_dtype: DType | None = None
    # What the loader wants every report to say (what it counted, what it left out).
    notes: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    def __attrs_post_init__(self) -> None:
        if self.n_heads % self.n_kv_heads:
            raise OpgraphError(f"{self.name}: n_kv_heads ({self.n_kv_heads}) must divide n_heads ({self.n_heads}) "
                               f"evenly: each KV head serves a whole group of query heads")
        if self.head_dim is None:
            if self.d_model % self.n_heads:
                raise OpgraphError(f"{self.name}: d_model ({self.d_model}) must be divisible by n_heads "
                                   f"({self.n_heads}) when head_dim is not given")
            object.__setattr__(self, "head_dim", self.d_model // self.n_heads)
        else:
            _positive(self, attrs.fields(DecoderConfig).head_dim, self.head_dim)
        if self.positions == "learned" and self.max_positions is None:
            raise OpgraphError(f"{self.name}: learned positions need max_positions (the table's size)")
        if self.moe is not None and self.moe.first_dense > self.n_layers:
            raise OpgraphError(f"{self.name}: first_dense ({self.moe.first_dense}) exceeds n_layers ({self.n_layers})")

    # -- structure ----------------------------------------------------------------------------------
    def kind_of(self, i: int) -> LayerKind:
        """Layer i's kind (0-based)."""
        moe = self.moe is not None and i >= self.moe.first_dense and i % self.moe.layer_freq == 0
        windowed = self.sliding_window is not None and (self.window_layers is None or i in self.window_layers)
        return LayerKind(moe, self.sliding_window if windowed else None)

    def _moe_layers(self, stop: int) -> int:
        """How many of layers 0..stop-1 are MoE layers: multiples of layer_freq from first_dense on."""
        if self.moe is None:
            return 0
        f, start = self.moe.layer_freq, self.moe.first_dense
        return max(0, (stop - 1) // f - (start - 1) // f) if stop > start else 0

    def _first(self, moe: bool, skip: frozenset[int]) -> int | None:
        """The first layer whose MoE-ness is `moe`, among those not in `skip`; None if there is none."""
        i = self.moe.first_dense + -self.moe.first_dense % self.moe.layer_freq if moe else 0
        while i < self.n_layers:  # steps over `skip` only: a finite set from the config
            if i not in skip and self.kind_of(i).moe == moe:
                return i
            i += self.moe.layer_freq if moe else 1
        return None

    def layer_kinds(self) -> dict[LayerKind, int]:
        """Each distinct layer kind with its count, in order of first appearance. Counted, not enumerated, so a
        config's number of layers costs nothing: only the layers a config lists one by one (window layers) are
        visited, and the rest, which share one window setting, are counted by arithmetic."""
        listed = frozenset(self._listed(0, self.n_layers))

        def first(kind: LayerKind) -> int:  # the kind's first layer
            mine = [i for i in listed if self.kind_of(i) == kind]
            return min(mine) if mine else self._first(kind.moe, listed)

        return dict(sorted(self._counted(0, self.n_layers).items(), key=lambda kv: first(kv[0])))

    def kinds_between(self, start: int, stop: int) -> dict[LayerKind, int]:
        """Each layer kind's count among layers start..stop-1 (a pipeline stage), in `layer_kinds`'s order."""
        order = list(self.layer_kinds())
        return dict(sorted(self._counted(start, stop).items(), key=lambda kv: order.index(kv[0])))

    def _listed(self, start: int, stop: int) -> list[int]:
        """The layers among start..stop-1 that a config lists one by one (its window layers)."""
        if self.sliding_window is None or self.window_layers is None:
            return []
        return sorted(i for i in self.window_layers if start <= i < stop)

    def _counted(self, start: int, stop: int) -> dict[LayerKind, int]:
        """Each kind's count among layers start..stop-1: the listed layers visited, the rest (which share one
        window setting) counted by arithmetic."""
        window, listed = self.sliding_window, self._listed(start, stop)
        others_window = window if window is not None and self.window_layers is None else None
        found: dict[LayerKind, int] = {}
        for i in listed:
            found[self.kind_of(i)] = found.get(self.kind_of(i), 0) + 1
        moe = self._moe_layers(stop) - self._moe_layers(start) - sum(1 for i in listed if self.kind_of(i).moe)
        for is_moe, count in ((True, moe), (False, stop - start - len(listed) - moe)):
            if count > 0:
                kind = LayerKind(is_moe, others_window)
                found[kind] = found.get(kind, 0) + count
        return found

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

    def block_name(self, kind: LayerKind) -> str:
        """"layer" when all layers are alike, else what sets this kind apart: dense_layer / moe_layer,
        full_layer / sliding_layer."""
        kinds = self.layer_kinds()
        if len(kinds) == 1:
            return "layer"
        parts = []
        if len({k.moe for k in kinds}) > 1:
            parts.append("moe" if kind.moe else "dense")
        if len({k.window for k in kinds}) > 1:
            parts.append("sliding" if kind.window else "full")
        return "_".join(parts) + "_layer"

    # -- building -----------------------------------------------------------------------------------
    def precision(self, options: BuildOptions) -> Precision:
        if options.precision is not None:
            return options.precision
        return Precision(self.weight_dtype or self.dtype, self.dtype, self.dtype)

    def layer(self, phase: Phase, options: BuildOptions = BuildOptions(), kind: LayerKind | None = None) -> Graph:
        """One layer's graph; by default of the most numerous kind (the only one in a homogeneous model)."""
        kinds = self.layer_kinds()
        kind = max(kinds, key=kinds.__getitem__) if kind is None else kind
        b = GraphBuilder(self.precision(options), self.block_name(kind))
        ln = dict(fn=self.norm, bias=self.norm_bias)
        tp, sp = options.tp, self.token_dim(phase, options)
        x = b.input("x", self.hidden_shape(phase, options))
        with b.scope(part="attention"):  # a pre-norm half: its norm and residual add belong to it
            a = pieces.norm(b, "input_layernorm", x, "input_layernorm.weight", out="x_norm", **ln)
            a = pieces.gather(b, "attn_allgather", a, tp, "x_norm_full", sp)
            a = self._attention(b, a, phase, kind, options)
            h = pieces.residual(b, "attn_residual", x, a, out="h")
        with b.scope(part="moe" if kind.moe else "mlp"):
            m = pieces.norm(b, "post_attention_layernorm", h, "post_attention_layernorm.weight", out="h_norm", **ln)
            m = pieces.gather(b, "mlp_allgather", m, tp, "h_norm_full", sp)
            m = self._feed_forward(b, m, phase, kind, options)
            out = pieces.residual(b, "mlp_residual", h, m, out="out")
        return b.build(outputs=[out])

    @staticmethod
    def token_dim(phase: Phase, options: BuildOptions) -> int | None:
        """With sequence parallelism, the dim of [batch, positions, d] the hidden states are split along: a
        prompt's positions, or a decode step's sequences; None without it."""
        if not options.sp:
            return None
        if options.tp < 2:
            raise OpgraphError("--sp splits the tokens over a tensor-parallel group; add --tp N (N >= 2)")
        return 1 if phase.name == "prefill" else 0

    def hidden_shape(self, phase: Phase, options: BuildOptions) -> tuple:
        """The hidden states between layers on one GPU: all the step's tokens, or its slice under --sp."""
        sp = self.token_dim(phase, options)
        tokens = (phase.batch, phase.new_tokens) if sp is None else pieces.token_slice(phase, options.tp, sp)
        return (*tokens, self.d_model)

    def _attention(self, b: GraphBuilder, x, phase: Phase, kind: LayerKind, options: BuildOptions):
        if self.mla is not None:
            m = self.mla
            return pieces.mla_attention(b, x, phase, heads=self.n_heads, kv_lora_rank=m.kv_lora_rank,
                                        qk_nope_head_dim=m.qk_nope_head_dim, qk_rope_head_dim=m.qk_rope_head_dim,
                                        v_head_dim=m.v_head_dim, q_lora_rank=m.q_lora_rank,
                                        absorbed=self.mla_absorbed(phase), causal=options.causal_skip, tp=options.tp,
                                        sp=self.token_dim(phase, options))
        return pieces.gqa_attention(b, x, phase, heads=self.n_heads, kv_heads=self.n_kv_heads, head_dim=self.head_dim,
                                    causal=options.causal_skip, qkv_bias=self.qkv_bias, o_bias=self.o_bias,
                                    window=kind.window, rotary_dim=self.rotary_dim, rotary=self.positions == "rope",
                                    tp=options.tp, sp=self.token_dim(phase, options))

    def _feed_forward(self, b: GraphBuilder, x, phase: Phase, kind: LayerKind, options: BuildOptions):
        act = ACTIVATIONS[self.mlp]
        if kind.moe:
            e, ep = self.moe, options.ep
            rows = e.rows(phase.tokens, ep, options.expert_imbalance, shared=options.tp > 1) if ep > 1 else 0
            touched = (e.touched_local(rows, ep, options.experts_touched) if ep > 1 else
                       e.touched(phase.tokens, options.experts_touched))
            return pieces.moe(b, x, experts=e.experts, top_k=e.top_k, d_expert=e.d_expert, shared=e.shared,
                              touched=touched, act=act, router_bias=e.router_bias, tp=options.tp, ep=ep, rows=rows,
                              sp=self.token_dim(phase, options))
        sp = self.token_dim(phase, options)
        if self.mlp == "gelu":
            return pieces.plain_mlp(b, x, d_ffn=self.d_ffn, act=act, bias=self.mlp_bias, tp=options.tp, sp=sp)
        return pieces.gated_mlp(b, x, d_ffn=self.d_ffn, act=act, bias=self.mlp_bias, tp=options.tp, sp=sp)

    def embed_head(self, phase: Phase, options: BuildOptions = BuildOptions(),
                   parts: tuple[str, ...] = ("embed", "head")) -> Graph:
        """The embedding and the final norm with lm_head: one block, or (a pipeline's first and last stages) one
        of the two."""
        b = GraphBuilder(self.precision(options), "_".join(parts))
        dims = dict(vocab=self.vocab_size, d_model=self.d_model)
        positions = self.max_positions if self.positions == "learned" else None
        outs = []
        sp = self.token_dim(phase, options)
        if "embed" in parts:
            outs.append(pieces.embedding(b, phase, positions=positions, tp=options.tp, sp=sp, **dims))
        if "head" in parts:
            outs.append(pieces.lm_head(b, phase, tied=self.tie_embeddings, norm_fn=self.norm,
                                       norm_bias=self.norm_bias, tp=options.tp, sp=sp, **dims))
        return b.build(outputs=outs)

    def build(self, phase: Phase, options: BuildOptions = BuildOptions()) -> Model:
        """The model for one phase, built as `options` say (precision per role, causal skipping, experts read,
        tensor parallelism: with tp > 1, one GPU's share)."""
        tp = checks.integer("--tp", options.tp, maximum=1024)
        ep = checks.integer("--ep", options.ep, maximum=1024)
        if ep > 1:
            if self.moe is None:
                raise OpgraphError(f"--ep {ep}: {self.name} has no experts to spread; expert parallelism applies to "
                                   f"mixture-of-experts models")
            if 1 < tp < ep:
                raise OpgraphError(f"--ep {ep} with --tp {tp} and --dp {ep // tp}: expert parallelism is built "
                                   f"over data-parallel attention (--dp {ep} --ep {ep}, as DeepSeek serves V3) or "
                                   f"over a tensor-parallel group (--tp {ep} --ep {ep}, as vLLM runs it), not both")
            if self.moe.experts % ep:
                more = "exceeds" if ep > self.moe.experts else "does not divide"
                raise OpgraphError(f"--ep {ep} {more} the {self.moe.experts} routed experts; expert parallelism "
                                   f"gives every GPU the same number of whole experts")
        pp = checks.integer("--pp", options.pp, maximum=1024)
        if pp > 1:
            return self._pipeline(phase, options, pp)
        blocks = [Block(self.block_name(k), n, self.layer(phase, options, k)) for k, n in self.layer_kinds().items()]
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
        flat = attrs.evolve(options, pp=1, micro_batches=None, pp_layers=None)
        split = self.stage_layers(pp, options.pp_layers)
        m = checks.integer("--micro-batches", options.micro_batches or pp, maximum=10**6)
        micro_batches = minimum(m, phase.batch)
        small = Phase.of(phase.name, -(-phase.batch // micro_batches), phase.length)
        gpus = max(options.tp, options.ep) * pp

        def blocks(at: Phase) -> list[Block]:
            out = [Block(self.block_name(k), n, self.layer(at, flat, k)) for k, n in self.layer_kinds().items()]
            out += [Block("embed", 1, self.embed_head(at, flat, parts=("embed",))),
                    Block("head", 1, self.embed_head(at, flat, parts=("head",))), Block("send", pp - 1, self._send(at, flat, gpus))]
            return out

        stages, first = [], 0
        for s, n in enumerate(split):
            counts = [(self.block_name(k), c) for k, c in self.kinds_between(first, first + n).items()]
            counts = ([("embed", 1)] if s == 0 else []) + counts + ([("head", 1)] if s == pp - 1 else [("send", 1)])
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

    def _send(self, phase: Phase, options: BuildOptions, span: int) -> Graph:
        """A pipeline stage's hand-over: its last layer's output sent to the next stage's GPUs."""
        b = GraphBuilder(self.precision(options), "send")
        x = b.input("hidden", self.hidden_shape(phase, options))
        return b.build(outputs=[b.send_recv("send", x, span=span, out="hidden_sent")])

    # -- what a reader must know --------------------------------------------------------------------
    @staticmethod
    def mla_absorbed(phase: Phase) -> bool:
        """Which MLA form a phase uses: decompressed for prefill, weight-absorbed for decode."""
        return phase.past > 0

    def phase_notes(self, phase: Phase, options: BuildOptions = BuildOptions()) -> tuple[str, ...]:
        notes = list(self.notes)
        if self.mla is not None:
            m, h = self.mla, self.n_heads
            if self.mla_absorbed(phase):
                notes.append(f"{phase.name}: MLA weight-absorbed: kv_b_proj's K rows fold into the query (q_absorb) "
                             f"and its V rows into the output (v_absorb); attention reads the cached "
                             f"{m.kv_lora_rank}+{m.qk_rope_head_dim} latent+rope entries, never decompressed "
                             f"(QK^T over {m.cache_width} dims per head, PV over {m.kv_lora_rank})")
            else:
                notes.append(f"{phase.name}: MLA decompressed: kv_b_proj expands the new tokens' {m.kv_lora_rank}-dim "
                             f"latents to {h} heads of K ({m.qk_nope_head_dim}+{m.qk_rope_head_dim} with the shared "
                             f"rope key) and V ({m.v_head_dim}); the cache stores {m.cache_width} values per token")
        if self.moe is not None:
            e, t = self.moe, phase.tokens
            touched = e.touched(t, options.experts_touched)
            how = (f"--experts-touched {options.experts_touched}; a step of {t} token(s) touches at most "
                   f"{e.top_k * t}" if options.experts_touched is not None else
                   f"expected distinct experts for {t} token(s) routed uniformly: "
                   f"{e.experts}*(1-(1-{e.top_k}/{e.experts})^{t}) = "
                   f"{pieces.expected_experts_real(e.experts, e.top_k, t):.2f}, rounded up")
            shared = f" + {e.shared} shared" if e.shared else ""
            notes.append(f"{phase.name}: MoE layers compute {e.top_k} of {e.experts} routed experts{shared} per token "
                         f"and read the weights of {touched} routed experts ({how})")
        windows = {k.window for k in self.layer_kinds() if k.window}
        for w in sorted(windows):
            what = (f"each new token attends to min(context+1, {w}) = {minimum(phase.keys, w)} keys" if phase.past else
                    f"a query at position p attends to min(p+1, {w}) keys (the full score matrix is counted "
                    f"unless causal skipping is on)")
            notes.append(f"{phase.name}: sliding window {w}: {what}; the KV cache holds at most {w} tokens")
        if self.positions == "learned" and phase.keys > self.max_positions:
            notes.append(f"{phase.name}: {phase.keys} positions exceed the model's {self.max_positions} learned "
                         f"positions; the figures extrapolate a model that cannot run this long")
        if self.weight_dtype is not None and options.precision is None:
            notes.append(f"weights stored as {self.weight_dtype.name} (config.json quantization_config); "
                         f"activations and KV cache {self.dtype.name}")
        if options.tp > 1:
            notes.append(f"tensor parallel over {options.tp} GPUs (Megatron): every figure is one GPU's; q, k, v, gate "
                         f"and up split by columns, o_proj and down_proj by rows, each followed by an all-reduce of "
                         f"the hidden states; embedding and lm_head split by vocabulary"
                         + (f" (padded from {self.vocab_size:,} to {-(-self.vocab_size // options.tp) * options.tp:,})"
                            if self.vocab_size % options.tp else ""))
            if self.mla is not None:
                notes.append(f"MLA over {options.tp} GPUs: the heads split, but every GPU computes and caches the whole "
                             f"{self.mla.cache_width}-wide latent (the KV cache is not split)")
            if self.moe is not None:
                notes.append(f"MoE over {options.tp} GPUs without expert parallelism: every GPU holds every expert's "
                             f"1/{options.tp} slice and runs the router whole")
            if self.mla is None and self.n_kv_heads < options.tp:
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
                      f"(an upper bound)" if phase.batch % m else "")
            notes.append(f"pipeline parallel over {options.pp} stages of {', '.join(map(str, split))} layers (the "
                         f"first also embeds, the last runs the head), each handing its hidden states to the next "
                         f"(send); the batch of {phase.batch} runs as {m} micro-batch(es) of {size}{uneven}; every "
                         f"figure is one GPU's of the busiest stage over all micro-batches, and the step takes "
                         + ("max(M x the slowest stage, the sum of the stages), M micro-batches in flight"
                            if phase.past else "the sum of the stages + (M-1) x the slowest (fill and drain)"))
        if options.ep > 1:
            e, ep, t, in_tp = self.moe, options.ep, phase.tokens, options.tp > 1
            rows = e.rows(t, ep, options.expert_imbalance, shared=in_tp)
            mean = f"{t * e.top_k / ep:,.1f}" if in_tp else f"{t * e.top_k:,}"
            how = (f"--expert-imbalance {options.expert_imbalance:g} x the mean" if options.expert_imbalance else
                   f"the busiest of {ep} GPUs under uniform routing: the mean plus "
                   f"{pieces.expected_max_normal(ep):.2f} standard deviations, rounded up")
            each = (f"expert parallel over the tensor-parallel group of {ep}: every GPU has every token after "
                    f"attention; each" if in_tp else
                    f"expert parallel over {ep} GPUs with data-parallel attention: every figure is one GPU's, "
                    f"serving its own batch of {phase.batch}; each")
            moves = ("gathers the rows routed to its experts and adds their weighted outputs into the all-reduce "
                     "that tensor parallelism already runs" if in_tp else
                     "sends its tokens to their experts and back (ep_dispatch, ep_combine: all-to-alls of tokens x "
                     "top_k x d_model)")
            notes.append(f"{each} holds {e.experts // ep} of the {e.experts} routed experts whole and runs {rows:,} "
                         f"token-expert rows through them ({how}; the mean is {mean}); the group's totals count the "
                         f"mean load; each MoE layer {moves}")
        p = self.precision(options)
        if p.tables is None and p.table != p.weight:
            notes.append(f"embedding table and lm_head stored as {p.table.name}, not {p.weight}: quantized "
                         f"checkpoints (GPTQ, AWQ, fp8) keep them unquantized; --table-dtype sets them")
        return tuple(notes)

    def summary(self) -> dict:
        """Shape fields for `opgraph models`."""
        s = {"layers": self.n_layers, "d_model": self.d_model, "heads": self.n_heads}
        if self.mla is None:
            s.update(kv_heads=self.n_kv_heads, head_dim=self.head_dim)
        else:
            m = self.mla
            s.update(attention="mla", head_dim=m.qk_nope_head_dim + m.qk_rope_head_dim, v_head_dim=m.v_head_dim,
                     kv_lora_rank=m.kv_lora_rank, q_lora_rank=m.q_lora_rank, kv_cache_per_token=m.cache_width)
        s.update(d_ffn=self.d_ffn, vocab=self.vocab_size, tied_embeddings=self.tie_embeddings, dtype=self.dtype.name)
        if self.weight_dtype is not None:
            s["weight_dtype"] = self.weight_dtype.name
        if self.sliding_window is not None:
            s["window"] = self.sliding_window
        if self.moe is not None:
            e = self.moe
            s.update(experts=e.experts, top_k=e.top_k, shared_experts=e.shared, d_expert=e.d_expert,
                     dense_layers=sum(n for k, n in self.layer_kinds().items() if not k.moe))
        if self.positions == "learned":
            s["positions"] = self.max_positions
        return s


def _parallel_words(tp: int, ep: int) -> str:
    experts = f", experts over all {ep}" if ep > 1 else ""
    return (f"tensor parallel over {tp} GPUs{experts}" if tp > 1 else
            f"data parallel over {ep} GPUs{experts}" if ep > 1 else "")
