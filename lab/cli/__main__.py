"""``python -m lab.cli``: the ``memsim`` command line."""

import sys

from lab.cli import main

sys.exit(main())
