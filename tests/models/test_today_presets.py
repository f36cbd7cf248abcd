"""The presets of the models people serve today (issue 16): each loads from its checkpoint's own config.json and
its parameter count equals the published figure at the precision it is printed with.

Published figures are rounded (8.2B) or cut (Qwen3-30B-A3B's 3.353B active is printed 3.3B), so a count passes
when rounding or truncating it to the printed digits gives the printed figure. "Active" is per token: the routed
experts a token does not run are left out; model cards differ on whether they count the embedding table and the
head, so each figure says what it counts. Multimodal checkpoints are costed without their vision tower, so their
published totals (which include it) are checked through the active figure or the language model's own."""

import decimal

import pytest

from opgraph import Phase, models
from opgraph.models import MoE

# name: (figure, what it counts, source). What it counts: "total"; "active" (all but the experts a token skips);
# "active-embed" (also without the embedding table); "active-embed-head" (also without the lm_head).
PUBLISHED = {
    "qwen3-8b": [("8.2B", "total", "Qwen/Qwen3-8B model card: Number of Parameters: 8.2B"),
                 ("6.95B", "total-embed-head", "Qwen/Qwen3-8B model card: Number of Paramaters (Non-Embedding): 6.95B")],
    "qwen3-32b": [("32.8B", "total", "Qwen/Qwen3-32B model card: Number of Parameters: 32.8B")],
    "qwen3-30b-a3b": [("30.5B", "total", "Qwen/Qwen3-30B-A3B model card: 30.5B in total"),
                      ("3.3B", "active", "Qwen/Qwen3-30B-A3B model card: 3.3B activated")],
    "qwen3-235b-a22b": [("235B", "total", "Qwen/Qwen3-235B-A22B model card: 235B in total"),
                        ("22B", "active", "Qwen/Qwen3-235B-A22B model card: 22B activated")],
    "qwen3-next-80b-a3b": [("80B", "total", "Qwen/Qwen3-Next-80B-A3B-Instruct model card: 80B in total"),
                           ("3B", "active", "Qwen/Qwen3-Next-80B-A3B-Instruct model card: 3B activated")],
    "qwen3.5-397b-a17b": [("17B", "active", "Qwen/Qwen3.5-397B-A17B: the A17B of its name")],
    "gpt-oss-20b": [("20.91B", "total", "OpenAI, gpt-oss-120b & gpt-oss-20b Model Card (2025), Table 1"),
                    ("3.61B", "active-embed", "ibid.: active parameters, the unembedding counted, not the embedding")],
    "gpt-oss-120b": [("116.83B", "total", "OpenAI, gpt-oss Model Card (2025), Table 1"),
                     ("5.13B", "active-embed", "ibid.")],
    "deepseek-r1": [("671B", "total", "deepseek-ai/DeepSeek-R1 README: 671B total (MTP module apart)"),
                    ("37B", "active", "deepseek-ai/DeepSeek-R1 README: 37B activated")],
    "deepseek-v3.2": [("685B", "total+mtp", "deepseek-ai/DeepSeek-V3.2 on Hugging Face: 685B params, the checkpoint "
                                            "with its multi-token-prediction layer")],
    "deepseek-v4-flash": [("284B", "total", "deepseek-ai/DeepSeek-V4-Flash model card: 'DeepSeek-V4-Flash with 284B "
                                            "parameters (13B activated)' (its MTP layer apart)"),
                          ("13B", "active-embed", "ibid.: 13B activated (the head counted, not the embedding table)")],
    "deepseek-v4-pro": [("1.6T", "total", "DeepSeek-V4 model card: 'DeepSeek-V4-Pro with 1.6T parameters (49B "
                                          "activated)'"),
                        ("49B", "active-embed", "ibid.: 49B activated (the head counted, not the embedding table)")],
    "kimi-linear-48b-a3b": [("49.122681728B", "total", "moonshotai/Kimi-Linear-48B-A3B-Instruct's tensor list: "
                                                       "49,122,681,728 parameters (its README rounds it to 48B)"),
                            ("3B", "active-embed", "MoonshotAI/Kimi-Linear README: 3B activated parameters")],
    "minimax-m3": [("23B", "active-embed-head", "MiniMax-M3 model card (as mirrors quote it): '~23B activated' (the "
                                                "decoder layers'; its ~428B total counts the vision tower, not costed)")],
    "kimi-k2": [("1T", "total", "moonshotai/Kimi-K2-Instruct model card: 1T total parameters"),
                ("32B", "active", "moonshotai/Kimi-K2-Instruct model card: 32B activated parameters")],
    "glm-4.5-air": [("106B", "total", "zai-org/GLM-4.5-Air README: 106 billion total parameters"),
                    ("12B", "active-embed-head", "zai-org/GLM-4.5-Air README: 12 billion active parameters")],
    "glm-4.5": [("358.34B", "total+mtp", "Hugging Face's count of zai-org/GLM-4.5's safetensors, 358.34B (captured "
                                         "by free2aitools.com): the MTP layer with its own embedding and head"),
                ("32B", "active-embed-head", "zai-org/GLM-4.5 README: 32 billion active parameters")],
    "glm-5": [("744B", "total", "GLM-5 technical report (arXiv:2602.15763), architecture table: 744B total parameters, "
                                "its MTP layer listed apart"),
              ("40B", "active-embed-head", "ibid.: 40B activated parameters")],
    "seed-oss-36b": [("36.151104512B", "total", "ByteDance-Seed/Seed-OSS-36B-Instruct: its safetensors index's "
                                                "parameter count, 36,151,104,512, as a note copying the raw files "
                                                "quotes it")],
    "olmo-3-7b": [("7B", "total", "allenai/Olmo-3-1025-7B model card: 'Olmo 3 7B'")],
    "longcat-flash": [("560B", "total", "meituan-longcat/LongCat-Flash-Chat README: '560 billion total parameters'"),
                      ("31.3B", "active-embed", "ibid.: '18.6B~31.3B (averaging ~27B)' activated, the upper end all "
                                                "12 picks real experts (the head counted, not the embedding table)")],
    "dots-llm1": [("142B", "total", "rednote-hilab/dots.llm1.inst model card: '14B parameters out of a total of "
                                    "142B'"),
                  ("14B", "active", "ibid.")],
    "ling-2.6-flash": [("104B", "total", "inclusionAI/Ling-2.6-flash model card: 'Total ~104B, Activated ~7.4B'"),
                       ("7.4B", "active", "ibid.")],
    "llama-3.3-nemotron-super-49b": [("49B", "total", "nvidia/Llama-3_3-Nemotron-Super-49B-v1: the 49B of its name")],
    "llama-3.1-nemotron-ultra-253b": [("253B", "total", "nvidia/Llama-3_1-Nemotron-Ultra-253B-v1: the 253B of its "
                                                        "name")],
    "smollm3-3b": [("3.08B", "total", "HuggingFaceTB/SmolLM3-3B on Hugging Face: 3.08B params (its "
                                      "model.safetensors.index.json: total_parameters 3075098624)")],
    "kimi-k3": [("2.8T", "total", "Moonshot's Kimi-K3 release as press and third-party pages report it: a "
                                  "'2.8T-parameter MoE' (its 0.45B vision tower, not costed here, changes no digit)"),
                ("104B", "active-embed", "ibid.: '104B active' (the head counted, not the input table)")],
    "deepseek-v4.1-flash": [("552B", "total-engram", "DeepSeek-V4.1-Flash's model card and report as secondary "
                                                     "summaries quote them: a 552B backbone ..."),
                            ("196B", "engram", "ibid.: ... and 196B of Engram memory")],
    "glm-4.7-flash": [("30B", "total", "zai-org/GLM-4.7-Flash model card: 'a 30B-A3B MoE model'"),
                      ("3B", "active-embed-head", "ibid.: the A3B, counted as GLM-5's 40B active is, without the "
                                                  "embedding table and the head")],
    "glm-5.2": [("753B", "total+mtp-layer", "the Hugging Face Hub's listing of zai-org/GLM-5.2: ~753B (its "
                                            "safetensors, the MTP layer 78 with them: a full layer with its indexer, "
                                            "enorm, hnorm, eh_proj and shared_head.norm, and no embedding or head of "
                                            "its own, as a third-party reading of the checkpoint lists it)")],
    "minimax-m1": [("456B", "total", "MiniMax-M1 technical report (arXiv 2506.13585): '456 billion parameters with "
                                     "45.9 billion parameters activated per token'"),
                   ("45.9B", "active-embed-head", "ibid.: 45.9B activated (without the embedding table and the head, "
                                                  "as the count of the layers alone gives it)")],
    "minimax-m2.5": [("9.8B", "active-embed-head", "MiniMax-M2.5 technical report (MiniMax et al., 2026), as "
                                                   "emergentmind.com quotes it: 9.8 billion activated per token")],
    "llama-4-scout": [("17B", "active", "meta-llama/Llama-4-Scout-17B-16E model card: 17B activated")],
    "llama-4-maverick": [("17B", "active", "meta-llama/Llama-4-Maverick-17B-128E model card: 17B activated"),
                         ("400B", "total", "ibid.: 400B total")],
    "gemma-2-9b": [("9B", "total", "google/gemma-2-9b: the 9B of its name")],
    "gemma-3-12b": [("12B", "total", "google/gemma-3-12b-it: the 12B of its name (the vision tower is 0.4B)")],
    "gemma-3-27b": [("27B", "total", "google/gemma-3-27b-it: the 27B of its name")],
    "gemma-4-31b": [("30.7B", "total", "Google's Gemma-4 model card as apxml.com and llmradar.eu report it: 30.7B "
                                       "parameters (the vision encoder apart)")],
    "gemma-4-26b-a4b": [("25.2B", "total", "Google's Gemma-4 model card as vast.ai and llmradar.eu report it: 25.2B "
                                           "total"),
                        ("3.8B", "active", "ibid.: 3.8B active per token")],
    "mistral-small-3.1-24b": [("24B", "total", "mistralai/Mistral-Small-3.1-24B-Instruct-2503: 24B of its name")],
    "nemotron-h-8b": [("8B", "total", "nvidia/Nemotron-H-8B-Base-8K: the 8B of its name")],
    "nemotron-3-nano-30b-a3b": [
        ("31.6B", "total", "NVIDIA's Nemotron 3 announcement: '3.2B active (3.6B with embeddings), 31.6B total'"),
        ("3.6B", "active", "ibid.: 3.6B active with embeddings"),
        ("3.2B", "active-embed", "ibid.: 3.2B active (the head counted, as the 3.6B's 0.35B gap is one table)")],
    "nemotron-3-super-120b-a12b": [
        ("120B", "total", "nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-BF16 model card: '120B Total / 12B Active'"),
        ("12B", "active-embed", "ibid.")],
    "mimo-v2-flash": [("309B", "total", "XiaomiMiMo/MiMo-V2-Flash README: '309B total parameters and 15B active'"),
                      ("15B", "active", "ibid.")],
    "phi-3-mini": [("3.8B", "total", "microsoft/Phi-3-mini-4k-instruct model card: 3.8B parameters")],
    "granite-3.3-8b": [("8B", "total", "ibm-granite/granite-3.3-8b-instruct: the 8B of its name")],
    "trinity-mini": [("26B", "total", "the Trinity technical report (arXiv 2602.17004): 26B total, 3B active"),
                     ("3B", "active-embed", "ibid.: 3B active (the head counted, the embedding not)")],
    "trinity-large": [("398B", "total", "arcee-ai/Trinity-Large-Preview's card: ~398B total, ~13B active"),
                      ("13B", "active", "ibid.")],
    "pythia-12b": [("11.846072320B", "total", "the Pythia model card's parameter table: 11,846,072,320"),
                   ("11.327027200B", "total-embed-head", "ibid.: 11,327,027,200 non-embedding")],
    "phi-2": [("2.7B", "total", "microsoft/phi-2's card: 2.7 billion parameters (2,779,683,840 cut)")],
}


