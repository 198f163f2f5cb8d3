"""What one `run` may do: the jobs it selected, its slots, and its failure policy."""

from __future__ import annotations

import attrs

from journalq.selection import Selection
from journalq.slots import Slot


@attrs.frozen
class Plan:
    """What one `run` may do: the jobs it selected, its slots, and its failure policy."""

    runnable: frozenset[str]
    selection: Selection
    slots: tuple[Slot, ...]
    halt_after: int | None = None
    stale_seconds: float = 7200.0
    declared_dead: frozenset[str] = frozenset()  # runner sessions --force said are gone
    quiet: bool = False
