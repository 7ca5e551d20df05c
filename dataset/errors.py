class DataError(ValueError):
    """Bad training data; the message names the file (and line) and what to do."""

    user_facing = True
