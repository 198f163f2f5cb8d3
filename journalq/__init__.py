"""journalq: a crash-safe experiment queue whose state is a fold over an fsync'd event journal."""

__version__ = "0.1.0"
