"""Configs: every bad one is refused with one line naming the file and the field; good ones
expand into run_sweep.py commands deterministically."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import REPO, journalq, write
from journalq import config
from journalq.cli import main
from journalq.errors import ConfigError

ONE_JOB = "jobs:\n  - id: a\n    command: [python, x.py]\n"
SAFE_ID_RULE = ("is not a valid job id: use letters, digits, '.', '_' and '-' (no '..', no "
                "leading '.' or '-', at most 128 characters)")


def refusal(data: str | bytes, source: str = "configs/bad.yaml") -> str:
    """The one-line message `config.parse` refuses `data` with."""
    raw = data.encode() if isinstance(data, str) else data
    with pytest.raises(ConfigError) as caught:
        config.parse(raw, source)
    message = caught.value.message
    assert "\n" not in message
    assert message == str(caught.value)
    return message


def sweep(job_id: str, **args: object) -> str:
    """A one-job YAML config whose job has these run_sweep.py `args`."""
    fields = ", ".join(f"{key}: {value}" for key, value in args.items())
    return f"queue: q\njobs:\n  - id: {job_id}\n    args: {{{fields}}}\n"


BAD = [
    pytest.param("queue: 5\n" + ONE_JOB, "$.queue: expected a string, got an integer",
                 id="queue-not-a-string"),
    pytest.param(ONE_JOB, "$.queue: required field missing", id="queue-missing"),
    pytest.param("queue:\n" + ONE_JOB, "$.queue: expected a string, got nothing (null)",
                 id="queue-null"),
    pytest.param("queue: q\ncolour: red\n" + ONE_JOB, "$: unknown field(s) colour",
                 id="unknown-field"),
    pytest.param("queue: q\n1: one\n" + ONE_JOB, "$: unknown field(s) 1",
                 id="unknown-field-not-a-string"),
    pytest.param("queue: q\n" + ONE_JOB + "    retries: 3\n",
                 "$.jobs[0]: unknown field(s) retries", id="unknown-job-field"),
    pytest.param("queue: q\njobs: {a: 1}\n", "$.jobs: expected a list, got a mapping",
                 id="jobs-not-a-list"),
    pytest.param("queue: q\njobs: [5]\n", "$.jobs[0]: expected a mapping, got an integer",
                 id="job-not-a-mapping"),
    pytest.param("queue: q\ndefaults: [1]\n" + ONE_JOB,
                 "$.defaults: expected a mapping, got a list", id="defaults-not-a-mapping"),
    pytest.param("queue: q\n", "$.jobs: the config has no jobs; add `jobs:` or a `matrix:`",
                 id="no-jobs"),
    pytest.param(sweep("a", model="m", layers="'14-10'", alphas="[1]"),
                 "$.jobs[0].args.layers: expected a range like '10-14' or a list of layers "
                 "like [8, 12, 16]", id="layers-range-backwards"),
    pytest.param(sweep("a", model="m", layers="[8, x]", alphas="[1]"),
                 "$.jobs[0].args.layers: expected a range like '10-14' or a list of layers "
                 "like [8, 12, 16]", id="layers-not-numbers"),
    pytest.param(sweep("a", model="m", layers="true", alphas="[1]"),
                 "$.jobs[0].args.layers: expected a range like '10-14' or a list of layers "
                 "like [8, 12, 16]", id="layers-boolean"),
    pytest.param(sweep("a", model="m", layers="1-2", alphas="big"),
                 "$.jobs[0].args.alphas: expected a list of numbers, like [0.5, 1, 2]",
                 id="alphas-string"),
    pytest.param(sweep("a", model="m", layers="1-2", alphas="[0.5, true]"),
                 "$.jobs[0].args.alphas: expected a list of numbers, like [0.5, 1, 2]",
                 id="alphas-boolean-item"),
    pytest.param(sweep("a", model="m", layers="1-2", alphas="[]"),
                 "$.jobs[0].args.alphas: expected a list of numbers, like [0.5, 1, 2]",
                 id="alphas-empty"),
    pytest.param(sweep("a", layers="1-2", alphas="[1]"),
                 "$.jobs[0].args.model: required field missing", id="model-missing"),
    pytest.param(sweep("a", model="m", layers="1-2", alphas="[1]", summary_name="../s.tsv"),
                 "$.jobs[0].args.summary_name: '../s.tsv' is not a valid summary file name: "
                 "use letters, digits, '.', '_' and '-' (no '..', no leading '.' or '-', at "
                 "most 128 characters)", id="summary-name-unsafe"),
    pytest.param("queue: q\njobs:\n  - id: a\n    command: [x]\n  - id: b\n    command: [y]\n"
                 "  - id: a\n    command: [z]\n",
                 "$.jobs[2]: job id 'a' is used twice; ids must be unique", id="duplicate-id"),
    pytest.param("queue: q\njobs:\n  - id: '../x'\n    command: [x]\n",
                 f"$.jobs[0].id: '../x' {SAFE_ID_RULE}", id="id-dot-dot"),
    pytest.param("queue: q\njobs:\n  - id: a/b\n    command: [x]\n",
                 f"$.jobs[0].id: 'a/b' {SAFE_ID_RULE}", id="id-slash"),
    pytest.param("queue: q\njobs:\n  - id: .hidden\n    command: [x]\n",
                 f"$.jobs[0].id: '.hidden' {SAFE_ID_RULE}", id="id-hidden"),
    pytest.param("queue: q\njobs:\n  - id: -flag\n    command: [x]\n",
                 f"$.jobs[0].id: '-flag' {SAFE_ID_RULE}", id="id-flag"),
    pytest.param("queue: q\njobs:\n  - id: a..b\n    command: [x]\n",
                 f"$.jobs[0].id: 'a..b' {SAFE_ID_RULE}", id="id-inner-dot-dot"),
    pytest.param("queue: q\njobs:\n  - id: " + "a" * 129 + "\n    command: [x]\n",
                 f"$.jobs[0].id: '{'a' * 129}' {SAFE_ID_RULE}", id="id-too-long"),
    pytest.param("queue: q\njobs:\n  - id: 7\n    command: [x]\n",
                 "$.jobs[0].id: expected a string, got an integer", id="id-integer"),
    pytest.param("queue: ../q\n" + ONE_JOB,
                 "$.queue: '../q' is not a valid queue name: use letters, digits, '.', '_' "
                 "and '-' (no '..', no leading '.' or '-', at most 128 characters)",
                 id="queue-name-unsafe"),
    pytest.param("queue: q\njobs:\n  - id: a\n    command: echo hi > out.txt\n",
                 "$.jobs[0].command: a string command runs through a shell: write it as a "
                 "list of words, or set shell: true", id="string-command-without-shell"),
    pytest.param("queue: q\njobs:\n  - id: a\n    command: [echo, hi]\n    shell: true\n",
                 "$.jobs[0].shell: shell: true needs the command as one string",
                 id="shell-with-a-list"),
    pytest.param("queue: q\njobs:\n  - id: a\n    command: []\n",
                 "$.jobs[0].command: expected a list of words like [python, train.py, --lr, "
                 "'0.1'] (or a string with shell: true)", id="command-empty"),
    pytest.param("queue: q\njobs:\n  - id: a\n",
                 "$.jobs[0]: give either `args` (run_sweep.py flags) or `command`, not both",
                 id="neither-args-nor-command"),
    pytest.param("queue: q\n" + ONE_JOB + "    timeout: 0\n",
                 "$.jobs[0].timeout: expected a positive number of seconds, got 0.0",
                 id="timeout-zero"),
    pytest.param("queue: q\n" + ONE_JOB + "    timeout: -5\n",
                 "$.jobs[0].timeout: expected a positive number of seconds, got -5.0",
                 id="timeout-negative"),
    pytest.param("queue: q\n" + ONE_JOB + "    timeout: '60'\n",
                 "$.jobs[0].timeout: expected a number, got a string", id="timeout-string"),
    pytest.param("queue: q\n" + ONE_JOB + "    timeout: .nan\n",
                 "$.jobs[0].timeout: expected a finite number, got nan", id="timeout-nan"),
    pytest.param("queue: q\ndefaults: {timeout: -1}\n" + ONE_JOB,
                 "$.defaults.timeout: expected a positive number of seconds, got -1.0",
                 id="default-timeout-negative"),
    pytest.param("queue: q\n" + ONE_JOB + "    max_attempts: true\n",
                 "$.jobs[0].max_attempts: expected an integer, got a boolean",
                 id="max-attempts-boolean"),
    pytest.param("queue: q\n" + ONE_JOB + "    max_attempts: 0\n",
                 "$.jobs[0].max_attempts: expected a whole number from 1 to 1000, got 0",
                 id="max-attempts-zero"),
    pytest.param("queue: q\n" + ONE_JOB + "    max_attempts: 2.5\n",
                 "$.jobs[0].max_attempts: expected an integer, got a number",
                 id="max-attempts-fraction"),
    pytest.param("queue: q\ndefaults: {max_attempts: 0}\n" + ONE_JOB,
                 "$.defaults.max_attempts: expected a whole number from 1 to 1000, got 0",
                 id="default-max-attempts-zero"),
    pytest.param("queue: q\nstale_seconds: 0\n" + ONE_JOB,
                 "$.stale_seconds: expected a positive number of seconds, got 0.0",
                 id="stale-seconds-zero"),
    pytest.param("queue: q\n" + ONE_JOB + "    env: {A: [1]}\n",
                 "$.jobs[0].env: the value of A must be a string or number; quote it",
                 id="env-value-list"),
    pytest.param("queue: q\n" + ONE_JOB + "    env: {1A: x}\n",
                 "$.jobs[0].env: '1A' is not an environment variable name", id="env-bad-name"),
    pytest.param("queue: q\nmatrix:\n  id: 'j-{lr}'\n  axes: {lr: [1, 2]}\n"
                 "  args: {model: m, layers: '1-2', alphas: [1]}\n",
                 "$.matrix.axes.lr: not a run_sweep.py flag (alphas, extra, layers, model, "
                 "summary_name); give matrix.command to use your own command with {lr} in it",
                 id="matrix-axis-not-a-flag"),
    pytest.param("queue: q\nmatrix:\n  id: 'j-{seed}'\n  axes: {model: [a, b]}\n"
                 "  args: {layers: '1-2', alphas: [1]}\n",
                 "$.matrix.id: {seed} is not one of the axes (model)",
                 id="matrix-unknown-placeholder"),
    pytest.param("queue: q\nmatrix:\n  id: j\n  axes: {}\n  command: [x]\n",
                 "$.matrix.axes: expected a mapping of axis names to lists of values",
                 id="matrix-no-axes"),
    pytest.param("queue: q\nmatrix:\n  id: j\n  axes: {a: [1, 2]}\n  command: [x, '{a}']\n",
                 "$.matrix (at a=2): job id 'j' is used twice; ids must be unique",
                 id="matrix-id-without-placeholder"),
    pytest.param("queue: q\nmatrix:\n  id: 'j-{alphas}'\n  axes: {alphas: [[1], x]}\n"
                 "  args: {model: m, layers: '1-2'}\n",
                 "$.matrix (at alphas='x').args.alphas: expected a list of numbers, like "
                 "[0.5, 1, 2]", id="matrix-axis-bad-value"),
]


@pytest.mark.parametrize(("text", "problem"), BAD)
def test_bad_config_is_one_line_naming_file_and_path(text: str, problem: str) -> None:
    """Each invalid config is refused as `<file>: $.<path>: <problem>`, one line."""
    assert f"configs/bad.yaml: {problem}" == refusal(text)


def test_several_problems_report_the_first_and_count_the_rest() -> None:
    """A config with many mistakes names the first one and says how many more there are."""
    message = refusal("queue: 1\nworker: 2\njobs: 3\n")

    assert ("configs/bad.yaml: $.queue: expected a string, got an integer "
            "(and 2 more problems)") == message


@pytest.mark.parametrize(("text", "where", "problem"), [
    ("queue: q\njobs:\n  - id: a\n    command: [x\n", "5:1",
     "expected ',' or ']', but got '<stream end>'"),
    ("queue: q\n  bad: indent\n", "2:6", "mapping values are not allowed here"),
    ("queue: q\n\tjobs: []\n", "2:1", "found character '\\t' that cannot start any token"),
    ("queue: !!python/object:os.system q\n", "1:8",
     "could not determine a constructor for the tag "
     "'tag:yaml.org,2002:python/object:os.system'"),
], ids=["unclosed-list", "bad-indent", "tab", "python-tag"])
def test_yaml_syntax_error_names_line_and_column(text: str, where: str, problem: str) -> None:
    """A YAML syntax error is `<file>:<line>:<col>: YAML syntax error: <problem>`."""
    assert f"configs/bad.yaml:{where}: YAML syntax error: {problem}" == refusal(text)


@pytest.mark.parametrize(("text", "where", "key"), [
    ("queue: q\njobs:\n  - {id: a, command: [x]}\njobs:\n  - {id: b, command: [x]}\n", "4:1",
     "'jobs'"),
    ("queue: q\njobs:\n  - {id: a, command: [x], id: b}\n", "3:27", "'id'"),
], ids=["second-jobs-list", "job-id-twice"])
def test_a_key_given_twice_is_refused(text: str, where: str, key: str) -> None:
    """A key repeated in one mapping is refused at the repeat (YAML would keep only the
    last, silently dropping, say, every job of a first `jobs:` list)."""
    assert f"configs/bad.yaml:{where}: YAML syntax error: duplicate key {key}" == refusal(text)


def test_merge_keys_may_still_be_overridden() -> None:
    """A key merged in with `<<: *anchor` may be overridden in the same mapping."""
    text = ("queue: q\njobs:\n  - &base {id: a, command: [x], timeout: 5}\n"
            "  - {<<: *base, id: b, timeout: 9}\n")

    jobs = config.parse(text.encode(), "c.yaml").jobs

    assert [("a", 5.0), ("b", 9.0)] == [(job_id, spec.timeout) for job_id, spec in jobs.items()]


def test_yaml_alias_bomb_is_refused_by_size() -> None:
    """A billion-laughs config (few aliases, huge once expanded) is refused, quickly."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for name, prev in zip("bcdefgh", "abcdefg", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    bomb = "\n".join([*lines, "queue: q", ""])

    message = refusal(bomb)

    assert message.startswith("configs/bad.yaml: expands to more than 100000 values; a config "
                              "this large is a mistake (or a YAML alias bomb")


