"""Where `journalq` (the console script) and `python -m journalq` start.

Ctrl-C can come at any moment, also while the command line is still being imported (a tenth
of a second of start-up): from the first line of `entry` on, it ends in one line and exit
130, never a traceback. Only CPython's own start-up, before any of this runs (the `site`
import), is out of reach. SIGHUP (a closed terminal) is turned into an interruption too,
unless it was ignored on purpose (`nohup`).
"""

import os
import sys

# Nothing else at module level: what runs before `entry`'s `try` cannot catch a Ctrl-C
# (importing `typing` alone takes milliseconds). The names below are for the type checker.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import FrameType, ModuleType
    from typing import NoReturn


def entry() -> "NoReturn":
    """Run the command line and exit with its status."""
    try:
        sys.unraisablehook = _unraisable
        import signal

        if signal.getsignal(signal.SIGHUP) is signal.SIG_DFL:
            signal.signal(signal.SIGHUP, _hangup)
        from journalq.cli import main

        code = main()
    except KeyboardInterrupt as exc:
        code = _interrupted(exc)
    _exit(code)


def _unraisable(unraisable: "sys.UnraisableHookArgs") -> None:
    """A Ctrl-C that landed in a callback Python cannot raise from (a weakref callback
    during an import, seen on 3.13) would be printed as "Exception ignored" with a
    traceback, and lost. Raising it here would only repeat that: it is raised again a
    millisecond later, from the program itself (SIGALRM: journalq uses no other alarm)."""
    if not isinstance(unraisable.exc_value, KeyboardInterrupt):
        sys.__unraisablehook__(unraisable)
        return
    import signal

    interruption = unraisable.exc_value

    def again(signum: int, frame: "FrameType | None") -> None:
        raise interruption

    signal.signal(signal.SIGALRM, again)
    signal.setitimer(signal.ITIMER_REAL, 0.001)


def _hangup(signum: int, frame: "FrameType | None") -> None:
    from journalq.errors import Hangup

    raise Hangup


def _interrupted(exc: KeyboardInterrupt) -> int:
    import signal

    _no_more_interruptions(signal)  # a second Ctrl-C now would be a traceback
    import contextlib

    with contextlib.suppress(OSError):
        os.write(2, b"journalq: interrupted\n")
    return int(getattr(exc, "exit_code", 130))


def _exit(code: int) -> "NoReturn":
    import signal

    # Past this point an interruption could only surface in the interpreter's shutdown, as
    # an "Exception ignored" traceback; the work is done, so it is ignored.
    _no_more_interruptions(signal)
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
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


def _no_more_interruptions(signal: "ModuleType") -> None:
    """Ignore Ctrl-C, and an interruption still due (see `_unraisable`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, signal.SIG_IGN)


_SIGHUP_EXIT, _SIGINT_EXIT = 129, 130  # as journalq.errors says; not imported, for speed


if __name__ == "__main__":
    entry()
