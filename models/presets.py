"""Named model configurations: each is its checkpoint's own config.json, shipped in models/configs/ and read
by the same loader as a user's file, with the citation it was copied from."""

from __future__ import annotations

from pathlib import Path

from . import hf_config

CONFIG_DIR = Path(__file__).parent / "configs"

# preset name -> where its configs/<name>.json comes from (the Hugging Face checkpoint's config.json).
SOURCES = {
    "llama-2-7b": "huggingface.co/meta-llama/Llama-2-7b-hf config.json",
    "llama-3-8b": "huggingface.co/meta-llama/Meta-Llama-3-8B config.json",
    "llama-3-70b": "huggingface.co/meta-llama/Meta-Llama-3-70B config.json",
    "llama-3.1-405b": "huggingface.co/meta-llama/Llama-3.1-405B config.json",
    "mistral-7b": "huggingface.co/mistralai/Mistral-7B-v0.1 config.json",
    "mixtral-8x7b": "huggingface.co/mistralai/Mixtral-8x7B-v0.1 config.json",
    "qwen2-7b": "huggingface.co/Qwen/Qwen2-7B config.json",
    "gemma-7b": "huggingface.co/google/gemma-7b config.json",
    "gpt2": "huggingface.co/openai-community/gpt2 config.json",
    "deepseek-v2-lite": "huggingface.co/deepseek-ai/DeepSeek-V2-Lite config.json",
    "deepseek-v3": "huggingface.co/deepseek-ai/DeepSeek-V3 config.json (the 61-layer main model; "
                   "the multi-token-prediction layer is not counted)",
}

PRESETS = {name: hf_config.load(CONFIG_DIR / f"{name}.json", name=name, source=source)
           for name, source in SOURCES.items()}