def test_yaml_with_too_many_aliases_is_refused() -> None:
    """A config leaning on more than 100 aliases is refused before it is expanded."""
    text = "x: &x 1\ny: [" + ", ".join(["*x"] * 101) + "]\nqueue: q\n"

    assert ("configs/bad.yaml: uses more than 100 YAML aliases; write the values out"
            == refusal(text))


def test_deeply_nested_yaml_is_refused_without_a_traceback() -> None:
    """Nesting deep enough to exhaust the recursion limit is one line, not a crash."""
    assert ("configs/bad.yaml: not valid YAML (RecursionError); check the file's syntax and "
            "encoding") == refusal("[" * 5000 + "]" * 5000)


def test_non_utf8_bytes_are_refused() -> None:
    """Bytes that are not UTF-8 are refused with where they are, for YAML and TOML alike."""
    assert ("configs/bad.yaml: not UTF-8 text (bad byte at position 8); save it as UTF-8"
            == refusal(b"queue: q\xff\xfe\n" + ONE_JOB.encode()))
    assert "configs/bad.toml: not UTF-8 text; save it as UTF-8" == refusal(
        b'queue = "q\xff"\n', "configs/bad.toml")


def test_control_characters_are_refused() -> None:
    """A NUL or other control character in a YAML config is named, on one line."""
    assert ("configs/bad.yaml: character #x0000 at position 8 is not allowed in YAML; "
            "remove it") == refusal(b"queue: q\x00\n")


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a\n- b\n", "just words\n",
                                  "42\n"],
                         ids=["empty", "comment", "top-level-list", "scalar", "number"])
