"""A config file's bytes -> the plain data it holds (YAML, or TOML by the file's name).

Safe, whatever the bytes: only YAML's safe types, a key given twice is refused (PyYAML keeps
the last, so a second `jobs:` would drop every job of the first), an alias bomb is refused
by its expanded size, and every failure is one `ConfigError` line naming the file (and the
line and column, when YAML knows them). libyaml's parser, when present, reads the common
case ten times faster; anything unusual goes through the pure-Python loader, whose checks
and messages are the ones people see.
"""

from __future__ import annotations

import tomllib
from typing import Any

import yaml

from journalq.errors import ConfigError
from journalq.strict import LONE_SURROGATE, lone_surrogate

# A YAML alias bomb is small on disk and huge once expanded; configs are never this big.
MAX_YAML_ALIASES = 100
MAX_CONFIG_NODES = 100_000


def load(data: bytes, source: str) -> dict[str, Any]:
    """The mapping a config file holds; raises ConfigError (one line) for anything else."""
    if source.endswith(".toml"):
        try:
            raw: Any = tomllib.loads(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise ConfigError(f"{source}: not UTF-8 text; save it as UTF-8") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: TOML syntax error: {exc}") from None
        except (ValueError, RecursionError) as exc:
            raise _unconvertible(exc, source) from None
    else:
        raw = _load_yaml(data, source)
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: $: expected a mapping with at least `queue:`; "
                          "see the README's config reference")
    return raw


def _load_yaml(data: bytes, source: str) -> Any:
    raw = _load_yaml_fast(data)
    if raw is _SLOW:
        raw = _load_yaml_slow(data, source)
    try:
        too_big = _expanded_size(raw, {}) > MAX_CONFIG_NODES
    except RecursionError:
        too_big = True
    if too_big:
        raise ConfigError(f"{source}: expands to more than {MAX_CONFIG_NODES} values; "
                          "a config this large is a mistake (or a YAML alias bomb, or an alias "
                          "inside itself)")
    if lone_surrogate(data, raw):
        raise ConfigError(f"{source}: {LONE_SURROGATE}; write the character itself")
    return raw


_SLOW = object()  # "take the slow way": `_load_yaml_fast` could not, or would not, read it


def _load_yaml_fast(data: bytes) -> Any:
    """libyaml's parser, ten times faster (a 500-job config: 9 ms, not 73), for the common
    case: valid UTF-8, no characters YAML forbids, no aliases. Anything else, and any error,
    goes the slow way, whose checks and messages are the ones people see."""
    fast_loader = getattr(yaml, "CSafeLoader", None)
    if fast_loader is None:
        return _SLOW
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return _SLOW
    if "*" in text or _FORBIDDEN.search(text):  # aliases are counted by the slow loader
        return _SLOW
    try:
        return yaml.load(text, Loader=_FastLoader)  # noqa: S506 - a safe loader, as below
    except Exception:  # noqa: BLE001 - the slow way explains it
        return _SLOW


def _load_yaml_slow(data: bytes, source: str) -> Any:
    try:
        # The loader decodes and checks every character up front, so it is what fails first.
        loader = _CountingLoader(data)
    except yaml.reader.ReaderError as exc:
        raise _unreadable(exc, source) from None
    try:
        raw = loader.get_single_data()
    except _TooManyAliases:
        raise ConfigError(f"{source}: uses more than {MAX_YAML_ALIASES} YAML aliases; "
                          "write the values out") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{source}{where}: YAML syntax error: {problem}") from None
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
        raise ConfigError(f"{source}: not valid YAML ({type(exc).__name__}); "
                          "check the file's syntax and encoding") from None
    except ValueError as exc:
        raise _unconvertible(exc, source) from None
    finally:
        loader.dispose()
    return raw


def _unconvertible(exc: BaseException, source: str) -> ConfigError:
    """One line for a value the parser matched but Python cannot build: a number past
    Python's 4300-digit limit, a date like 2020-13-45, `!!int abc`, or nesting too deep."""
    if isinstance(exc, RecursionError):
        return ConfigError(f"{source}: nested too deeply to read; flatten it")
    detail = str(exc).partition(";")[0].splitlines()[0][:100] if str(exc) else type(exc).__name__
    return ConfigError(f"{source}: a value cannot be read ({detail}); quote it if it is text")


def _unreadable(exc: yaml.reader.ReaderError, source: str) -> ConfigError:
    """One line for a file YAML cannot even read: bytes that are not UTF-8, or a control
    character (PyYAML's own message spans two lines)."""
    if exc.encoding == "unicode":  # decoded fine, but holds a character YAML forbids
        return ConfigError(f"{source}: character #x{exc.character:04x} at position "
                           f"{exc.position} is not allowed in YAML; remove it")
    return ConfigError(f"{source}: not UTF-8 text (bad byte at position {exc.position}); "
                       "save it as UTF-8")


class _TooManyAliases(Exception):
    pass


class _UniqueKeys(yaml.constructor.SafeConstructor):
    """Mappings whose keys are all different."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        # PyYAML keeps the last of two equal keys: a second `jobs:` would silently drop
        # every job of the first. (Keys merged in with `<<:` may be overridden, as usual.)
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    repeated = key in seen
                except TypeError:  # unhashable: the base class refuses it with a mark
                    continue
                if repeated:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep)


class _CountingLoader(yaml.SafeLoader, _UniqueKeys):
    """The safe loader, refusing configs that lean on aliases (the billion-laughs attack)."""

    aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_YAML_ALIASES:
                raise _TooManyAliases
        return super().compose_node(parent, index)


# What PyYAML's own reader refuses (control characters and the like): such a file goes the
# slow way, so that it is refused with the same message whichever parser is present.
_FORBIDDEN = yaml.reader.Reader.NON_PRINTABLE

if hasattr(yaml, "CSafeLoader"):
    class _FastLoader(yaml.CSafeLoader, _UniqueKeys):
        """libyaml's parser, with the same unique-key rule as the slow loader."""


def _expanded_size(value: Any, seen: dict[int, int]) -> int:
    """How many values `value` holds once every shared (aliased) part is counted each time."""
    key = id(value)
    if key in seen:
        return seen[key]
    size = 1
    # A value inside itself (`x: &a [*a]`, which yaml.safe_load builds) never ends when
    # expanded: count it as too big, or job ids and commands made from it recurse forever.
    if isinstance(value, dict):
        seen[key] = MAX_CONFIG_NODES + 1
        size += sum(_expanded_size(k, seen) + _expanded_size(v, seen) for k, v in value.items())
    elif isinstance(value, list):
        seen[key] = MAX_CONFIG_NODES + 1
        size += sum(_expanded_size(item, seen) for item in value)
    seen[key] = size
    return size