def matches(count: int, figure: str) -> bool:
    """`count` printed at the figure's precision, rounded or cut, is the figure."""
    scale = {"B": 10**9, "T": 10**12}[figure[-1]]
    printed = decimal.Decimal(figure[:-1])
    exp = printed.as_tuple().exponent
    value = decimal.Decimal(count) / scale
    return printed in (value.quantize(decimal.Decimal(1).scaleb(exp), rounding=r)
                       for r in (decimal.ROUND_HALF_UP, decimal.ROUND_DOWN))


def counted(name: str, what: str) -> int:
    cfg = models.get(name)
    model = cfg.build(Phase.decode(1, 1))
    total = model.params()
    d, vocab = cfg.d_model, cfg.vocab_size
    skipped = 0
    if what.startswith("active"):
        # Experts a token skips, in every MoE layer: (E - k) x one expert's matrices and biases, by hand.
        for layer, n in cfg.layer_kinds().items():
            for part in layer.parts():
                if isinstance(part, MoE):
                    matrices = 3 if part.gated else 2  # gate, up, down; plain experts have no gate
                    e = part.latent or d  # a latent MoE's experts work in its latent width
                    per_expert = matrices * e * part.d_expert + (2 * part.d_expert + e if part.expert_bias else 0)
                    skipped += n * (part.experts - part.top_k) * per_expert
    if what in ("total+mtp", "total+mtp-layer"):
        # The MTP module (not run by next-token inference, so not in the model): one more MoE layer (with an indexer
        # where the model has one), its eh_proj [d, 2d], two norms and its head's norm, and its own embedding and
        # head (DeepSeek-V3 README_WEIGHTS.md; GLM-4.5's layer 92 holds the same tensors, vLLM glm4_moe_mtp.py),
        # or, "total+mtp-layer", none of its own (GLM-5.2's layer 78: no embed_tokens or shared_head.head).
        moe_layer = next(b for b in model.blocks if b.name in ("moe_layer", "moe_sparse_layer")).graph.params()
        return total + moe_layer + 2 * d * d + 3 * d + (2 * vocab * d if what == "total+mtp" else 0)
    if what in ("total-engram", "engram"):
        # Engram memories (DeepSeek-V4.1), by hand: each table of rows x head_dim, the wkv [(n + 1) d, rows read x
        # head_dim] for n streams, and the q_weight and k_weight [n, d]
        engram = 0
        for layer, n in cfg.layer_kinds().items():
            m = layer.memory
            if m is not None:
                read = (m.ngram - 1) * m.heads
                engram += n * (m.table_rows * m.head_dim + (cfg.streams + 1) * d * read * m.head_dim
                               + 2 * cfg.streams * d)
        return total - engram if what == "total-engram" else engram
    if what.endswith("-embed") or what.endswith("-embed-head"):
        skipped += vocab * d
    if what.endswith("-head") and not cfg.tie_embeddings:
        skipped += vocab * d
    return total - skipped