def test_a_config_must_be_a_mapping(text: str) -> None:
    """An empty file, a list or a scalar at the top is refused, pointing at the reference."""
    assert ("configs/bad.yaml: $: expected a mapping with at least `queue:`; see the README's "
            "config reference") == refusal(text)


def test_toml_config_means_the_same_as_its_yaml_twin() -> None:
    """A TOML config is read like YAML: same jobs, same specs."""
    toml = (b'queue = "q"\n[defaults]\nmax_attempts = 2\n[[jobs]]\nid = "a"\n'
            b'args = { model = "gpt2", layers = "10-14", alphas = [0.5, 1, 2] }\n'
            b'[[jobs]]\nid = "b"\ncommand = ["python", "b.py"]\ntimeout = 30\n')
    yaml = (b"queue: q\ndefaults: {max_attempts: 2}\njobs:\n"
            b"  - {id: a, args: {model: gpt2, layers: 10-14, alphas: [0.5, 1, 2]}}\n"
            b"  - {id: b, command: [python, b.py], timeout: 30}\n")

    from_toml = config.parse(toml, "q.toml")

    assert config.parse(yaml, "q.yaml").jobs == from_toml.jobs
    assert ["a", "b"] == list(from_toml.jobs)


@pytest.mark.parametrize(("text", "problem"), [
    ('queue = "q"\n[[jobs]\nid = "a"\n',
     "TOML syntax error: Expected ']]' at the end of an array declaration (at line 2, "
     "column 7)"),
    ('queue = "q"\n[[jobs]]\nid = "a"\ncommand = ["x"]\ntimeout = "5"\n',
     "$.jobs[0].timeout: expected a number, got a string"),
    ('queue = "q"\n[[jobs]]\nid = "a/b"\ncommand = ["x"]\n', f"$.jobs[0].id: 'a/b' {SAFE_ID_RULE}"),
], ids=["syntax", "type", "unsafe-id"])
def test_bad_toml_config_is_one_line(text: str, problem: str) -> None:
    """An invalid TOML config is refused like YAML: file, path or line, and the problem."""
    assert f"configs/bad.toml: {problem}" == refusal(text, "configs/bad.toml")


