"""`python -m journalq` behaves exactly like the `journalq` console script."""

import sys

from journalq.cli import main

sys.exit(main())
