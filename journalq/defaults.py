"""What journalq assumes when a config or the command line says nothing.

Kept apart from `config` so that commands which never read a config (`status --state`)
need not import YAML and cattrs to know them.
"""

from __future__ import annotations

DEFAULT_WORKER = ("python", "scripts/run_sweep.py")
# A runner heard from within this many seconds may still be alive: two hours, because a
# GPU job can be silent that long only if its runner is gone.
DEFAULT_STALE_SECONDS = 7200.0
DEFAULT_HEARTBEAT_SECONDS = 30.0
DEFAULT_SYNC_SECONDS = 60.0
DEFAULT_GRACE_SECONDS = 10.0
