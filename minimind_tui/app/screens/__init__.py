"""Modal screens only."""
