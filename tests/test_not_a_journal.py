"""What is not a journal is never taken for one, and a torn tail is only what follows the last
newline (issue 9, items 4 and 9).

- A file whose first line is not a journal event (a config passed as `--state`, a journal
  pretty-printed by `jq .`, any other text or binary) is refused by every command, exit 4,
  in one line saying what it looks like, and nothing beside it is created or changed: no
  lock file, no `.torn-` file, not one byte.
- A complete line that does not parse is corruption, even the last one: readers and
  writers refuse it naming `file:line (byte N)`; `repair` names it and cuts it.
- A FIFO, socket, device or directory at the journal's path is refused at once (opening a
  FIFO for reading would hang), a symlink to a regular file is fine.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from test_run_support import SmallQueue

from conftest import journalq, write

CONFIG = """\
queue: q
worker: [python, scripts/run_sweep.py]
jobs:
  - id: a
    args: {model: gpt2, layers: "1-2", alphas: [0.5, 1]}
"""

# Every command, as a user might mistype it with `FILE` where the journal belongs.
COMMANDS = {
    "status": ["status", "--state", "FILE"],
    "init": ["init", "--config", "configs/q.yaml", "--state", "FILE"],
    "run": ["run", "--config", "configs/q.yaml", "--state", "FILE", "--quiet"],
    "retry": ["retry", "--state", "FILE", "a"],
    "cancel": ["cancel", "--state", "FILE", "a"],
    "recover": ["recover", "--state", "FILE"],
    "sync": ["sync", "--state", "FILE", "--sync-dir", "drive"],
    "repair": ["repair", "--state", "FILE"],
}


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every name in `folder` with its bytes (None for what is not a regular file)."""
    return {entry.name: entry.read_bytes() if entry.is_file() and not entry.is_symlink()
            else None for entry in sorted(folder.iterdir())}


def refused_untouched(project: Path, name: str, words: list[str]) -> str:
    """Run one command on the file `name`; it must exit 4 with one line, leaving the file's
    folder exactly as it was. Returns that line."""
    before = snapshot(project)
    done = journalq(*[name if word == "FILE" else word for word in words], cwd=project,
                    timeout=20)
    assert (4, "") == (done.returncode, done.stdout), done.stderr
    assert 1 == len(done.stderr.splitlines()), done.stderr
    assert done.stderr.startswith("journalq: error: ")
    assert "Traceback" not in done.stderr
    assert before == snapshot(project)
    return done.stderr


@pytest.fixture
def queue_project(project: Path) -> Path:
    write(project / "configs" / "q.yaml", CONFIG)
    return project


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_config_passed_as_the_journal_is_refused_by_every_command_untouched(
        queue_project: Path, command: str) -> None:
    """`journalq retry --state cfg.yaml JOB` (a mistyped flag) used to move the whole config
    aside as a "torn tail" and leave cfg.yaml empty; every command now refuses it, says it
    looks like a YAML config, and changes nothing."""
    write(queue_project / "cfg.yaml", CONFIG)

    message = refused_untouched(queue_project, "cfg.yaml", COMMANDS[command])

    assert "cfg.yaml is not a journal" in message
    assert "YAML config" in message and "--config" in message