# ---- good configs --------------------------------------------------------------------------------

MATRIX = """\
queue: grid
out_root: out/grid
matrix:
  id: "{model}-L{layers}-a{alphas}"
  axes:
    model: [gpt2, pythia]
    layers: ["10-14", [8, 12, 16]]
    alphas: [[0.5, 1, 2], [4]]
"""


def test_matrix_expands_first_axis_slowest_with_ids_from_the_template() -> None:
    """Every combination becomes a job, in a fixed order: the first axis varies slowest."""
    cfg = config.parse(MATRIX.encode(), "grid.yaml")

    assert [
        "gpt2-L10-14-a0.5_1_2", "gpt2-L10-14-a4", "gpt2-L8_12_16-a0.5_1_2", "gpt2-L8_12_16-a4",
        "pythia-L10-14-a0.5_1_2", "pythia-L10-14-a4", "pythia-L8_12_16-a0.5_1_2",
        "pythia-L8_12_16-a4",
    ] == list(cfg.jobs)
    assert list(cfg.jobs.items()) == list(config.parse(MATRIX.encode(), "grid.yaml").jobs.items())


def test_each_out_dir_is_out_root_slash_id() -> None:
    """A job's out_dir is `<out_root>/<id>`: deterministic, and under out_root."""
    cfg = config.parse(MATRIX.encode(), "grid.yaml")

    assert {job_id: f"out/grid/{job_id}" for job_id in cfg.jobs} == {
        job_id: spec.out_dir for job_id, spec in cfg.jobs.items()}


