"""Named model configurations. Each cites the checkpoint config.json it copies."""

from __future__ import annotations

from models.llama import LlamaConfig

_LLAMA3_VOCAB = 128256

PRESETS = {
    c.name: c
    for c in (
        LlamaConfig("llama-2-7b", d_model=4096, n_heads=32, n_kv_heads=32, d_ffn=11008, n_layers=32,
                    vocab_size=32000, source="huggingface.co/meta-llama/Llama-2-7b-hf config.json"),
        LlamaConfig("llama-3-8b", d_model=4096, n_heads=32, n_kv_heads=8, d_ffn=14336, n_layers=32,
                    vocab_size=_LLAMA3_VOCAB, source="huggingface.co/meta-llama/Meta-Llama-3-8B config.json"),
        LlamaConfig("llama-3-70b", d_model=8192, n_heads=64, n_kv_heads=8, d_ffn=28672, n_layers=80,
                    vocab_size=_LLAMA3_VOCAB, source="huggingface.co/meta-llama/Meta-Llama-3-70B config.json"),
        LlamaConfig("llama-3.1-405b", d_model=16384, n_heads=128, n_kv_heads=8, d_ffn=53248, n_layers=126,
                    vocab_size=_LLAMA3_VOCAB, source="huggingface.co/meta-llama/Llama-3.1-405B config.json"),
    )
}
