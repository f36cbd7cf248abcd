"""The dense Llama-family decoder (pre-norm RMSNorm, GQA with rotary positions, SwiGLU MLP) is the
generic decoder with its defaults; `LlamaConfig` keeps the name for code that builds one by hand."""

from __future__ import annotations

from .decoder import DecoderConfig

LlamaConfig = DecoderConfig

__all__ = ["LlamaConfig"]
