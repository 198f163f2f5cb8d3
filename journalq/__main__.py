"""Where `journalq` (the console script) and `python -m journalq` start.

Ctrl-C can come at any moment, also while the command line is still being imported (a tenth
of a second of start-up): from the moment this module is imported on, it ends in one line
and exit 130, never a traceback. Only CPython's own start-up before that (the `site`
import, runpy, the console script's first lines) is out of reach. SIGHUP (a closed
terminal) is turned into an interruption too, unless it was ignored on purpose (`nohup`).
"""

# `_signal` is the C module that `signal` wraps, loaded with the interpreter; importing
# `signal` (its enums) takes a millisecond in which a Ctrl-C could not be caught (1 to 2 of
# 300 random Ctrl-Cs in the first 200 ms landed there). Used in this module only.
import _signal  # type: ignore[import-not-found]  # no stub; the same functions as `signal`
import os
import sys

# Nothing else at module level: what runs before `entry`'s `try` cannot catch a Ctrl-C
# (importing `typing` alone takes milliseconds). The names below are for the type checker.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import FrameType
    from typing import NoReturn

# A Ctrl-C that comes between here and `entry`'s `try` would be raised where nothing can
# catch it: Python runs a pending signal's handler at the start of the next function it
# calls, which is `entry` itself, before its first line. Until `entry` takes over, Ctrl-C
# is only noted (unless it is ignored: a background job's, say).
_early: list[int] = []


def _note(signum: int, frame: "FrameType | None") -> None:
    _early.append(signum)


if _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:
    _signal.signal(_signal.SIGINT, _note)


def entry() -> "NoReturn":
    """Run the command line and exit with its status."""
    try:
        if _signal.getsignal(_signal.SIGINT) is _note:
            _signal.signal(_signal.SIGINT, _signal.default_int_handler)
        if _early:
            raise KeyboardInterrupt
        _open_closed_standard_descriptors()
        sys.unraisablehook = _unraisable
        if _signal.getsignal(_signal.SIGHUP) == _signal.SIG_DFL:
            _signal.signal(_signal.SIGHUP, _hangup)
        from journalq.cli import main

        code = main()
    except KeyboardInterrupt as exc:
        code = _interrupted(exc)
    _exit(code)


def _open_closed_standard_descriptors() -> None:
    """`journalq run >&-` (a cron line, a supervisor) starts with descriptor 1 or 2 closed:
    Python's stream is None (a traceback at the first message), and the next file opened
    would take the number, so error messages would be written into it. A closed standard
    descriptor becomes /dev/null, as a daemon's are."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)  # the lowest free number: `fd`
    if sys.stdin is None:
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - lives as long as the process
    if sys.stdout is None:
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    if sys.stderr is None:
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115


def _unraisable(unraisable: "sys.UnraisableHookArgs") -> None:
    """A Ctrl-C that landed in a callback Python cannot raise from (a weakref callback
    during an import, seen on 3.13) would be printed as "Exception ignored" with a
    traceback, and lost. Raising it here would only repeat that: it is raised again a
    millisecond later, from the program itself (SIGALRM: journalq uses no other alarm)."""
    if not isinstance(unraisable.exc_value, KeyboardInterrupt):
        sys.__unraisablehook__(unraisable)
        return
    interruption = unraisable.exc_value

    def again(signum: int, frame: "FrameType | None") -> None:
        raise interruption

    _signal.signal(_signal.SIGALRM, again)
    _signal.setitimer(_signal.ITIMER_REAL, 0.001)


def _hangup(signum: int, frame: "FrameType | None") -> None:
    from journalq.errors import Hangup

    raise Hangup


def _interrupted(exc: KeyboardInterrupt) -> int:
    _no_more_interruptions()  # a second Ctrl-C now would be a traceback
    import contextlib

    with contextlib.suppress(OSError):
        os.write(2, b"journalq: interrupted\n")
    return int(getattr(exc, "exit_code", 130))


def _exit(code: int) -> "NoReturn":
    # Past this point an interruption could only surface in the interpreter's shutdown, as
    # an "Exception ignored" traceback; the work is done, so it is ignored.
    _no_more_interruptions()
    _signal.signal(_signal.SIGHUP, _signal.SIG_IGN)
    if code in (_SIGHUP_EXIT, _SIGINT_EXIT):
        # CPython remembers a KeyboardInterrupt that escaped an `eval` (say, in the middle of
        # an import), even one we caught, and at exit kills itself with SIGINT instead of
        # returning our status (seen on 3.13). An interrupted command has written all it
        # will (the journal with os.write and fsync): flush and leave, with our status.
        import contextlib

        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)
    sys.exit(code)


def _no_more_interruptions() -> None:
    """Ignore Ctrl-C, and an interruption still due (see `_unraisable`)."""
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    _signal.setitimer(_signal.ITIMER_REAL, 0)
    _signal.signal(_signal.SIGALRM, _signal.SIG_IGN)


_SIGHUP_EXIT, _SIGINT_EXIT = 129, 130  # as journalq.errors says; not imported, for speed


if __name__ == "__main__":
    entry()