@pytest.mark.parametrize(("content", "looks_like"), [
    (b"queue: q", "YAML config"),  # one line, no newline: it was taken for a torn first line
    (b"# my sweep\nqueue: q\njobs: []\n", "YAML config"),
    (b'queue = "q"\n[defaults]\nmax_attempts = 2\n', "TOML config"),
    (b'{\n  "type": "queue_created",\n  "v": 1\n}\n', "pretty-printed JSON"),
    (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "binary"),
    (b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0", "binary"),
    (b"hello, world\nthis is not a journal\n", "text"),
    (b'{"type":"queue_created","v":1,"id":"x:1"}\n{"type":"job', "not a journal event"),
], ids=["yaml-one-line", "yaml", "toml", "pretty-json", "png", "elf", "text", "bad-event"])
def test_a_file_whose_first_line_is_no_event_is_not_a_journal(
        queue_project: Path, content: bytes, looks_like: str) -> None:
    """Whatever the first line holds, if it is not a journal event the file is refused by a
    reader and by a writer, untouched, with a word on what it looks like."""
    (queue_project / "thing").write_bytes(content)
    for command in ("status", "retry"):
        message = refused_untouched(queue_project, "thing", COMMANDS[command])
        assert "thing is not a journal" in message and looks_like in message, message


def test_a_journal_pretty_printed_by_jq_is_refused_and_not_recreated(project: Path) -> None:
    """A journal reformatted by `jq .` (no `-c`) used to lose its whole history on the next
    `run`: the queue was created afresh, and only the run cards stopped reruns. Now `run`
    refuses it untouched and says how to get one event per line back."""
    with SmallQueue(project, ["a", "b"]) as queue:
        assert 0 == queue.run("--quiet").returncode
        records = [json.loads(line) for line in queue.journal.read_text().splitlines()]
        pretty = "".join(json.dumps(record, indent=2) + "\n" for record in records)
        queue.journal.write_text(pretty)
        folder = queue.journal.parent
        before = snapshot(folder)

        again = queue.run("--quiet")

        assert 4 == again.returncode, again.stderr
        assert "pretty-printed JSON" in again.stderr and "jq -c" in again.stderr
        assert before == snapshot(folder)
        assert [("a", 1), ("b", 1)] == queue.runs()


@pytest.mark.slow  # every command, four times
@pytest.mark.parametrize("last", [b"garbage", b"", b"\0" * 40, b'{"type":"job_cancelled"}'],
                         ids=["text", "blank", "nul", "bad-event"])
def test_a_complete_bad_last_line_is_corruption_not_a_torn_tail(project: Path,
                                                                 last: bytes) -> None:
    """Only the bytes after the last newline are a torn tail. A whole last line that is no
    event used to be moved aside as one; now readers and writers refuse it naming file, line
    and byte, write nothing, and `repair` names it and cuts it."""
    with SmallQueue(project, ["a"]) as queue:
        assert 0 == queue.run("--quiet").returncode
        good = queue.journal.read_bytes()
        lines = good.count(b"\n")
        queue.journal.write_bytes(good + last + b"\n")
        damaged = queue.journal.read_bytes()
        where = f"q.jsonl:{lines + 1} (byte {len(good)})"

        for words in (["status"], ["retry", "a"], ["init", "--config", queue.config]):
            done = journalq(*words, "--state", str(queue.journal), cwd=project)
            assert 4 == done.returncode, done.stderr
            assert where in done.stderr and "repair" in done.stderr, done.stderr
            assert damaged == queue.journal.read_bytes()
        assert [] == list(queue.journal.parent.glob("*.torn-*"))

        dry = queue.command("repair", "--dry-run")
        assert 0 == dry.returncode and where in dry.stdout, dry.stdout + dry.stderr
        assert damaged == queue.journal.read_bytes()
        fixed = queue.command("repair")
        assert 0 == fixed.returncode and where in fixed.stdout, fixed.stdout + fixed.stderr
        assert good == queue.journal.read_bytes()
        [backup] = queue.journal.parent.glob("q.jsonl.bak-*")
        assert damaged == backup.read_bytes()
        assert 0 == queue.command("status").returncode


@pytest.mark.parametrize("first", [b'{"type":"queue_cre', b'{"ty', b"\0" * 512, b""],
                         ids=["prefix", "short-prefix", "nuls", "empty"])
def test_a_torn_first_line_that_could_be_ours_is_a_torn_tail(queue_project: Path,
                                                              first: bytes) -> None:
    """A crash during the very first append leaves a prefix of an event line (every line
    journalq writes starts `{"type":"`) or NULs: that is a torn tail, moved aside by the
    next writer; an empty file is an empty journal."""
    journal = queue_project / "q.jsonl"
    journal.write_bytes(first)

    done = journalq("init", "--config", "configs/q.yaml", "--state", "q.jsonl",
                    cwd=queue_project)

    assert 0 == done.returncode, done.stderr
    assert b'"type":"queue_created"' in journal.read_bytes()
    asides = [path.read_bytes() for path in queue_project.glob("q.jsonl.torn-*")]
    assert ([first] if first else []) == asides


def special_files(folder: Path) -> dict[str, Path]:
    """A FIFO, a socket, a directory and a character device, each where a journal could be."""
    fifo = folder / "fifo.jsonl"
    os.mkfifo(fifo)
    sock = folder / "sock.jsonl"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock))  # the socket file stays after close
    server.close()
    directory = folder / "dir.jsonl"
    directory.mkdir()
    device = folder / "null.jsonl"
    device.symlink_to("/dev/null")
    return {"fifo": fifo, "socket": sock, "directory": directory, "device": device}


