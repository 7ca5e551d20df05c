import os
import sys

# `python -m minimind_tui` puts the working directory first on sys.path. In a MiniMind checkout (or
# after `demo`), that folder holds dataset/ and model/ data folders, which would shadow our packages
# of the same names; drop it unless it is this source tree itself.
if sys.path and os.path.realpath(sys.path[0] or ".") == os.path.realpath(os.getcwd()) \
        and not os.path.isfile(os.path.join(os.getcwd(), "minimind_tui", "__init__.py")):
    sys.path.pop(0)

from minimind_tui.cli import main  # noqa: E402

sys.exit(main())
