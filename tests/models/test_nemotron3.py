"""Nemotron-3 (NVIDIA's nemotron_h checkpoints with MoE layers, hybrid_override_pattern letter E): the Nano 30B-A3B
preset and the family's MoE mixer. Expected values come from the config's fields by hand (modeling_nemotron_h.py's
NemotronHMamba2Mixer, NemotronHAttention, NemotronHMoE and NemotronHTopkRouter shapes) and from NVIDIA's published
31.6B total."""

import copy
import json

import pytest

from opgraph import OpgraphError, Phase, analyze, hardware, models, strategy
from opgraph.cli import main
from opgraph.models import BuildOptions, hf_config, presets

NANO = json.loads((presets.CONFIG_DIR / "nemotron-3-nano-30b-a3b.json").read_text())
D, VOCAB = 2688, 131072
MAMBA_HEADS, MAMBA_HEAD_DIM, GROUPS, STATE, CONV = 64, 64, 8, 128, 4
HEADS, KV, HEAD_DIM = 32, 2, 128
EXPERTS, TOP_K, EXPERT, SHARED = 128, 6, 1856, 3712
N_MAMBA, N_MOE, N_ATTENTION = 23, 23, 6


def mamba_params() -> int:
    inner = MAMBA_HEADS * MAMBA_HEAD_DIM  # 4,096: heads x head_dim, not expand x hidden_size (5,376)
    conv_dim = inner + 2 * GROUPS * STATE
    in_proj = D * (2 * inner + 2 * GROUPS * STATE + MAMBA_HEADS)  # z, xBC, dt
    conv = conv_dim * CONV + conv_dim  # weight and bias (use_conv_bias)
    heads = 3 * MAMBA_HEADS  # dt_bias, A_log, D
    return in_proj + conv + heads + inner + inner * D + D  # + the gated norm, out_proj, the layer's norm


def attention_params() -> int:
    return D * HEADS * HEAD_DIM + 2 * D * KV * HEAD_DIM + HEADS * HEAD_DIM * D + D


ROUTER = EXPERTS * D + EXPERTS  # its weight and e_score_correction_bias


def moe_params() -> int:
    return ROUTER + EXPERTS * 2 * D * EXPERT + 2 * D * SHARED + D  # plain experts: up and down; the shared MLP; norm


def test_nano_parameters_by_hand_and_as_published():
    total = N_MAMBA * mamba_params() + N_ATTENTION * attention_params() + N_MOE * moe_params() + 2 * VOCAB * D + D
    model = models.get("nemotron-3-nano-30b-a3b").build(Phase.decode(1, 1))
    assert model.params() == total == 31_577_940_288  # NVIDIA: "31.6B total"
    # bf16 everywhere but the router, which the checkpoint stores in fp32 (NemotronHTopkRouter)
    assert model.weight_bytes() == 2 * total + 2 * N_MOE * ROUTER


def block(model, name):
    return next(b for b in model.blocks if b.name == name)


def test_a_moe_layer_runs_plain_experts_and_a_plain_shared_one():
    """T tokens: each through 6 experts of up [1,856 x 2,688] and down [2,688 x 1,856] (2 FLOPs a multiply-add), the
    shared MLP's up and down at 3,712, the router's 128 logits; no gate projections anywhere."""
    t = 7
    moe = block(models.get("nemotron-3-nano-30b-a3b").build(Phase.prefill(1, t)), "moe_layer")
    flops = {op.name: op.flops for op in moe.graph.ops.values()}
    assert flops["experts.up_proj"] == flops["experts.down_proj"] == 2 * t * TOP_K * D * EXPERT
    assert flops["shared.up_proj"] == flops["shared.down_proj"] == 2 * t * D * SHARED
    assert flops["router"] == 2 * t * D * EXPERTS + t * EXPERTS  # the products, and the selection bias added
    assert not any("gate_proj" in name for name in flops)
    assert {moe.graph.ops[name].fn for name in ("experts.act", "shared.act")} == {"relu2"}


