"""The recurrent state (Role.STATE) of state-space and linear-attention layers in the core: its precision, how the
builder declares it, that a written state always reaches memory and is the cache, and the FLOPs of the ops that
read and write it, each derived by hand from the paper or reference kernel it follows."""

import pytest

from opgraph import choices, hardware, strategy
from opgraph.analysis.memory import kv_cache_bytes, peak_activations
from opgraph.core import ops
from opgraph.pricing.cost import block_cost
from opgraph.core.fusion import apply
from opgraph.core.graph import DECLARED_ROLES, GraphBuilder
from opgraph.core.tensor import BF16, FP16, FP32, FP8, Precision, Role, Tensor
from opgraph.errors import OpgraphError

H100 = hardware.load("h100-sxm")


def t(name, shape, role=Role.ACTIVATION, dt=BF16):
    return Tensor(name, shape, dt, role)


# -- precision ---------------------------------------------------------------------------------------------

def test_state_dtype_defaults_to_the_activation_dtype_and_can_be_set():
    assert Precision.uniform(BF16).of(Role.STATE) == BF16  # vLLM's mamba_ssm_cache_dtype="auto": the model's
    assert Precision(FP8, FP16, FP8).of(Role.STATE) == FP16  # the activations', not the weights' or the KV cache's
    assert Precision(BF16, BF16, BF16, state=FP32).of(Role.STATE) == FP32  # transformers' fp32
    assert Precision(BF16, BF16, BF16, state=FP32).of(Role.KV_CACHE) == BF16


def test_state_dtype_option():
    assert choices.precision(None, state="fp32") == Precision(BF16, BF16, BF16, state=FP32)
    assert choices.precision(None, dtype_="fp16").state is None  # follows the activations
    with pytest.raises(OpgraphError, match="--state-dtype"):
        choices.precision(None, state="fp6")


# -- the builder and the graph ----------------------------------------------------------------------------

def _stateful_graph(precision=BF16):
    """x -> conv1d (reading and writing a [2, 3, 8] conv state) -> y."""
    b = GraphBuilder(precision)
    x = b.input("x", (2, 1, 8))
    w = b.weight("conv.weight", (8, 1, 4))
    with b.scope("layer."):
        s = b.state("conv_state", (2, 3, 8))
        y, new = b.causal_conv1d("conv", x, w, state=s, out="y", state_out="conv_state_new")
    return b.build(outputs=[y]), s, new


def test_builder_declares_a_state_and_the_op_writes_one():
    g, s, new = _stateful_graph(Precision(BF16, BF16, BF16, state=FP32))
    assert Role.STATE in DECLARED_ROLES
    assert (s.name, s.role, s.dtype) == ("layer.conv_state", Role.STATE, FP32)
    assert (new.name, new.role, new.dtype) == ("layer.conv_state_new", Role.STATE, FP32)
    assert "layer.conv_state" not in g.producer and g.producer["layer.conv_state_new"] == "layer.conv"


@pytest.mark.parametrize("plan", ["unfused", "fused", "megakernel"])
def test_a_written_state_always_reaches_memory(plan):
    g, _, new = _stateful_graph()
    assert g.persistent(new.name)
    assert new.name in apply(strategy(plan), g).materialized


def test_the_cache_counts_the_written_state_once():
    g, s, new = _stateful_graph()
    assert kv_cache_bytes(g) == new.nbytes == 2 * 3 * 8 * 2  # the read one is the same memory, updated in place
    # KV-cache tensors still count as before, read and written
    b = GraphBuilder()
    k = b.cache("k_cache", (2, 5, 8))
    b.add(ops.elementwise("copy", "add", k, k, out="k_new", role=Role.KV_CACHE))
    assert kv_cache_bytes(b.build()) == 2 * (2 * 5 * 8 * 2)


def test_states_are_not_activations():
    g, _, _ = _stateful_graph()
    peak = peak_activations(g, apply(strategy("unfused"), g))
    assert not {"layer.conv_state", "layer.conv_state_new"} & set(peak.alive)
    assert peak.bytes == 2 * (2 * 1 * 8 * 2)  # x and y


def test_state_traffic_is_cache_traffic():
    g, s, new = _stateful_graph()
    cost = block_cost("b", 1, g, apply(strategy("unfused"), g), H100)
    assert cost.totals.traffic.kv_cache_bytes == s.nbytes + new.nbytes  # read the old, write the new
    assert cost.totals.traffic.weight_bytes == 8 * 4 * 2


# -- causal conv1d -----------------------------------------------------------------------------------------