def test_every_new_preset_is_checked():
    named = set(PUBLISHED) | {"llama-2-7b", "llama-3-8b", "llama-3-70b", "llama-3.1-405b", "mistral-7b",
                              "mixtral-8x7b", "qwen2-7b", "gemma-7b", "gpt2", "deepseek-v2-lite", "deepseek-v3"}
    assert set(models.names()) <= named


@pytest.mark.parametrize("name, figure, what, source",
                         [(n, *row) for n, rows in PUBLISHED.items() for row in rows])
def test_parameter_count_is_the_published_one(name, figure, what, source):
    if name not in models.names():
        pytest.skip(f"{name} is not shipped")
    assert matches(counted(name, what), figure), (counted(name, what), figure, source)


def test_the_check_itself_tells_rounding_from_error():
    assert matches(8_190_735_360, "8.2B") and matches(3_353_032_704, "3.3B") and not matches(8_310_000_000, "8.2B")
    assert matches(1_026_408_232_448, "1T") and not matches(2_100_000_000_000, "1T")


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_each_preset_reports_both_phases(name):
    from opgraph import analyze, hardware, strategy
    cfg = models.get(name)
    for phase in (Phase.prefill(1, 64), Phase.decode(2, 300)):
        res = analyze(cfg.build(phase), strategy("fused"), hardware.load("h100-sxm"))
        assert res.totals.flops > 0 and res.totals.bytes > 0
