"""Bad input never crashes journalq: every config ends in a `Config` or one `ConfigError` line
that starts with the file's name, and every journal line ends in a replay, a documented tail
warning or one `JournalError` line, with the journal's bytes unchanged whenever a writer
refuses it.

Each test runs its hypothesis loop inside itself and counts the cases it ran; together they
run at least `MIN_CASES` (the count is printed at the end of the module).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import tomli_w
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability import FUZZ_CASES as CASES  # the figures table adds the cases up

from journalq import checkpoint, cli, codec, config, journal, reader, timestamps
from journalq import events as ev
from journalq.errors import EXIT_JOURNAL, EXIT_OK, ConfigError, JournalError, JournalqError

# Long crash, fault and multi-runtime scenarios: `pytest -m "not slow"` skips them.
pytestmark = pytest.mark.slow

MIN_CASES = 1000
# JOURNALQ_FUZZ_SCALE=10 runs ten times the cases, for a longer hunt than CI's.
SCALE = int(os.environ.get("JOURNALQ_FUZZ_SCALE", "1"))


def budget(examples: int) -> int:
    """A loop's number of cases."""
    return examples * SCALE


def fuzz(examples: int) -> settings:
    """Settings for one loop: a fixed budget, no deadline (CI machines vary)."""
    return settings(max_examples=budget(examples), deadline=None, suppress_health_check=[
        HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])


def one_line(message: str) -> bool:
    """A message people read on one terminal line (no newline of any kind)."""
    return bool(message) and len(message.splitlines()) == 1 and "\n" not in message


# ---- values ----------------------------------------------------------------------------------

# Surrogates cannot be written as UTF-8 at all, so no file can hold them.
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
HUGE = st.sampled_from([2**63, -(2**63) - 1, 10**100, 10**4000, -(10**4000)])
INTS = st.integers() | HUGE
FLOATS = st.floats() | st.sampled_from([1e308, -0.0, 5e-324])
SCALARS = st.none() | st.booleans() | INTS | FLOATS | TEXT
CONFIG_KEYS = ("queue", "worker", "out_root", "stale_seconds", "heartbeat_seconds", "sync_dir",
               "sync_seconds", "grace_seconds", "defaults", "jobs", "matrix", "id", "args",
               "command", "shell", "max_attempts", "timeout", "env", "cwd", "axes", "model",
               "layers", "alphas", "summary_name", "extra")
KEYS = st.sampled_from(CONFIG_KEYS) | TEXT
ANY = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                   | st.dictionaries(KEYS, inner, max_size=5), max_leaves=16)
BAD_IDS = ("../x", "a/b", "", ".x", "-x", "..", "a..b", "x" * 129, "a b", "a\0b", "a\nb",
           "/abs", "é", "a\\b", "~x", "$(touch pwned)")


# ---- configs ---------------------------------------------------------------------------------

