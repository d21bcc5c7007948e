"""``python -m ops_center.cli``: the command line."""

import sys

from ops_center.cli.main import main

sys.exit(main())
