"""minimind-tui: train, watch and chat with MiniMind models from one terminal dashboard."""
__version__ = "0.1.0"
