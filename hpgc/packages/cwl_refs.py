"""What a deployed CWL document may refer to: only itself.

cwltool resolves `$include`, `$import`, `$mixin`, `$schemas` and a step's `run:` by reading files and URLs,
and at run time copies every File or Directory literal's `location` into the job. From a user's document,
each of those is a way to make the server read its own files (the development issuer's keys, /etc/passwd)
or reach what it can reach. They are refused here, before cwltool sees the document, each with the path of
the field that holds it.
"""

from __future__ import annotations

from typing import Any

from hpgc.errors import InvalidPackage

DIRECTIVES = ("$include", "$import", "$mixin", "$schemas")
# fields whose mapping form uses ids as keys: an input named `run` or `location` is a name, not a reference
_ID_MAPS = frozenset({"inputs", "outputs", "fields", "in", "out", "steps", "$namespaces"})
_LITERAL_CLASSES = ("File", "Directory")


def _pointer(path: list[str | int]) -> str:
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in path) if path else "/"


def refuse_external_references(doc: Any) -> None:
    """Raise InvalidPackage naming the first reference outside the document (JSON-pointer-like path)."""
    stack: list[tuple[Any, list[str | int], bool]] = [(doc, [], False)]
    while stack:  # iterative: the parser already capped the depth, but nothing here needs recursion
        node, path, id_map = stack.pop()
        if isinstance(node, list):
            stack.extend((item, [*path, i], False) for i, item in enumerate(node))
            continue
        if not isinstance(node, dict):
            continue
        for key, value in node.items():
            where = [*path, str(key)]
            if key in DIRECTIVES:
                raise InvalidPackage(f"{_pointer(where)}: {key} is not allowed: a deployed document must be "
                                     "self-contained (put what it refers to inline)")
            if not id_map:
                _check_field(node, str(key), value, where)
            stack.append((value, where, key in _ID_MAPS and isinstance(value, dict)))


def _check_field(node: dict[str, Any], key: str, value: Any, where: list[str | int]) -> None:
    if key == "run" and isinstance(value, str) and not value.startswith("#"):
        raise InvalidPackage(f"{_pointer(where)}: run '{_short(value)}' refers outside the document; "
                             "use an inline process or '#id' of a process in the same $graph")
    if key in ("location", "path") and isinstance(value, str) and (
            node.get("class") in _LITERAL_CLASSES or key == "location") and not value.startswith("_:"):
        raise InvalidPackage(f"{_pointer(where)}: {key} '{_short(value)}' refers to a file outside the document "
                             "(a local path, file: or http(s) URL); give a File its 'contents' instead")


def _short(value: str) -> str:
    return value if len(value) <= 80 else value[:77] + "..."
