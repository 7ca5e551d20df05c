"""Chat logic without any UI: which checkpoint and tokenizer, the conversation, the probe prompts.

`settings` and `probes` are torch-free (the dashboard imports them at start-up); `loading` and
`session` import torch and are only imported inside worker threads or by the CLI.
"""
