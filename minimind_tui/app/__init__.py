"""The Textual dashboard. Never imports torch at import time (tests check it)."""