def test_the_engines_run_the_plain_experts_as_one_fused_moe_call():
    """vLLM's FusedMoE with is_act_and_mul False: w1, the squared ReLU, w2 and the weighted sum, one kernel."""
    model = models.get("nemotron-3-nano-30b-a3b").build(Phase.decode(8, 512))
    for plan in ("vllm", "sglang", "trtllm"):
        res = analyze(model, strategy(plan), hardware.load("h100-sxm"))
        [kernel] = [k for b in res.blocks if b.name == "moe_layer" for k in b.kernel_costs()
                    if "experts.up_proj" in k.ops]
        assert set(kernel.ops) == {"experts.up_proj", "experts.act", "experts.down_proj", "combine"}
        assert kernel.kind == "moe"


def test_the_recurrent_state_is_kept_as_the_config_says(capsys):
    """mamba_ssm_cache_dtype float32 (vLLM's NemotronH default): the SSM state (64 x 64 x 128) of each Mamba layer
    at 4 bytes, its conv state (3 x 6,144) at the model's 2 (vLLM's conv state follows mamba_cache_dtype, "auto",
    not mamba_ssm_cache_dtype: MambaStateDtypeCalculator._mamba_state_dtype), each written once a step; the 6
    attention layers' K and V at 2."""
    assert main(["memory", "nemotron-3-nano-30b-a3b", "--phase", "decode", "--batch", "2", "--context", "999",
                 "--format", "json"]) == 0
    cached = json.loads(capsys.readouterr().out)["phases"]["decode"]["kv_cache_bytes"]
    states = N_MAMBA * ((CONV - 1) * (MAMBA_HEADS * MAMBA_HEAD_DIM + 2 * GROUPS * STATE) * 2
                        + MAMBA_HEADS * MAMBA_HEAD_DIM * STATE * 4)
    assert cached == 2 * (states + N_ATTENTION * 2 * KV * HEAD_DIM * 1000 * 2)


def load(**changes):
    data = {**copy.deepcopy(NANO), **changes}
    return hf_config.from_dict({k: v for k, v in data.items() if v is not None}, name="nano", source="test")


def test_layers_block_type_spells_the_same_stack():
    kinds = {"M": "mamba", "*": "attention", "-": "mlp", "E": "moe"}
    listed = [kinds[c] for c in NANO["hybrid_override_pattern"]]
    as_list = load(hybrid_override_pattern=None, layers_block_type=listed).build(Phase.decode(1, 1))
    assert as_list.params() == models.get("nemotron-3-nano-30b-a3b").build(Phase.decode(1, 1)).params()


@pytest.mark.parametrize("changes, field", [
    ({"n_shared_experts": 2}, "n_shared_experts"),
    ({"num_nextn_predict_layers": 2, "mtp_hybrid_override_pattern": "*E"}, "num_nextn_predict_layers"),
    ({"num_nextn_predict_layers": 1}, "mtp_hybrid_override_pattern"),
    ({"num_nextn_predict_layers": 1, "mtp_hybrid_override_pattern": "*X"}, "mtp_hybrid_override_pattern"),
    ({"hybrid_override_pattern": "MX" * 26}, "hybrid_override_pattern"),
    ({"hybrid_override_pattern": None, "layers_block_type": ["mamba", "expert"] * 26}, "layers_block_type"),
    ({"mlp_hidden_act": "tanh"}, "mlp_hidden_act"),
])
def test_what_the_family_cannot_build_is_refused_by_name(changes, field):
    with pytest.raises(OpgraphError, match=field):
        load(**changes).build(Phase.decode(1, 1))


def test_a_modelopt_checkpoint_names_its_layers_under_backbone():
    """NVIDIA's Nemotron checkpoints name their layers backbone.layers.N (ModelOpt's exclude_modules say so too):
    an excluded Mamba in_proj stays bf16 while the experts are fp8."""
    quant = {"quant_method": "modelopt", "quant_algo": "FP8", "exclude_modules": [
        "lm_head", "backbone.layers.*.mixer.in_proj"]}
    model = load(quantization_config=quant).build(Phase.decode(1, 1))
    stored = {t.name.split("[")[0]: t.dtype.name for b in model.blocks for t in b.graph.weights()}
    assert stored["mixer.in_proj.weight"] == "bf16" and stored["mixer.out_proj.weight"] == "fp8"
    assert stored["mixer.experts.up_proj.weight"] == stored["shared.mixer.shared_experts.up_proj.weight"] == "fp8"
    assert stored["mixer.gate.weight"] == "fp32"  # a router stays as stored


