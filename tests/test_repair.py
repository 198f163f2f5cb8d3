"""`journalq repair`: a corrupt middle is cut out only when asked, after a byte-exact backup,
with every dropped line reported; a clean journal or a torn tail is left alone."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from journalq import checkpoint, cli, lock
from journalq.errors import EXIT_BUSY, EXIT_JOURNAL, EXIT_OK, JournalError
from journalq.fs import CHUNK, REAL
from journalq.repair import repair

EXAMPLE = "configs/experiments/example.local.yaml"
GARBAGE = b'{"type":"job_finished","v":1,"ts":"not a time"}'


@pytest.fixture
def journal_path(project: Path) -> Path:
    """A real journal made by `journalq init`: queue, session, six jobs, session end."""
    assert EXIT_OK == cli.main(["init", "--config", EXAMPLE])
    path = project / "runtime_state" / "example_local.jsonl"
    assert 9 == len(lines(path))
    return path


def lines(path: Path) -> list[bytes]:
    """The journal's lines, each with its newline."""
    return path.read_bytes().splitlines(keepends=True)


def corrupt(path: Path, numbers: set[int], junk: bytes = GARBAGE) -> bytes:
    """Replace the given (1-based) lines with junk; returns the corrupted bytes."""
    data = b"".join(junk + b"\n" if n in numbers else line
                    for n, line in enumerate(lines(path), start=1))
    path.write_bytes(data)
    return data


