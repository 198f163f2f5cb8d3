"""No process a job started outlives its attempt, even one that left the job's process group.

Killing a job's process group stops everything the job started that stayed in the group (a
`nohup cmd &` child, a worker pool). A daemon leaves it: `setsid` (or a double fork) puts
it in a session of its own, and when its parent exits the kernel hands it to init, where
nothing of ours would ever find it again. On a GPU such a survivor holds memory into the
next job. So, on Linux:

- the runner is a child subreaper (`prctl(PR_SET_CHILD_SUBREAPER)`): an orphaned descendant
  is re-parented to the runner, not to init, and stays in the runner's process tree;
- every process of an attempt carries `JOURNALQ_ATTEMPT_ID=<session>/<job>/<attempt>` in its
  environment (the child inherits it, and so does everything it starts, unless it clears
  its environment on purpose);
- when an attempt ends (after the group got SIGTERM, the grace period and SIGKILL, as
  before), `kill_leftovers` SIGKILLs every descendant of the runner with that attempt's tag
  and reaps the zombies the runner adopted, waiting on those pids only, never on a job
  leader a `subprocess.Popen` still waits for;
- recovery of an attempt whose runner was killed (same boot) finds its survivors by the tag
  in `/proc/*/environ` (`find_tagged`) and stops them with the groups the lock file names,
  one grace period for all (`runner.kill_orphans`).

What holds elsewhere: without a subreaper and `/proc` (macOS, BSD), only the process group
is stopped, and a process that left it survives; these functions then do nothing. On Linux,
a daemon that clears its environment (`env -i`) and leaves the group escapes too.

The check at every job's end costs one read of `/proc/self/task/<pid>/children` when the
runner adopted nothing (the common case): a few microseconds (tests/test_reaper.py).
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import time
from collections.abc import Collection, Iterator

from journalq import host

TAG_VARIABLE = "JOURNALQ_ATTEMPT_ID"
_PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
_ROUNDS = 100  # a killed parent's children come back to us: look again, this many times
_DYING_SECONDS = 2.0  # how long to wait for a SIGKILLed child to become a zombie


def attempt_tag(session: str, job: str, attempt: int) -> str:
    """The tag every process of one attempt carries (job ids hold no '/')."""
    return f"{session}/{job}/{attempt}"


@functools.cache
def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux 3.4+); whether it
    is. Once per process: the setting lasts until exit."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes  # only a runner pays for it

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def kill_leftovers(tag: str, leaders: Collection[int] = ()) -> list[int]:
    """SIGKILL every descendant of this process that carries `tag`, and reap the zombies
    this process adopted; returns the pids killed.

    `leaders` are the children a `subprocess.Popen` still waits for (other attempts'
    leaders): they and their trees are left alone, and never reaped here, or their Popen
    would lose their exit status.
    """
    killed: set[int] = set()
    for _ in range(_ROUNDS):
        adopted = [pid for pid in _children("self", str(os.getpid())) if pid not in leaders]
        if not adopted:
            break
        found = [pid for pid in _tree(adopted) if pid not in killed and _tagged(pid, tag)]
        for pid in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        killed.update(found)
        # Reaping a killed parent hands its children to us: the next round looks at them.
        reaped = [pid for pid in adopted if _reap(pid, doomed=pid in killed)]
        if not found and not reaped:
            break
    return sorted(killed)


def find_tagged(tags: Collection[str]) -> dict[int, int]:
    """Every process on this machine but this one that carries one of `tags`, with its
    start time (pid -> start): one pass over /proc, however many tags."""
    wanted = {f"{TAG_VARIABLE}={tag}".encode() for tag in tags}
    found: dict[int, int] = {}
    if not wanted:
        return found
    for pid in _all_pids():
        start = host.process_start(pid)
        if pid != os.getpid() and start is not None and not wanted.isdisjoint(
                _read(f"/proc/{pid}/environ").split(b"\0")):
            found[pid] = start
    return found


def _children(pid: str, task: str | None = None) -> list[int]:
    """The children of a process (of one of its threads, if `task` is given): one read.

    Orphans are re-parented to the subreaper's main thread, and journalq spawns from it,
    so the runner reads only its own task's list. Kernels without these lists (built
    without CONFIG_PROC_CHILDREN; some sandboxes) are scanned instead, at a cost of a
    read per process."""
    if not _have_children_lists():
        number = os.getpid() if pid == "self" else int(pid)
        return [child for child, parent in _parents().items() if parent == number]
    tasks = [task] if task else _listdir(f"/proc/{pid}/task")
    found: list[int] = []
    for thread in tasks:
        found += [int(word) for word in _read(f"/proc/{pid}/task/{thread}/children").split()]
    return found


@functools.cache
def _have_children_lists() -> bool:
    return os.path.exists(f"/proc/self/task/{os.getpid()}/children")


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process (the slow way, field 4 of /proc/<pid>/stat)."""
    parents = {}
    for pid in _all_pids():
        stat = _read(f"/proc/{pid}/stat")
        if stat:
            parents[pid] = int(stat[stat.rindex(b")") + 2:].split()[1])
    return parents


def _tree(roots: list[int]) -> Iterator[int]:
    """The processes under `roots`, roots included."""
    stack = list(roots)
    while stack:
        pid = stack.pop()
        yield pid
        stack += _children(str(pid))


def _tagged(pid: int, tag: str) -> bool:
    """Whether the process's environment holds the tag (a zombie's environment is empty)."""
    return f"{TAG_VARIABLE}={tag}".encode() in _read(f"/proc/{pid}/environ").split(b"\0")


def _reap(pid: int, *, doomed: bool) -> bool:
    """Collect an adopted child's exit status if it is a zombie, or, if we killed it, once
    it is one (for a while: a process stuck in the kernel dies late, and is reaped at the
    next check): `waitpid` on that pid only. Whether it was reaped."""
    deadline = time.monotonic() + (_DYING_SECONDS if doomed else 0)
    while True:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return True
        except ChildProcessError:
            return False
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.001)


def _all_pids() -> list[int]:
    return [int(name) for name in _listdir("/proc") if name.isdigit()]


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _read(path: str) -> bytes:
    """A /proc file's bytes, or b"" if it (or the process) is gone or not ours to read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        data = b""
        while chunk := os.read(fd, 65536):
            data += chunk
        return data
    except OSError:
        return b""
    finally:
        os.close(fd)
