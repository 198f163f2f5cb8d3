"""Where a queue's jobs write: each job's out_dir under out_root, each attempt's log under
`<journal folder>/logs/<queue>/<job>/`, checked before anything is created."""

from __future__ import annotations

import os
import posixpath
import stat

from journalq.config import Config, is_safe_name
from journalq.errors import ConfigError
from journalq.state import Job


class JobFiles:
    """Where a queue's jobs write: each job's out_dir under out_root, each attempt's log
    under `<journal folder>/logs/<queue>/<job>/`. Nothing is created before it is checked:
    a symlink (or a job id from an edited journal) must not lead a job outside."""

    def __init__(self, cfg: Config, journal_path: str, session_id: str) -> None:
        self.source = cfg.source
        self.out_root = cfg.out_root
        logs_root = posixpath.join(posixpath.dirname(journal_path) or ".", "logs")
        if os.path.islink(logs_root):  # a Slurm task's node-local link to shared storage:
            logs_root = os.path.realpath(logs_root)  # record where readers elsewhere find it
        self.logs = posixpath.join(logs_root, cfg.queue)
        self.session_id = session_id
        os.makedirs(self.logs, exist_ok=True)
        self._real_logs = os.path.realpath(self.logs)
        self._real_out_root: str | None = None  # out_root may not exist before the first job
        self._journal_device = os.stat(posixpath.dirname(journal_path) or ".").st_dev

    def out_dir(self, job: Job) -> str:
        """The job's out_dir, created, and refused if a symlink leads it out of out_root."""
        if self._real_out_root is None:
            os.makedirs(self.out_root, exist_ok=True)
            self._real_out_root = os.path.realpath(self.out_root)
        out_dir = job.spec.out_dir
        if not self._make_inside(self.out_root, self._real_out_root, out_dir):
            raise ConfigError(f"{self.source}: job {job.id}: its out_dir {out_dir} leads "
                              f"outside out_root ({os.path.realpath(out_dir)}); remove the "
                              "symlink")
        return out_dir

    def card_must_be_durable(self, out_dir: str) -> bool:
        """Whether the run card lives on another disk than the journal (see `write_card`)."""
        return os.stat(out_dir).st_dev != self._journal_device

    def log_path(self, job_id: str, number: int) -> str:
        """A new log file's path for this attempt (never one that exists)."""
        folder = posixpath.join(self.logs, job_id)
        if not self._make_inside(self.logs, self._real_logs, folder):
            raise ConfigError(f"log folder {folder} leads outside {self.logs}; remove the "
                              "symlink")
        path = posixpath.join(folder, f"attempt-{number}.log")
        if os.path.exists(path):  # left by a journal that was deleted and started again
            path = posixpath.join(folder, f"attempt-{number}.{self.session_id}.log")
        return path

    @staticmethod
    def _make_inside(root: str, real_root: str, path: str) -> bool:
        """Create folder `path` if it is inside `root` (whose real path is `real_root`);
        False, creating nothing, if it (or a link on the way) leads outside.

        The usual case, `<root>/<plain name>`, takes one lstat: only that last name can be a
        link. Anything else (a spec from an edited journal) is resolved in full first, as
        makedirs would follow a dangling link, or a '..', out of root.
        """
        if posixpath.dirname(path) == root and is_safe_name(posixpath.basename(path)):
            try:
                if not stat.S_ISLNK(os.lstat(path).st_mode):
                    return True
            except FileNotFoundError:
                os.mkdir(path)  # a plain name, no link: it lands inside root
                return True
        if not (os.path.realpath(path) + os.sep).startswith(real_root + os.sep):
            return False
        os.makedirs(path, exist_ok=True)
        return True