def test_matrix_jobs_render_run_sweep_flags() -> None:
    """Matrix axes become run_sweep.py flags: ranges as `10-14`, lists joined by commas."""
    cfg = config.parse(MATRIX.encode(), "grid.yaml")

    assert ("python", "scripts/run_sweep.py", "--model", "pythia", "--layers", "8,12,16",
            "--alphas", "0.5,1,2", "--output-dir", "out/grid/pythia-L8_12_16-a0.5_1_2",
            "--summary-path", "out/grid/pythia-L8_12_16-a0.5_1_2/summary.tsv",
            ) == cfg.jobs["pythia-L8_12_16-a0.5_1_2"].argv


@pytest.mark.parametrize(("layers", "flag"), [
    ("'10-14'", "10-14"), ("' 10 - 14 '", "10-14"), ("[8, 12, 16]", "8,12,16"),
    ("'8,12,16'", "8,12,16"), ("6", "6"),
])
def test_layers_render_as_a_range_or_a_list(layers: str, flag: str) -> None:
    """`--layers` takes a range `10-14` or a list `8,12,16`, however the config spells it."""
    cfg = config.parse(sweep("j", model="gpt2", layers=layers, alphas="[1]").encode(), "c.yaml")

    argv = cfg.jobs["j"].argv
    assert flag == argv[argv.index("--layers") + 1]