def valid_config() -> dict[str, Any]:
    """A config using every feature: sweep args, a raw command, a matrix, defaults."""
    return {
        "queue": "fuzzq",
        "worker": ["python", "scripts/run_sweep.py"],
        "out_root": "out",
        "stale_seconds": 60,
        "defaults": {"max_attempts": 2, "timeout": 30, "env": {"A": "1"}, "cwd": "."},
        "jobs": [
            {"id": "sweep", "args": {"model": "gpt2", "layers": "4-8", "alphas": [0.5, 1],
                                     "summary_name": "s.tsv", "extra": ["--x"]}},
            {"id": "raw", "command": ["python", "-c", "print(1)"], "env": {"B": 2},
             "timeout": 5, "max_attempts": 1, "cwd": "."},
        ],
        "matrix": {"id": "m-{lr}", "axes": {"lr": [0.1, 0.01]},
                   "command": ["python", "-c", "pass", "{lr}", "{out_dir}"]},
    }


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value inside a config, the config itself excluded."""
    items = value.items() if isinstance(value, dict) else enumerate(value) \
        if isinstance(value, list) else ()
    for key, item in items:
        yield (*prefix, key)
        yield from paths(item, (*prefix, key))


VALID_PATHS = tuple(paths(valid_config()))


def replaced(path: tuple[Any, ...], value: Any, delete: bool) -> dict[str, Any]:
    """The valid config with the value at `path` replaced (or its key deleted)."""
    data = valid_config()
    holder: Any = data
    for key in path[:-1]:
        holder = holder[key]
    if delete:
        del holder[path[-1]]
    else:
        holder[path[-1]] = value
    return data


def tomlable(value: Any) -> Any:
    """A value TOML can hold: no nulls, string keys, a table at the top."""
    if isinstance(value, dict):
        return {str(k): tomlable(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [tomlable(v) for v in value if v is not None]
    return value


def serialized(value: Any, as_toml: bool, unicode: bool) -> bytes:
    """The bytes of a config file holding `value`, as YAML or TOML."""
    if as_toml:
        table = tomlable(value if isinstance(value, dict) else {"value": value})
        return tomli_w.dumps(table).encode()
    return yaml.safe_dump(value, allow_unicode=unicode, sort_keys=False).encode()


def check_config(data: bytes, source: str) -> config.Config | ConfigError:
    """The rule: a Config, or one ConfigError line starting with the file name."""
    try:
        return config.parse(data, source)
    except ConfigError as exc:
        assert one_line(exc.message), exc.message
        assert exc.message.startswith(source), exc.message
        return exc


def test_random_structures_as_yaml_and_toml() -> None:
    """Any structure of mappings, lists and scalars, written as YAML or TOML (and sometimes
    under the other format's name), is a config or one error line."""
    count = 0

    @fuzz(350)
    @given(value=st.dictionaries(KEYS, ANY, max_size=6) | ANY, as_toml=st.booleans(),
           unicode=st.booleans(), misnamed=st.booleans())
    def case(value: Any, as_toml: bool, unicode: bool, misnamed: bool) -> None:
        nonlocal count
        count += 1
        data = serialized(value, as_toml, unicode)
        name = "configs/c.toml" if as_toml != misnamed else "configs/c.yaml"
        check_config(data, name)

    case()
    CASES["config structures"] = count
    assert count >= budget(350)


def test_valid_config_with_one_field_replaced() -> None:
    """Replacing or deleting any one field of a valid config with any value gives a config
    or one error line naming the file."""
    count = 0
    assert isinstance(check_config(serialized(valid_config(), False, True), "v.yaml"),
                      config.Config)

    @fuzz(350)
    @given(path=st.sampled_from(VALID_PATHS), value=ANY, delete=st.booleans(),
           as_toml=st.booleans())
    def case(path: tuple[Any, ...], value: Any, delete: bool, as_toml: bool) -> None:
        nonlocal count
        count += 1
        data = replaced(path, value, delete)
        check_config(serialized(data, as_toml, True), "v.toml" if as_toml else "v.yaml")

    case()
    CASES["config mutations"] = count
    assert count >= budget(350)


def test_unsafe_and_duplicate_ids_are_refused() -> None:
    """A job id that could leave out_root or the logs folder, or that is used twice (also by
    a matrix), is refused in one line naming the field."""
    count = 0

    @fuzz(120)
    @given(bad=st.sampled_from(BAD_IDS) | TEXT.filter(lambda t: not t.isalnum()),
           where=st.sampled_from(["job", "matrix", "duplicate", "matrix-duplicate"]))
    def case(bad: str, where: str) -> None:
        nonlocal count
        count += 1
        data = valid_config()
        if where == "job":
            data["jobs"][1]["id"] = bad
        elif where == "matrix":
            data["matrix"]["axes"]["lr"] = [bad]
        elif where == "duplicate":
            data["jobs"][1]["id"] = "sweep"
        else:
            data["matrix"]["axes"]["lr"] = ["x", "x"]
        result = check_config(serialized(data, False, True), "ids.yaml")
        if where in ("duplicate", "matrix-duplicate"):
            assert isinstance(result, ConfigError)
            assert "is used twice" in result.message
        elif isinstance(result, config.Config):
            # Whatever got through is a plain file name inside out_root.
            for job_id, spec in result.jobs.items():
                assert "/" not in job_id and not job_id.startswith((".", "-"))
                assert ".." not in job_id
                assert f"out/{job_id}" == spec.out_dir

    case()
    CASES["config ids"] = count
    assert count >= budget(120)


def alias_bomb(depth: int, width: int, cyclic: bool) -> bytes:
    """Billion laughs: each level is `width` aliases of the level below (or itself)."""
    lines = ["queue: q", "jobs: [{id: a, command: [x]}]", "x:",
             "  l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    for level in range(1, depth):
        below = f"l{level}" if cyclic and level == depth - 1 else f"l{level - 1}"
        lines.append(f"  l{level}: &l{level} [" + ", ".join([f"*{below}"] * width) + "]")
    return ("\n".join(lines) + "\n").encode()


def test_yaml_alias_bombs_and_self_references() -> None:
    """Aliases that expand exponentially, or contain themselves, anywhere in a config, end in
    one error line, fast."""
    count = 0

    @fuzz(80)
    @given(depth=st.integers(2, 12), width=st.integers(1, 12), cyclic=st.booleans(),
           spot=st.sampled_from(["x", "axes", "args", "command", "env"]))
    def case(depth: int, width: int, cyclic: bool, spot: str) -> None:
        nonlocal count
        count += 1
        data = alias_bomb(depth, width, cyclic)
        if spot != "x":
            top = f"l{depth - 1}"
            data += {
                "axes": f"matrix: {{id: 'm{{v}}', axes: {{v: *{top}}}, command: [x, '{{v}}']}}",
                "args": f"matrix: {{id: 'm{{model}}', axes: {{model: [a]}}, args: *{top}}}",
                "command": f"defaults: {{env: {{A: '1'}}}}\nworker: *{top}",
                "env": f"sync_dir: *{top}",
            }[spot].encode() + b"\n"
        check_config(data, "bomb.yaml")

    case()
    CASES["config alias bombs"] = count
    assert count >= budget(80)


YAMLISH = st.text(st.sampled_from(list(":-[]{}&*!|>'\"#%@`,? \n\t\\queujobsid0129.eé\0\x85")),
                  max_size=80)
# Values the parsers match but Python cannot build: past 4300 digits, impossible dates,
# explicit tags on the wrong text, nesting deeper than the interpreter's stack.
UNBUILDABLE = st.sampled_from([
    b"queue: q\nstale_seconds: " + b"9" * 5000 + b"\n",
    b"queue = 'q'\nstale_seconds = " + b"9" * 5000 + b"\n",
    b"queue: 2020-13-45\n", b"queue: !!int abc\n", b"queue: !!float x\n",
    b"queue: !!binary '%%'\n", b"queue: !!python/object:os.system x\n",
    b"x: " + b"[" * 5000 + b"]" * 5000 + b"\n", b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n",
    b"queue: q\n---\nqueue: r\n", "queue: q\u2028x: 1\n".encode(), b"\xef\xbb\xbfqueue: q\n",
    "queue: q\n".encode("utf-16"), b"a = 1\na = 2\n", b"queue: q\nx: &a [*a]\n",
    b'queue: "\\ud800"\n', b'queue: q\njobs: [{id: a, command: ["\\udfff"]}]\n',
    b'queue: q\njobs: [{id: a, command: [x], env: {A: "\\U0000d800"}}]\n',
])


def test_random_bytes_and_text() -> None:
    """Random bytes, and random text made of YAML's and TOML's punctuation, under either
    name, are a config or one error line."""
    count = 0

    @fuzz(200)
    @given(data=st.binary(max_size=120) | YAMLISH.map(lambda t: t.encode("utf-8"))
           | UNBUILDABLE,
           name=st.sampled_from(["r.yaml", "r.toml", "dir/r.yml"]))
    def case(data: bytes, name: str) -> None:
        nonlocal count
        count += 1
        check_config(data, name)

    case()
    CASES["config bytes"] = count
    assert count >= budget(200)


# ---- journal lines ---------------------------------------------------------------------------

BASE_MICROS = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
TS_VALID = st.integers(BASE_MICROS, BASE_MICROS + 10**12).map(timestamps.format_ts)
TS_SHAPED = st.from_regex(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", fullmatch=True)
JOB_IDS = st.sampled_from(["a", "b"]) | TEXT
SMALL = st.integers(-1, 3)


def spec_fields(job: str) -> dict[str, Any]:
    return {"job": job, "argv": ("python", "-c", "pass"), "shell": False, "cwd": ".",
            "env": {}, "out_dir": f"out/{job}", "max_attempts": 2, "timeout": None,
            "spec_sha256": "0" * 64}


def base_events() -> list[ev.Event]:
    """A small valid history: a queue, two jobs, one attempt that finished, one running."""
    return [
        ev.QueueCreated(queue="q", config="q.yaml", config_sha256="0" * 64),
        ev.SessionStarted(command="run", host="h", boot_id="other-boot", pid=1, pid_start=1,
                          argv=("journalq",), journalq_version="0", python_version="3"),
        ev.JobAdded(**spec_fields("a")),
        ev.JobAdded(**spec_fields("b")),
        ev.JobStarted(job="a", attempt=1, host="h", boot_id="other-boot", pid=2, log="l",
                      spec_sha256="0" * 64),
        ev.Heartbeat(job="a", attempt=1, child_pid=3),
        ev.JobFinished(job="a", attempt=1, return_code=0, signal=None, outcome="done",
                       reason="exit", duration=1.0),
        ev.JobStarted(job="b", attempt=1, host="h", boot_id="other-boot", pid=2, log="l",
                      spec_sha256="0" * 64),
    ]


def base_lines() -> list[bytes]:
    stamped = [attrs.evolve(event, id=f"s:{n}", ts=timestamps.format_ts(BASE_MICROS + n),
                            session="s") for n, event in enumerate(base_events(), start=1)]
    return [codec.encode(event) for event in stamped]


BASE_LINES = base_lines()
BASE_OBJECTS = [json.loads(line) for line in BASE_LINES]


def field_values(kind: Any) -> st.SearchStrategy[Any]:
    """Values of an event field's type, from the ordinary to the absurd."""
    table: dict[Any, st.SearchStrategy[Any]] = {
        str: TEXT, int: SMALL | st.integers(), float: st.floats(allow_nan=False),
        bool: st.booleans(), tuple[str, ...]: st.lists(TEXT, max_size=3).map(tuple),
        dict[str, str]: st.dictionaries(TEXT, TEXT, max_size=3),
        int | None: st.none() | SMALL | st.integers(),
        float | None: st.none() | st.floats(allow_nan=False),
        str | None: st.none() | TEXT, bool | None: st.none() | st.booleans(),
        tuple[str, ...] | None: st.none() | st.lists(TEXT, max_size=3).map(tuple),
    }
    return table[kind]


def well_formed(cls: type[ev.Event]) -> st.SearchStrategy[bytes]:
    """Lines that decode: an event of `cls` with any values of the right types."""
    hints = attrs.resolve_types(cls)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in attrs.fields(hints):
        if field.name in ("id", "session"):
            fields[field.name] = TEXT
        elif field.name == "ts":
            fields[field.name] = TS_VALID | TS_SHAPED
        elif field.name == "job":
            fields[field.name] = JOB_IDS
        elif field.name == "attempt":
            fields[field.name] = SMALL | st.integers()
        else:
            fields[field.name] = field_values(field.type)
    return st.builds(cls, **fields).map(codec.encode)


def json_lines(obj: Any) -> bytes:
    """One JSON line holding `obj`, as an editor or another tool might write it."""
    return json.dumps(obj, ensure_ascii=False).encode() + b"\n"


def mangled() -> st.SearchStrategy[bytes]:
    """A base line with one field retyped, removed, renamed or given a future version."""
    def build(obj: dict[str, Any], key: str, value: Any, how: str) -> bytes:
        obj = dict(obj)
        if how == "retype":
            obj[key] = value
        elif how == "drop":
            obj.pop(key, None)
        elif how == "type":
            obj["type"] = value if isinstance(value, str) else "job_exploded"
        else:
            obj["v"] = value if isinstance(value, int) and value > 1 else 2
        return json_lines(obj)

    return st.builds(
        build, st.sampled_from(BASE_OBJECTS),
        st.sampled_from(["type", "v", "id", "ts", "session", "job", "attempt", "argv", "env",
                         "timeout", "pid", "return_code", "child_pid", "shell", "queue"]),
        ANY, st.sampled_from(["retype", "drop", "type", "future"]))


def with_surrogate(obj: dict[str, Any], key: str, text: str, shape: str) -> bytes:
    """A base line whose field holds a lone surrogate, written as JSON's \\udXXX escape."""
    value = {"text": text, "list": [text], "map": {text: text}}[shape]
    return (json.dumps({**obj, key: value}) + "\n").encode()


SURROGATE_LINES = st.builds(
    with_surrogate, st.sampled_from(BASE_OBJECTS),
    st.sampled_from(["job", "queue", "id", "session", "argv", "env", "host", "log"]),
    st.text(st.characters(categories=("Cs",)), min_size=1, max_size=2)
    | st.text(st.characters(categories=("Cs", "Ll")), min_size=1, max_size=4),
    st.sampled_from(["text", "list", "map"]))

LINES = st.one_of(
    st.binary(max_size=80),
    mangled(),
    SURROGATE_LINES,
    ANY.map(json_lines),
    st.sampled_from(list(codec.TYPES.values())).flatmap(well_formed),
    st.sampled_from([b"\0" * 40 + b"\n", b"\n", b"   \n", b"[" * 100_000 + b"\n",
                     b'{"type":"job_added","v":1e999}\n', b"NaN\n", b"\xff\xfe\n",
                     b'{"type":"heartbeat","v":1,"attempt":' + b"9" * 4400 + b"}\n"]),
)


def cli_status(path: Path, as_json: bool) -> tuple[int, str, list[str]]:
    """`journalq status --state PATH` in this process: exit code, stdout, stderr lines."""
    # Strict UTF-8, as a terminal is: text no terminal can show fails here too.
    out, err = (io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
                for _ in range(2))
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["status", "--state", str(path), *(["--json"] if as_json else [])])
    texts = [stream.buffer.getvalue().decode() for stream in (out, err)]  # type: ignore[attr-defined]
    return code, texts[0], texts[1].splitlines()


def check_journal(path: Path, data: bytes, as_json: bool) -> None:
    """The rule for any journal bytes: replay, status and a writer agree, in one line each,
    and a refusing writer leaves the bytes as they were."""
    path.write_bytes(data)
    try:
        _, report = checkpoint.replay_anew(str(path))
        refused: JournalError | None = None
    except JournalError as exc:
        refused = exc
        assert one_line(exc.message), exc.message
        if isinstance(exc, reader.NotAJournal):  # its first line is no event
            assert exc.message.startswith(f"{path} is not a journal ("), exc.message
        else:
            assert exc.message.startswith(f"{path}:"), exc.message
            assert "journalq repair" in exc.message
    else:
        warning = reader.tail_warning(report)
        assert warning is None or one_line(warning)

    code, out, err = cli_status(path, as_json)
    assert data == path.read_bytes()  # status never writes
    if refused is not None:
        assert (EXIT_JOURNAL, 1) == (code, len(err)), err
        assert err[0].startswith("journalq: error: ")
    else:
        assert EXIT_OK == code, err
        assert out
        assert all(line.startswith("journalq: warning: ") for line in err), err
        if as_json:
            json.loads(out)

    try:
        writer = journal.Writer.open(str(path), session="fuzz", command="fuzz",
                                     replay=checkpoint.replay)
    except JournalqError as exc:
        assert data == path.read_bytes()
        assert one_line(exc.message), exc.message
        assert refused is not None or report.newer_types
        return
    writer.close()
    assert refused is None and not report.newer_types
    assert data[: report.good_size] == path.read_bytes()


def test_journal_lines_inserted_anywhere(tmp_path: Path) -> None:
    """Any line inserted at any place of a valid journal (or ending it, torn or not) is
    replayed, warned about as a tail, or refused in one line, the journal unchanged."""
    count = 0
    directories = itertools.count()

    @fuzz(450)
    @given(line=LINES, where=st.integers(0, len(BASE_LINES)), torn=st.booleans(),
           as_json=st.booleans(), extra=st.lists(LINES, max_size=2))
    def case(line: bytes, where: int, torn: bool, as_json: bool, extra: list[bytes]) -> None:
        nonlocal count
        count += 1
        lines = [*BASE_LINES[:where], line, *extra, *BASE_LINES[where:]]
        data = b"".join(lines)
        if torn and where == len(BASE_LINES):
            data = data.rstrip(b"\n")
        folder = tmp_path / f"case-{next(directories)}"
        folder.mkdir()
        check_journal(folder / "q.jsonl", data, as_json)

    case()
    CASES["journal lines"] = count
    assert count >= budget(450)


def test_journal_bytes_flipped(tmp_path: Path) -> None:
    """Bytes overwritten anywhere in a valid journal (a bad block, a stray editor) never
    crash a reader or a writer, and never get a refused journal rewritten."""
    count = 0
    directories = itertools.count()
    original = b"".join(BASE_LINES)

    @fuzz(150)
    @given(changes=st.lists(st.tuples(st.integers(0, len(original) - 1),
                                      st.integers(0, 255)), min_size=1, max_size=4),
           cut=st.integers(0, len(original)), as_json=st.booleans())
    def case(changes: list[tuple[int, int]], cut: int, as_json: bool) -> None:
        nonlocal count
        count += 1
        data = bytearray(original)
        for offset, byte in changes:
            data[offset] = byte
        folder = tmp_path / f"flip-{next(directories)}"
        folder.mkdir()
        check_journal(folder / "q.jsonl", bytes(data[: max(cut, 1)]), as_json)

    case()
    CASES["journal flips"] = count
    assert count >= budget(150)


def test_total_case_count(capsys: pytest.CaptureFixture[str]) -> None:
    """The loops above ran at least MIN_CASES cases in all, and say how many (pytest runs a
    module's tests in file order, so this one comes last)."""
    if len(CASES) < 7:
        pytest.skip("run the whole module to count its cases")
    total = sum(CASES.values())
    with capsys.disabled():
        counts = ", ".join(f"{name} {count}" for name, count in CASES.items())
        print(f"\nfuzz cases: {counts}; total {total}")
    assert total >= MIN_CASES
