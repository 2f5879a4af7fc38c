"""``python -m tunebench`` runs the command line."""

import sys

from tunebench.cli import main

sys.exit(main())