@pytest.mark.parametrize("layers", ["'\u0661\u0660-\u0661\u0664'", "'\u0668,\u0661\u0662'",
                                    "'\uff18,\uff19'", "'\u0968-\u096a'"])
def test_layers_in_other_scripts_digits_are_refused(layers: str) -> None:
    """`--layers` takes ASCII digits only: Arabic-Indic (U+0660..), full-width or Devanagari
    digits are digits to Python's `\\d` but not to run_sweep.py, so they are refused here
    rather than passed on to fail (or worse, be read otherwise) at run time."""
    assert ("configs/bad.yaml: $.jobs[0].args.layers: expected a range like '10-14' or a "
            "list of layers like [8, 12, 16]") == refusal(
        sweep("j", model="gpt2", layers=layers, alphas="[1]"))


def test_job_args_render_every_run_sweep_flag() -> None:
    """A job's args become the worker's argv: model, layers, alphas, output dir, summary."""
    text = ("queue: q\nworker: python3 tools/sweep.py --fp16\nout_root: runs\njobs:\n"
            "  - id: j1\n    args: {model: gpt2, layers: 10-14, alphas: [0.5, 1, 2], "
            "summary_name: s.tsv, extra: [--seed, '3']}\n")

    cfg = config.parse(text.encode(), "c.yaml")

    assert ("python3", "tools/sweep.py", "--fp16", "--model", "gpt2", "--layers", "10-14",
            "--alphas", "0.5,1,2", "--output-dir", "runs/j1", "--summary-path", "runs/j1/s.tsv",
            "--seed", "3") == cfg.jobs["j1"].argv


def test_defaults_apply_unless_a_job_says_otherwise() -> None:
    """A job gets `defaults` for what it leaves out; its own settings win; env merges."""
    text = ("queue: q\ndefaults: {max_attempts: 3, timeout: 60, env: {A: '1', B: '2'}, cwd: w}\n"
            "jobs:\n  - {id: a, command: [x]}\n"
            "  - {id: b, command: [x], max_attempts: 1, timeout: 5, env: {B: '9'}, cwd: v}\n")

    jobs = config.parse(text.encode(), "c.yaml").jobs

    assert (3, 60.0, {"A": "1", "B": "2"}, "w") == (
        jobs["a"].max_attempts, jobs["a"].timeout, dict(jobs["a"].env), jobs["a"].cwd)
    assert (1, 5.0, {"A": "1", "B": "9"}, "v") == (
        jobs["b"].max_attempts, jobs["b"].timeout, dict(jobs["b"].env), jobs["b"].cwd)


def test_bare_defaults_are_documented_values() -> None:
    """Left out: one attempt, no timeout, the current folder, stale after 7200 s, and
    outputs under runtime_state/outputs/<queue>."""
    cfg = config.parse(("queue: q\n" + ONE_JOB).encode(), "c.yaml")

    spec = cfg.jobs["a"]
    assert (1, None, ".", 7200.0, "runtime_state/outputs/q/a") == (
        spec.max_attempts, spec.timeout, spec.cwd, cfg.stale_seconds, spec.out_dir)


def test_command_placeholders_are_filled_in() -> None:
    """`{out_dir}`, `{job}` and matrix axes are filled into a command; other braces stay."""
    text = ("queue: q\nout_root: o\nmatrix:\n  id: 'r{seed}'\n  axes: {seed: [1, 2]}\n"
            "  command: [python, -c, 'print({1})', '{seed}', '{out_dir}', '{job}']\n")

    jobs = config.parse(text.encode(), "c.yaml").jobs

    assert ("python", "-c", "print({1})", "2", "o/r2", "r2") == jobs["r2"].argv


