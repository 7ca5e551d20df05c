"""Interop with the wider ecosystem: Hugging Face export/import (Llama for v1 and MiniMind2, Qwen3 and Qwen3-MoE
for minimind-3, Qwen2-MoE for MiniMind2's MoE) and fetching the recipes' files.

Nothing here imports textual; torch is imported only by the export/import modules.
"""
