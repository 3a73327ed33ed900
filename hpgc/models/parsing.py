"""JSON and YAML from users, with limits: nesting depth, and (YAML) the size aliases would expand to.

Python's parsers recurse once per nesting level, so a 10,000-deep document is a RecursionError (a 500 with a
traceback) in the parser or in whatever walks the result later; and a YAML alias bomb is a few hundred bytes
that stand for billions of nodes once anything expands them. Both are refused here, before any other code
sees the document, with a 400 problem that says which limit was hit.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from hpgc.errors import HpgcError, InvalidRequest

MAX_DEPTH = 100  # GeoJSON needs 5, a CWL document rarely 15; json.dumps and pydantic stay far from recursion limits
MAX_YAML_NODES = 1_000_000  # counting every alias as the nodes it stands for

# ends at its closing quote or at the end of the text: an unclosed quote never makes the scan quadratic
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\Z)', re.DOTALL)
_BRACKETS = bytes(range(256)).translate(None, b"[]{}")  # every byte that is not a bracket, to delete
_OPEN_CLOSE = bytes.maketrans(b"{}", b"[]")


def json_depth_exceeds(raw: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether the JSON text nests deeper than `limit`, found without recursing: strings removed, only the
    brackets kept, then innermost pairs removed once per level (each pass a C-speed replace)."""
    brackets = _JSON_STRING.sub(b"", raw).translate(_OPEN_CLOSE, _BRACKETS)
    for _ in range(limit):
        if not brackets:
            return False
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            return False  # unbalanced: not JSON, the parser says why
        brackets = shorter
    return bool(brackets) and brackets.replace(b"[]", b"") != brackets


def load_json(raw: bytes | str, what: str = "the body", error: type[HpgcError] = InvalidRequest,
              max_depth: int = MAX_DEPTH) -> Any:
    """Parse user JSON; too deep or invalid → `error` (a 400 problem) naming `what`."""
    data = raw.encode() if isinstance(raw, str) else raw
    if json_depth_exceeds(data, max_depth):
        raise error(f"{what} nests deeper than {max_depth} levels")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise error(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:  # only if the limit is set above what the parser can take
        raise error(f"{what} nests too deeply") from None


class _LimitedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, counting depth while composing and the expanded size of what it composed."""

    max_depth = MAX_DEPTH
    max_nodes = MAX_YAML_NODES

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._sizes: dict[int, int] = {}  # id(node) → nodes it stands for, aliases expanded

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        if self._depth > self.max_depth:
            raise _TooBig(f"nests deeper than {self.max_depth} levels")
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        self._count(node)
        return node

    def _count(self, node: yaml.Node) -> None:
        # an alias returns the anchored node itself: its size is already known, and it counts again each time
        if id(node) in self._sizes:
            size = self._sizes[id(node)]
        else:
            size = 1
            if isinstance(node, yaml.SequenceNode):
                size += sum(self._sizes.get(id(n), 1) for n in node.value)
            elif isinstance(node, yaml.MappingNode):
                size += sum(self._sizes.get(id(k), 1) + self._sizes.get(id(v), 1) for k, v in node.value)
            self._sizes[id(node)] = size
        if size > self.max_nodes:
            raise _TooBig(f"stands for more than {self.max_nodes} nodes once its aliases are expanded")


class _TooBig(Exception):
    pass


def load_yaml(text: str, what: str = "the document", error: type[HpgcError] = InvalidRequest) -> Any:
    """Parse user YAML (JSON is YAML too) with the safe loader; too deep, alias bombs, or invalid → `error`."""
    loader = _LimitedLoader(text)
    try:
        return loader.get_single_data()
    except _TooBig as exc:
        raise error(f"{what} {exc}") from None
    except yaml.YAMLError as exc:
        raise error(f"{what} is neither JSON nor YAML: {exc}") from None
    except RecursionError:  # flow collections recurse in the parser itself, before compose_node is reached
        raise error(f"{what} nests deeper than {_LimitedLoader.max_depth} levels") from None
    finally:
        loader.dispose()
