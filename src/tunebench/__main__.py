"""``python -m tunebench`` runs the command line."""

import sys

from tunebench.cli.app import main

sys.exit(main())