def siblings(path: Path) -> set[str]:
    """Files next to the journal other than itself and its lock."""
    return {p.name for p in path.parent.iterdir() if p.is_file()} - {
        path.name, path.name + ".lock"}


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], list[str]]:
    """`journalq ARGV` in this process: exit code, stdout lines, stderr lines."""
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def test_corrupt_middle_is_refused_with_a_pointer_to_repair(
        journal_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Reading a journal with a bad middle line fails in one line that names the line, its
    byte offset and `journalq repair`."""
    corrupt(journal_path, {4})
    offset = sum(len(line) for line in lines(journal_path)[:3])

    code, _, err = run_cli(capsys, "status", "--state", str(journal_path))

    assert EXIT_JOURNAL == code
    assert 1 == len(err)
    assert f"{journal_path}:4 (byte {offset})" in err[0]
    assert "journalq repair" in err[0]


def test_default_repair_truncates_at_the_first_bad_line(
        journal_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Everything from the first bad line on leaves the journal (it stays in the backup), the
    backup is byte-identical to the original, and the repaired journal replays."""
    original = corrupt(journal_path, {4, 7})
    cut = sum(len(line) for line in lines(journal_path)[:3])

    code, out, err = run_cli(capsys, "repair", "--state", str(journal_path))

    assert (EXIT_OK, []) == (code, err)
    assert original[:cut] == journal_path.read_bytes()
    [backup] = siblings(journal_path)
    assert backup.startswith("example_local.jsonl.bak-")
    assert original == (journal_path.parent / backup).read_bytes()
    assert f"{journal_path}:4 (byte {cut}): dropped: " in out[0]
    assert repr(GARBAGE[:60]) in out[0]
    assert f"{journal_path}:7 " in out[1]
    assert "kept 3 valid events, dropped 4 valid events and 2 bad lines" in out[2]
    assert f"original is kept, byte for byte, in {journal_path.parent / backup}" in out[3]
    _, report = checkpoint.replay_anew(str(journal_path))
    assert (3, 0) == (report.lines, report.tail_size)


def test_salvage_drops_only_the_bad_lines(
        journal_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With --salvage every valid line is kept, in order; only the bad ones go."""
    before = lines(journal_path)
    corrupt(journal_path, {3, 6}, junk=b"\0\0\0\0")

    code, out, _ = run_cli(capsys, "repair", "--salvage", "--state", str(journal_path))

    assert EXIT_OK == code
    expected = [line for n, line in enumerate(before, start=1) if n not in (3, 6)]
    assert expected == lines(journal_path)
    assert "blank or NUL-filled line" in out[0]
    assert "kept 7 valid events, dropped 0 valid events and 2 bad lines" in out[2]
    _, report = checkpoint.replay_anew(str(journal_path))
    assert 7 == report.lines


def test_second_repair_changes_nothing(
        journal_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Repair is idempotent: on the repaired journal it says so and writes nothing."""
    corrupt(journal_path, {5})
    assert EXIT_OK == cli.main(["repair", "--state", str(journal_path)])
    capsys.readouterr()
    repaired = journal_path.read_bytes()
    files = siblings(journal_path)

    code, out, _ = run_cli(capsys, "repair", "--state", str(journal_path))

    assert EXIT_OK == code
    assert [f"{journal_path}: no corrupt line, nothing to repair (4 valid events)"] == out
    assert repaired == journal_path.read_bytes()
    assert files == siblings(journal_path)


def test_torn_tail_alone_needs_no_repair(
        journal_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A half-written last line is a crash artefact the next writer moves aside; repair
    leaves it, and the file, alone."""
    with journal_path.open("ab") as handle:
        handle.write(b'{"type":"heartbeat","v":1,"id"')
    torn = journal_path.read_bytes()

    code, out, _ = run_cli(capsys, "repair", "--salvage", "--state", str(journal_path))

    assert EXIT_OK == code
    assert 1 == len(out)
    assert "nothing to repair (9 valid events)" in out[0]
    assert "torn tail (the final line has no newline (torn))" in out[0]
    assert torn == journal_path.read_bytes()
    assert set() == siblings(journal_path)


def test_dry_run_reports_without_writing(
        journal_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--dry-run says what would go and writes no journal, backup or temp file."""
    original = corrupt(journal_path, {2})

    code, out, _ = run_cli(capsys, "repair", "--dry-run", "--state", str(journal_path))

    assert EXIT_OK == code
    assert ": would drop: " in out[0]
    assert "would keep 1 valid events" in out[1]
    assert "dry run: nothing written" in out[1]
    assert original == journal_path.read_bytes()
    assert set() == siblings(journal_path)


def test_config_names_the_journal(
        journal_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--config` finds the queue's default journal, as every other command does."""
    corrupt(journal_path, {8})

    code, out, _ = run_cli(capsys, "repair", "--config", EXAMPLE)

    assert EXIT_OK == code
    assert out[0].startswith("runtime_state/example_local.jsonl:8 (byte ")
    assert 7 == len(lines(journal_path))


def test_repaired_journal_accepts_writers_again(
        journal_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """After a truncating repair, `init` re-adds the jobs the cut removed and status reads
    the journal without complaint."""
    corrupt(journal_path, {6})
    assert EXIT_OK == cli.main(["repair", "--state", str(journal_path)])

    assert EXIT_OK == cli.main(["init", "--config", EXAMPLE])
    code, out, err = run_cli(capsys, "status", "--state", str(journal_path))

    assert (EXIT_OK, []) == (code, err)
    assert 6 == sum("toy-lr" in line for line in out)


def test_repair_waits_for_no_one(
        journal_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Repair takes the writer's lock: while another process holds it, repair refuses
    (busy) and the journal is untouched."""
    original = corrupt(journal_path, {4})
    fd = os.open(lock.lock_path(str(journal_path)), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        code, _, err = run_cli(capsys, "repair", "--state", str(journal_path))
    finally:
        os.close(fd)

    assert EXIT_BUSY == code
    assert 1 == len(err)
    assert original == journal_path.read_bytes()


def test_missing_journal_is_a_usage_error(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No journal, nothing to repair: one line, exit 2, no file created."""
    code, _, err = run_cli(capsys, "repair", "--state", "runtime_state/none.jsonl")

    assert 2 == code
    assert 1 == len(err)
    assert not (project / "runtime_state").exists()


class Recording:
    """The real file system, noting each operation that makes something durable or visible;
    it can fail the rename, as a full or failing disk would."""

    def __init__(self, fail_replace: bool = False) -> None:
        self.ops: list[tuple[str, str]] = []
        self.fail_replace = fail_replace
        self._names: dict[int, str] = {}

    def __getattr__(self, name: str) -> object:
        return getattr(REAL, name)

    def open_append(self, path: str) -> int:
        fd = REAL.open_append(path)
        self._names[fd] = os.path.basename(path)
        return fd

    def fsync(self, fd: int) -> None:
        self.ops.append(("fsync", self._names[fd]))
        REAL.fsync(fd)

    def fsync_dir(self, path: str) -> None:
        self.ops.append(("fsync_dir", ""))
        REAL.fsync_dir(path)

    def replace(self, source: str, target: str) -> None:
        self.ops.append(("replace", os.path.basename(source)))
        if self.fail_replace:
            raise OSError(5, "Input/output error")
        REAL.replace(source, target)

    def read(self, path: str, offset: int = 0, chunk: int = CHUNK) -> Iterator[bytes]:
        return REAL.read(path, offset, chunk)


def test_backup_is_durable_before_the_journal_is_replaced(journal_path: Path) -> None:
    """Order of durability: backup fsync'd and its directory fsync'd, then the new journal
    fsync'd as a temp file, renamed over the old one, and the directory fsync'd again."""
    corrupt(journal_path, {4})
    fs = Recording()

    repair(str(journal_path), salvage=False, dry_run=False, say=lambda _: None, fs=fs)

    [backup] = siblings(journal_path)
    temp = "example_local.jsonl.repair-tmp"
    assert [("fsync", backup), ("fsync_dir", ""), ("fsync", temp), ("replace", temp),
            ("fsync_dir", "")] == fs.ops


def test_failed_rename_leaves_the_journal_as_it_was(journal_path: Path) -> None:
    """If the last step fails, the journal is the original, the temp file is gone, and the
    error is one journal-error line."""
    original = corrupt(journal_path, {4})

    with pytest.raises(JournalError) as caught:
        repair(str(journal_path), salvage=True, dry_run=False, say=lambda _: None,
               fs=Recording(fail_replace=True))

    assert EXIT_JOURNAL == caught.value.exit_code
    assert "\n" not in caught.value.message
    assert original == journal_path.read_bytes()
    [backup] = siblings(journal_path)
    assert original == (journal_path.parent / backup).read_bytes()