def test_a_shell_command_is_one_string() -> None:
    """With shell: true the command stays one string, run through the shell."""
    text = "queue: q\njobs:\n  - id: a\n    command: echo hi > out.txt\n    shell: true\n"

    spec = config.parse(text.encode(), "c.yaml").jobs["a"]

    assert (("echo hi > out.txt",), True) == (spec.argv, spec.shell)


def test_spec_sha256_changes_with_the_spec_only() -> None:
    """The same job in two files has one sha256; any change to it gives another."""
    one = config.parse(("queue: q\n" + ONE_JOB).encode(), "one.yaml").jobs["a"]
    same = config.parse(("# a comment\nqueue: q\n" + ONE_JOB).encode(), "two.yaml").jobs["a"]
    other = config.parse(("queue: q\n" + ONE_JOB + "    timeout: 5\n").encode(), "c.yaml")

    assert one.sha256 == same.sha256
    assert one.sha256 != other.jobs["a"].sha256


def test_repo_batch_config_has_ten_to_twelve_unique_sweeps() -> None:
    """configs/experiments/colab_batch_a.yaml parses into 10-12 run_sweep.py jobs with
    unique ids and one out_dir each, under its out_root."""
    path = REPO / "configs" / "experiments" / "colab_batch_a.yaml"

    cfg = config.parse(path.read_bytes(), str(path))

    assert 10 <= len(cfg.jobs) <= 12
    out_dirs = [spec.out_dir for spec in cfg.jobs.values()]
    assert [f"{cfg.out_root}/{job_id}" for job_id in cfg.jobs] == out_dirs
    for spec in cfg.jobs.values():
        assert "scripts/run_sweep.py" in spec.argv
        for flag in ("--model", "--layers", "--alphas", "--output-dir", "--summary-path"):
            assert flag in spec.argv


def test_repo_example_config_parses() -> None:
    """configs/experiments/example.local.yaml parses into its six toy jobs."""
    path = REPO / "configs" / "experiments" / "example.local.yaml"

    cfg = config.parse(path.read_bytes(), str(path))

    assert ("example_local", 6) == (cfg.queue, len(cfg.jobs))


# ---- through the command line --------------------------------------------------------------------

def test_cli_bad_config_exits_3_with_one_line(tmp_path: Path) -> None:
    """`journalq init --config bad.yaml` (a real process) prints one line and exits 3."""
    write(tmp_path / "bad.yaml", "queue: q\njobs:\n  - id: a\n    args: {model: m, "
          "layers: 1-2, alphas: lots}\n")

    done = journalq("init", "--config", "bad.yaml", cwd=tmp_path)

    assert 3 == done.returncode
    assert ("journalq: error: bad.yaml: $.jobs[0].args.alphas: expected a list of numbers, "
            "like [0.5, 1, 2]\n") == done.stderr
    assert not (tmp_path / "runtime_state").exists()


@pytest.mark.parametrize(("text", "problem"), [
    ("queue: q\n\tjobs: []\n",
     "bad.yaml:2:1: YAML syntax error: found character '\\t' that cannot start any token"),
    ("queue: q\njobs:\n  - id: .x\n    command: [x]\n", f"bad.yaml: $.jobs[0].id: '.x' "
     f"{SAFE_ID_RULE}"),
], ids=["yaml-syntax", "unsafe-id"])
def test_main_bad_config_exits_3_with_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        text: str, problem: str) -> None:
    """`main(["init", "--config", ...])` returns 3 and writes one error line, no journal."""
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "bad.yaml", text)

    code = main(["init", "--config", "bad.yaml"])

    assert (3, "", f"journalq: error: {problem}\n") == (code, *capsys.readouterr())
    assert not (tmp_path / "runtime_state").exists()


def test_missing_config_file_exits_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A config path that does not exist is a config error, named."""
    monkeypatch.chdir(tmp_path)

    code = main(["init", "--config", "nope.yaml"])

    err = capsys.readouterr().err
    assert 3 == code
    assert err.startswith("journalq: error: nope.yaml: no such config file")
    assert 1 == err.count("\n")
