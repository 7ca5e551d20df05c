"""Interop with the wider ecosystem: Hugging Face Llama-format export/import and fetching the recipe's files.

Nothing here imports textual; torch is imported only by the export/import modules.
"""
