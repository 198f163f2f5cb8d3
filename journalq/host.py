"""Facts about this machine and its processes, for telling a dead runner from a live one.

A pid alone is not an identity (pids are reused), so a process is named by its pid plus its
start time in clock ticks since boot, and a machine by its boot id: a reboot, or a new Colab
VM, has another boot id, and then only heartbeats can tell whether a runner is alive.
"""

from __future__ import annotations

import os
from functools import cache


@cache
def hostname() -> str:
    """This machine's name, as shown to people."""
    return os.uname().nodename  # what gethostname() returns, without importing socket


@cache
def boot_id() -> str:
    """An id shared by exactly the processes whose pids we can check: the kernel's boot id
    plus our pid namespace (containers share a kernel but not pids). '' where the platform
    has neither (then only heartbeats tell). JOURNALQ_BOOT_ID overrides it, so tests can
    play two machines on one."""
    override = os.environ.get("JOURNALQ_BOOT_ID")
    if override:
        return override
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            boot = handle.read().strip()
    except OSError:
        return ""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return f"{boot}/{namespace}" if namespace else boot


def process_start(pid: int) -> int | None:
    """When `pid` started, in clock ticks after boot; None if no such process.

    0 means the process exists but the platform cannot say when it started.
    """
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError:
        return _exists(pid)
    try:
        stat = os.read(fd, 4096)  # raw bytes: the runner asks once per job, text I/O is slow
    except OSError:
        return None  # the process went away between open and read
    finally:
        os.close(fd)
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None  # a zombie has exited; only its exit status waits to be collected
    return int(fields[19])


def _exists(pid: int) -> int | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return 0
    return 0


def is_alive(pid: int, start: int) -> bool:
    """Whether the process that had `pid` and started at `start` is still running."""
    if pid <= 0:
        return False
    seen = process_start(pid) if os.path.isdir("/proc") else _exists(pid)
    if seen is None:
        return False
    return start == 0 or seen == 0 or seen == start


def group_survives(pgid: int, leader_start: int) -> bool:
    """Whether the process group a job ran in still has members: its leader (the very
    process, by start time), or what it left behind after exiting. Linux does not hand out
    a pid while a process group of that number has members, so a leaderless group with
    this number is still ours."""
    if is_alive(pgid, leader_start):
        return True
    if process_start(pgid) is not None:
        return False  # the number belongs to another process now
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True
