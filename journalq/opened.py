"""One queue as a command works on it, built once by the CLI and handed to the command: the
journal's path, the config (when one was given), the console, the sync folder (when there
is one) and the clock. Commands never re-derive any of these from loose arguments."""

from __future__ import annotations

import os
import posixpath
from typing import TYPE_CHECKING

import attrs

from journalq import defaults
from journalq.clock import SYSTEM, Clock
from journalq.errors import ConfigError, UsageError
from journalq.fs import REAL, FileSystem
from journalq.render import Console

if TYPE_CHECKING:  # `status --state` never loads YAML or cattrs
    from journalq.config import Config


@attrs.frozen
class SyncPlace:
    """The sync folder (Drive on Colab) and how often a heartbeating runner copies to it."""

    folder: str
    every_seconds: float


@attrs.frozen
class Opened:
    """The queue a command works on; see the module docstring."""

    path: str
    config: Config | None
    console: Console
    sync: SyncPlace | None = None
    clock: Clock = SYSTEM
    fs: FileSystem = REAL

    def stale_seconds(self, override: float | None = None) -> float:
        """Silence after which a remote runner is stale: the flag, else the config's."""
        if override:
            return override
        return self.config.stale_seconds if self.config else defaults.DEFAULT_STALE_SECONDS

    @property
    def grace_seconds(self) -> float:
        """SIGTERM -> SIGKILL grace for stopping a job's process group."""
        return self.config.grace_seconds if self.config else defaults.DEFAULT_GRACE_SECONDS

    def require_config(self) -> Config:
        """The config, which this command cannot do without."""
        if self.config is None:
            raise UsageError("this command needs --config <file>")
        return self.config


def open_queue(*, console: Console, state: str | None, config: str | None,
               sync_dir: str | None = None, must_exist: bool = False,
               clock: Clock = SYSTEM) -> Opened:
    """The queue that --state / --config / --sync-dir name, checked before anything is
    written: the config parses, and the journal is there unless something can make it
    (the sync folder is checked by the session, before it touches the journal)."""
    for flag, given in (("--state", state), ("--config", config), ("--sync-dir", sync_dir)):
        if given and "\0" in given:
            raise UsageError(f"{flag}: the path contains a NUL byte, which no file name can")
    cfg = load_config(config) if config else None
    if state:
        path = state
    elif cfg is not None:
        path = default_state(cfg)
    else:
        raise UsageError("say which queue: --state runtime_state/<queue>.jsonl or --config "
                         "<file>")
    folder = sync_dir or (cfg.sync_dir if cfg else None)
    # A missing journal is made by a config (init, run) or filled from the sync folder's
    # copies (a new runtime); with neither, the path is a mistake.
    if ((must_exist and not folder) or cfg is None) and not os.path.lexists(path):
        raise UsageError(f"{path}: no journal here yet; create it with `journalq init "
                         "--config <file>` (or `journalq run`)")
    place = None
    if folder:
        every = cfg.sync_seconds if cfg else defaults.DEFAULT_SYNC_SECONDS
        place = SyncPlace(folder, every)
    return Opened(path=path, config=cfg, console=console, sync=place, clock=clock)


def load_config(path: str) -> Config:
    """Read and check a config file."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file; check the path (configs live in "
                          "configs/experiments/)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from None
    from journalq import config

    return config.parse(data, path)


def default_state(cfg: Config) -> str:
    """Where a queue's journal lives unless --state says otherwise."""
    return posixpath.join("runtime_state", f"{cfg.queue}.jsonl")
