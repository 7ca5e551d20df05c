"""The run directory: the only thing the trainer and the dashboard share. No torch, no textual here."""
