import sys

from minimind_tui.cli import main

sys.exit(main())