def test_conv1d_flops_and_shapes():
    x, w, bias = t("x", (2, 10, 6)), t("w", (6, 4), Role.WEIGHT), t("b", (6,), Role.WEIGHT)
    op = ops.causal_conv1d("conv", x, w, bias=bias)
    assert op.flops == 2 * 10 * 6 * (2 * 4 + 1)  # a multiply-add per tap and a bias add, per output element
    assert op.kind == ops.ELEMENTWISE and op.transcendentals == 0
    y, new = op.outputs
    assert y.shape == (2, 10, 6) and (new.shape, new.role) == ((2, 3, 6), Role.STATE)
    state = t("s", (2, 3, 6), Role.STATE)
    op = ops.causal_conv1d("conv", t("x", (2, 1, 6)), t("w", (6, 1, 4), Role.WEIGHT), state=state)
    assert op.flops == 2 * 6 * 2 * 4 and state in op.inputs
    with pytest.raises(OpgraphError, match="state"):
        ops.causal_conv1d("conv", t("x", (2, 1, 6)), w, state=t("s", (2, 4, 6), Role.STATE))


# -- Mamba-2 SSD -------------------------------------------------------------------------------------------

def _ssd_inputs(bsz, s, h, p, n, g):
    return (t("xbc", (bsz, s, h * p + 2 * g * n)), t("dt", (bsz, s, h)), t("A_log", (h,), Role.WEIGHT),
            t("D", (h,), Role.WEIGHT), t("dt_bias", (h,), Role.WEIGHT))


def test_ssd_chunked_flops_by_hand():
    """mamba_chunk_scan_combined's kernels (Dao & Gu 2024, section 6), summed chunk by chunk: 10 positions in
    chunks of 4 -> 4, 4, 2."""
    bsz, s, h, p, n, g, q_max = 2, 10, 4, 3, 5, 2, 4
    op = ops.ssd_scan("ssd", *_ssd_inputs(bsz, s, h, p, n, g), heads=h, head_dim=p, d_state=n, groups=g,
                      chunk_size=q_max, recurrent=False)
    flops = exps = 0
    for q in (4, 4, 2):
        pairs = q * (q + 1) // 2  # causal pairs inside the chunk
        per_head = (6 * q  # _chunk_cumsum: dt + bias, softplus (exp, add, log), dt * A, cumsum
                    + 3 * q + n * q + 2 * q * n * p  # _chunk_state: decay * dt, B scaled, B^T x
                    + 2 * n * p + 1  # _state_passing: exp, then state * decay + chunk state
                    + q + 2 * q * n * p + q * p  # _chunk_scan off-diagonal: exp, C @ state, scaled
                    + 4 * pairs + 2 * pairs * p  # diagonal: CB * exp(segsum) * dt (sub, exp, 2 mul), @ x
                    + 2 * q * p)  # D skip
        flops += bsz * (h * per_head + g * 2 * q * q * n)  # _bmm_chunk: C B^T per group, the full block
        exps += bsz * h * (2 * q + q + 1 + q + pairs)
    flops += 2 * h  # A = -exp(A_log), once per step
    exps += h
    assert (op.flops, op.transcendentals) == (flops, exps)
    assert op.kind == ops.MATMUL and op.fn == "ssd_chunked"
    y, new = op.outputs
    assert y.shape == (bsz, s, h * p) and (new.shape, new.role) == ((bsz, h, p, n), Role.STATE)


def test_ssd_recurrent_flops_by_hand():
    """selective_state_update, one token: state = state * exp(dt A) + dt B x^T; y = state C + D x, per head."""
    bsz, h, p, n, g = 3, 4, 3, 5, 2
    state = t("ssm_state", (bsz, h, p, n), Role.STATE)
    op = ops.ssd_scan("ssd", *_ssd_inputs(bsz, 1, h, p, n, g), heads=h, head_dim=p, d_state=n, groups=g,
                      recurrent=True, state=state)
    per_head = (1 + 3  # dt + dt_bias, softplus
                + 2  # exp(A * dt)
                + n  # dB = dt * B
                + 3 * p * n  # state * dA + dB * x
                + 2 * p * n  # y = sum over N of state * C
                + 2 * p)  # + D * x
    assert op.flops == bsz * h * per_head + 2 * h
    assert op.transcendentals == bsz * h * 3 + h
    assert op.kind == ops.ELEMENTWISE and state in op.inputs
    with pytest.raises(OpgraphError, match="one position"):
        ops.ssd_scan("ssd", *_ssd_inputs(bsz, 2, h, p, n, g), heads=h, head_dim=p, d_state=n, groups=g,
                     recurrent=True)


# -- Gated DeltaNet ----------------------------------------------------------------------------------------

def _delta_inputs(bsz, s, hk, hv, k, v):
    return (t("qkv", (bsz, s, 2 * hk * k + hv * v)), t("ba", (bsz, s, 2 * hv)), t("A_log", (hv,), Role.WEIGHT),
            t("dt_bias", (hv,), Role.WEIGHT))


GATING = 11  # a + dt_bias, softplus (exp, add, log), exp(A_log), negate, multiply; sigmoid (neg, exp, add, div)


def tril_inverse(q):
    """(I + A)^-1 for a strictly lower-triangular q x q A by forward substitution: entry (i, j), i > j, sums i - j
    products (a multiply-add each)."""
    return sum(2 * (i - j) for i in range(q) for j in range(i))


