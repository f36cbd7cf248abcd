"""A GPT-J / Falcon / PaLM-style parallel block written as a user would: attention and the MLP both read one
normed input, and their outputs are summed into the residual. Used by tests/test_user_models.py."""

from opgraph import BF16, Block, GraphBuilder, Model
from opgraph.models import pieces

D, HEADS, KV_HEADS, D_FFN, LAYERS = 4096, 32, 8, 14336, 32


def layer(phase, options):
    b = GraphBuilder(options.precision or BF16, name="parallel_layer")
    x = b.input("x", (phase.batch, phase.new_tokens, D))
    h = pieces.norm(b, "ln", x, "ln.weight", out="x_norm")
    attn = pieces.gqa_attention(b, h, phase, heads=HEADS, kv_heads=KV_HEADS, head_dim=D // HEADS)
    mlp = pieces.gated_mlp(b, h, d_ffn=D_FFN)
    both = b.elementwise("branch_sum", "add", attn, mlp, out="branches")
    return b.build(outputs=[b.elementwise("residual", "add", x, both, out="out")])


def build(phase, options):
    return Model("parallel-8b", phase, [Block("layer", LAYERS, layer(phase, options))])
