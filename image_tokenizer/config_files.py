"""One rule for every YAML/JSON config file the CLIs read (`cm3-data --options-file`, `cm3-train --config`
and its `key=value` overrides, a taming VQGAN yaml): a hostile file is one line, in bounded memory and time.

A 489-byte file of nested aliases (a "billion laughs") expands to gigabytes as soon as anything walks or
prints it, so anchors and aliases are refused outright (no config here needs them); the file is read with a
bounded read, nesting is bounded (the composer recurses), a key given twice is refused instead of silently
keeping the last, and whatever an error message quotes is cut short (`shorten`).

It lives here, beside `cli_parser`, because image_tokenizer is the one package both pipeline/ and model/ may
import; it needs the standard library and PyYAML only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent, CollectionStartEvent, ScalarEvent

MAX_CONFIG_BYTES = 1 << 20  # the project's configs are a few KB; a MB is generous and bounds all that follows
MAX_DEPTH = 32  # nested mappings/lists (the deepest real config, a taming yaml, is 5)
MAX_QUOTED = 160  # characters of a value an error message may quote


class ConfigFileError(ValueError):
    """A config file that cannot be used; the message is one line."""


def shorten(text: str, limit: int = MAX_QUOTED) -> str:
    """`text` on one line, at most about `limit` characters (error messages quote user values with it)."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else f"{line[:limit]}... ({len(line)} characters)"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader without anchors/aliases, with bounded nesting, refusing duplicate keys."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, AliasEvent) or (
            isinstance(event, (ScalarEvent, CollectionStartEvent)) and event.anchor
        ):
            raise ComposerError(
                None,
                None,
                "anchors and aliases (&name, *name) are not allowed in config files",
                event.start_mark,
            )
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                raise ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: set = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable key: SafeConstructor names it below
                    continue
                if duplicate:
                    raise ConstructorError(
                        None, None, f"key {shorten(repr(key))} is given twice", key_node.start_mark
                    )
        return super().construct_mapping(node, deep=deep)


def _at(mark) -> str:
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def parse_config(text: str, where: str) -> Any:
    """The value of YAML (or JSON) `text` under the rules above; ConfigFileError starting with `where`
    otherwise."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as e:
        problem = e.problem or e.context or "unreadable"
        raise ConfigFileError(
            f"{where}: not valid yaml{_at(e.problem_mark or e.context_mark)}: {shorten(problem)}"
        ) from None
    except (yaml.YAMLError, ValueError, RecursionError, OverflowError) as e:  # 10**5 digits, a bad date ...
        raise ConfigFileError(f"{where}: not valid yaml: {shorten(str(e))}") from None


def read_config_file(path: str | Path, what: str, max_bytes: int = MAX_CONFIG_BYTES) -> Any:
    """The parsed content of the config file `path` (read with a bounded read: `/dev/zero` is refused too);
    otherwise ConfigFileError, one line starting "cannot read {what} {path}" (`what`: the flag naming it)."""
    where = f"cannot read {what} {path}"
    try:
        with open(path, "rb") as stream:
            data = stream.read(max_bytes + 1)
    except OSError as e:
        raise ConfigFileError(f"{where}: {e.strerror or e}") from None
    if len(data) > max_bytes:
        raise ConfigFileError(f"{where}: larger than {max_bytes} bytes (a config file is a few KB)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigFileError(f"{where}: not UTF-8 text (byte {e.start})") from None
    return parse_config(text, where)
