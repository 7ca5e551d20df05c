"""The one error type of this package: the CLI prints it as one line (user_facing), exit status 2."""
from minimind_tui.errors import UserError


class InteropError(UserError):
    """An export, import or download problem the user can fix (bad file, wrong flags, network)."""