# Nemotron-3 Super 120B-A12B (its preset is assembled from the fields its config.json is quoted with: SOURCES.json)
SUPER = json.loads((presets.CONFIG_DIR / "nemotron-3-super-120b-a12b.json").read_text())
S_D, S_HEADS, S_EXPERTS, S_TOP_K, S_EXPERT, S_LATENT, S_SHARED = 4096, 128, 512, 22, 2688, 1024, 5376


def test_super_parameters_by_hand():
    """LatentMoE: the router and the shared MLP read the full 4,096; fc1_latent_proj takes each token to 1,024,
    where all 512 experts (1,024 -> 2,688 -> 1,024) work, fc2_latent_proj back. 40 Mamba-2 layers of 128 x 64 heads,
    8 attention layers, 40 MoE layers; NVIDIA: '120B Total / 12B Active'."""
    inner = S_HEADS * MAMBA_HEAD_DIM
    conv_dim = inner + 2 * GROUPS * STATE
    mamba = (S_D * (2 * inner + 2 * GROUPS * STATE + S_HEADS) + conv_dim * CONV + conv_dim + 3 * S_HEADS + inner
             + inner * S_D + S_D)
    attention = S_D * HEADS * HEAD_DIM + 2 * S_D * KV * HEAD_DIM + HEADS * HEAD_DIM * S_D + S_D
    router = S_EXPERTS * S_D + S_EXPERTS
    moe = router + 2 * S_D * S_LATENT + S_EXPERTS * 2 * S_LATENT * S_EXPERT + 2 * S_D * S_SHARED + S_D
    total = 40 * mamba + 8 * attention + 40 * moe + 2 * VOCAB * S_D + S_D
    cfg = models.get("nemotron-3-super-120b-a12b")
    assert cfg.build(Phase.decode(1, 1)).params() == total == 120_668_707_840
    skipped = 40 * (S_EXPERTS - S_TOP_K) * 2 * S_LATENT * S_EXPERT
    assert round((total - skipped - VOCAB * S_D) / 1e9, 1) == 12.2  # the card's 12B active, the head counted


def test_a_latent_moe_under_tensor_parallelism_reduces_the_routed_sum_in_the_latent_space():
    """TP 8: each GPU runs 1/8 of every expert's width on the 1,024-wide latent tokens; the weighted sum is
    all-reduced at 1,024 wide before fc2_latent_proj, the shared MLP's output at 4,096 on its own (vLLM's MoERunner);
    fc1 and fc2 are whole on every GPU."""
    t = 4
    model = models.get("nemotron-3-super-120b-a12b").build(Phase.decode(t, 100), BuildOptions(tp=8))
    ops = block(model, "moe_layer").graph.ops
    reduces = {name: op.outputs[0].shape[-1] for name, op in ops.items() if op.kind == "collective"}
    assert reduces == {"latent_allreduce": S_LATENT, "shared.down_allreduce": S_D}
    assert ops["fc1_latent_proj"].flops == 2 * t * S_D * S_LATENT == ops["fc2_latent_proj"].flops
    assert ops["experts.up_proj"].flops == 2 * t * S_TOP_K * S_LATENT * (S_EXPERT // 8)


def test_the_mtp_head_is_the_modules_own_layers():
    """serve --draft mtp: the module's attention and MoE layers ("*E"), with enorm, hnorm and eh_proj [4,096 x
    8,192] before them and the shared embedding and head, not one layer of the stack's last kind (a MoE layer)."""
    cfg = models.get("nemotron-3-super-120b-a12b")
    head = cfg.draft_head("mtp")
    assert head.n_layers == 2 and cfg.mtp_layers == 2
    attention = S_D * HEADS * HEAD_DIM + 2 * S_D * KV * HEAD_DIM + HEADS * HEAD_DIM * S_D + S_D
    moe = (S_EXPERTS * S_D + S_EXPERTS + 2 * S_D * S_LATENT + S_EXPERTS * 2 * S_LATENT * S_EXPERT
           + 2 * S_D * S_SHARED + S_D)
    join = 2 * S_D + 2 * S_D * S_D
    assert head.build(Phase.decode(1, 1)).params() == attention + moe + join + 2 * VOCAB * S_D + S_D
