"""Errors the user can fix. Any exception class with `user_facing = True` (the model and dataset
packages define their own) is printed by the CLI as one line, exit status 2, without a traceback."""


class UserError(Exception):
    user_facing = True