@pytest.mark.parametrize("kind", ["fifo", "socket", "directory", "device"])
def test_a_special_file_at_the_journal_path_is_refused_at_once(queue_project: Path,
                                                               kind: str) -> None:
    """`status` and `init` on a FIFO used to hang forever (opening it for reading waits for
    a writer). Anything but a regular file is refused at once, exit 4, one line, and no lock
    file is made beside it."""
    path = special_files(queue_project)[kind]
    for words in (["status", "--state", path.name],
                  ["init", "--config", "configs/q.yaml", "--state", path.name],
                  ["repair", "--state", path.name]):
        before = snapshot(queue_project)
        done = journalq(*words, cwd=queue_project, timeout=10)
        assert 4 == done.returncode, done.stderr
        assert 1 == len(done.stderr.splitlines()), done.stderr
        assert f"{path.name} is a {'character device' if kind == 'device' else kind}" in \
            done.stderr
        assert before == snapshot(queue_project)


def test_a_symlink_to_a_journal_is_a_journal(queue_project: Path) -> None:
    """The check follows symlinks: a link to a regular journal file works as the file."""
    assert 0 == journalq("init", "--config", "configs/q.yaml", "--state", "real.jsonl",
                         cwd=queue_project).returncode
    (queue_project / "link.jsonl").symlink_to("real.jsonl")

    done = journalq("status", "--state", "link.jsonl", cwd=queue_project)

    assert 0 == done.returncode, done.stderr
    assert "1 jobs" in done.stdout


def test_the_check_runs_before_python_opens_the_fifo(queue_project: Path) -> None:
    """Belt and braces for the hang: a writer opened from Python on a FIFO is refused too
    (the library path, not only the command line)."""
    fifo = special_files(queue_project)["fifo"]
    code = ("import sys\nfrom journalq.journal import Writer\nfrom journalq.errors import "
            "JournalError\nfrom journalq.checkpoint import replay\ntry:\n    Writer.open("
            "sys.argv[1], session='5e5510000001', command='t', replay=replay)\nexcept "
            "JournalError as e:\n    print(e.message)\n")
    done = subprocess.run([sys.executable, "-c", code, str(fifo)], capture_output=True,
                          text=True, timeout=10)
    assert "is a fifo" in done.stdout, done.stdout + done.stderr
    assert not (queue_project / "fifo.jsonl.lock").exists()


def test_a_long_first_line_spelled_another_way_is_still_a_journal(tmp_path: Path) -> None:
    """A journal whose first event is longer than the 4 KiB sample and written with other
    spacing (`jq` without -c on one line, another writer) is judged by the decoder on the
    whole line, as every reader judges it: status reads it, nothing calls it "not a
    journal" (found by the fuzzer: the sample stopped at 4 KiB)."""
    event = {"type": "queue_created", "v": 1, "id": "a1a1a1a1a1a1:1",
             "ts": "2026-01-01T00:00:00.000001Z", "session": "a1a1a1a1a1a1", "queue": "q",
             "config": "x" * 5000 + ".yaml", "config_sha256": "0" * 64}
    journal = tmp_path / "q.jsonl"
    journal.write_text(json.dumps(event) + "\n")

    done = journalq("status", "--state", str(journal), "--json", cwd=tmp_path)

    assert 0 == done.returncode, done.stderr
    assert "q" == json.loads(done.stdout)["queue"]
