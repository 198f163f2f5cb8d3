"""journalq: a crash-safe experiment queue whose state is a fold over an fsync'd event journal.

From Python (a notebook above all): `journalq.run(config, resume=True)`, `status()`,
`wait()`, `collect()`, `logs()`; a non-zero outcome raises `journalq.Error`, which carries
the command line's `exit_code` and one-line `message` (see `journalq.api`).
"""

# No import at module level, not even `typing`: every `journalq` command imports this
# package before its entry point can catch a Ctrl-C (see `journalq.__main__`).
TYPE_CHECKING = False

__version__ = "0.1.0"  # as journalq.version.VERSION (a test keeps them equal)
__all__ = ["Error", "__version__", "collect", "logs", "run", "status", "wait"]

if TYPE_CHECKING:
    from journalq.api import collect, logs, run, status, wait
    from journalq.errors import Error

# `import journalq` stays as cheap as the command line's start-up (every `journalq`
# command imports this package first): the API and its imports load on first use. (Hidden
# from mypy, which would otherwise take any name at all as an attribute of the package.)
_LAZY = {"run": "journalq.api", "status": "journalq.api", "wait": "journalq.api",
         "collect": "journalq.api", "logs": "journalq.api", "Error": "journalq.errors"}

if not TYPE_CHECKING:
    def __getattr__(name: str) -> object:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module 'journalq' has no attribute {name!r}")
        import importlib

        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value