def test_gated_delta_chunked_flops_by_hand():
    """fla's chunk_gated_delta_rule (Yang et al. 2024), kernel by kernel, 70 positions in chunks of 64 -> 64, 6."""
    bsz, s, hk, hv, k, v = 2, 70, 2, 4, 8, 6
    op = ops.gated_delta_rule("gdn", *_delta_inputs(bsz, s, hk, hv, k, v), k_heads=hk, v_heads=hv, head_k_dim=k,
                              head_v_dim=v, recurrent=False)
    per_head = exps_head = 0
    for q in (64, 6):
        per_head += (q  # chunk_local_cumsum of g
                     + q * k + 2 * q * q * k + 3 * q * q  # chunk_scaled_dot_kkt: beta K, K K^T, * exp(g_i - g_j)
                     + tril_inverse(q)  # solve_tril
                     + q + q * v + 2 * q * q * v + 2 * q * k + 2 * q * q * k  # recompute_w_u: exp(g), beta v,
                     # A (beta v), beta exp(g) k, A (beta exp(g) k)
                     + 2 * q * k * v + q * v + 2 * q + q * v + 1 + k * v + 2 * q * k * v  # fwd_h: w S, u - w S,
                     # exp(g_last - g) (sub, exp), v' scaled, exp(g_last), S decayed, S += K^T v'
                     + 2 * q * k * v + 2 * q * q * k + q + q * v + 3 * q * q + 2 * q * q * v + 3 * q * v)  # fwd_o:
                     # q S, q K^T, exp(g), (q S) exp(g), * exp(g_i - g_j), A v', two scalings and the sum
        exps_head += q * q + q + (q + 1) + (q + q * q)
    assert tril_inverse(64) == (64 ** 3 - 64) // 3
    per_head += s * GATING
    l2 = 2 * (3 * k + 2)  # q and k: square, sum, eps, sqrt, divide; once per key head (l2norm_fwd)
    assert op.flops == bsz * (hv * per_head + hk * s * l2)
    assert op.transcendentals == bsz * hv * (exps_head + s * 4)
    assert op.kind == ops.MATMUL and op.fn == "gated_delta_chunked"
    o, new = op.outputs
    assert o.shape == (bsz, s, hv * v) and (new.shape, new.role) == ((bsz, hv, k, v), Role.STATE)


def test_gated_delta_recurrent_flops_by_hand():
    """fused_recurrent_gated_delta_rule, one token: S = exp(g) S; v' = beta (v - S^T k); S += k v'^T; o = S^T q."""
    bsz, hk, hv, k, v = 3, 2, 4, 8, 6
    state = t("S", (bsz, hv, k, v), Role.STATE)
    op = ops.gated_delta_rule("gdn", *_delta_inputs(bsz, 1, hk, hv, k, v), k_heads=hk, v_heads=hv, head_k_dim=k,
                              head_v_dim=v, recurrent=True, state=state)
    per_head = (2 * (3 * k + 2)  # L2 norms of q and k, in the kernel, per value head
                + k  # q * scale
                + 1 + k * v  # exp(g), S *= it
                + 2 * k * v + v  # v - S^T k
                + v  # * beta
                + 2 * k * v  # S += k v'^T
                + 2 * k * v  # o = S^T q
                + GATING)
    assert op.flops == bsz * hv * per_head
    assert op.transcendentals == bsz * hv * (1 + 4)
    assert op.kind == ops.ELEMENTWISE and state in op.inputs


def test_gated_rmsnorm_flops():
    x, z = t("y", (2, 3, 12)), t("z", (2, 3, 12))
    op = ops.gated_rmsnorm("norm", x, z, t("w", (12,), Role.WEIGHT), groups=3)
    assert op.flops == (4 + 1 + 4) * 72 + 3 * 6 * 3  # silu, gate multiply, rmsnorm per element; per group-row
    assert op.transcendentals == 72 and op.kind == ops.NORM
    shared = ops.gated_rmsnorm("norm", x, z, t("w", (4,), Role.WEIGHT), groups=3, norm_before_gate=True)
    assert shared.flops == op.flops
    with pytest.raises(OpgraphError):
        ops.gated_rmsnorm("norm", x, z, t("w", (5,), Role.WEIGHT), groups=3)


def test_a_state_dtype_for_a_model_without_a_state_is_refused(capsys):
    from opgraph.cli import main
    assert main(["report", "llama-3-8b", "--state-dtype", "fp32"]) == 2
    assert "llama-3-8b has none" in capsys.readouterr().err
    assert main(["report", "nemotron-h-8b", "--state-dtype", "fp32", "--phase", "decode"]) == 0
    # the target's option: an MTP draft head of attention alone takes none, and the run goes on
    assert main(["serve", "qwen3-next-80b-a3b", "--tp", "4", "--draft", "mtp", "--acceptance", "0.8", "--state-dtype",
                 "fp32", "--concurrency", "8", "--prompt", "500", "--output", "100"]) == 0
