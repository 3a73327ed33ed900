"""`-i name=value` on the command line → an execute request's inputs, typed by the process description.

`-i n=3` is an integer if the schema says so, `-i list=1,2,3` an array, `-i obj={"a":1}` JSON, `-i f=https://…`
a file by reference, `-i f=@local.tif` a local file, uploaded (POST /files) when the request is sent
(hpgc/client/uploads.py). Repeating a name gives several values (maxOccurs > 1).
"""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path
from typing import Any

from hpgc.client.errors import UsageError
from hpgc.client.uploads import LocalFile
from hpgc.models.ogc import InputDescription, ProcessDescription

TRUE, FALSE = {"true", "yes", "1", "on"}, {"false", "no", "0", "off"}


def _type(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind is None:
        for alt in schema.get("oneOf") or schema.get("anyOf") or []:
            if isinstance(alt, dict) and (found := _type(alt)):
                return found
    return kind if isinstance(kind, str) else None


def is_file(schema: dict[str, Any]) -> bool:
    """As the server decides it (hpgc/packages/inputs.py is_binary): an encoded or binary string."""
    if schema.get("contentEncoding") or schema.get("format") in ("binary", "byte"):
        return True
    alternatives = schema.get("oneOf") or schema.get("anyOf") or []
    return bool(alternatives) and all(isinstance(s, dict) and is_file(s) for s in alternatives)


def _scalar(name: str, kind: str | None, text: str) -> Any:
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text)
    except ValueError:
        raise UsageError(f"input {name!r}: {text!r} is not a{'n integer' if kind == 'integer' else ' number'}") \
            from None
    if kind == "boolean":
        if text.lower() in TRUE | FALSE:
            return text.lower() in TRUE
        raise UsageError(f"input {name!r}: {text!r} is not a boolean (true/false)")
    if kind in ("object", "array") or (kind is None and text[:1] in "[{"):
        try:
            return json.loads(text)
        except ValueError:
            if kind == "object":
                raise UsageError(f"input {name!r}: expected a JSON object") from None
    return text


def local_file(name: str, path: str, media_type: str | None) -> LocalFile:
    file = Path(path).expanduser()
    if not file.is_file():
        raise UsageError(f"input {name!r}: cannot read {path}: not a file")
    try:
        file.open("rb").close()
    except OSError as exc:
        raise UsageError(f"input {name!r}: cannot read {path}: {exc.strerror}") from None
    media = media_type or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    return LocalFile(name, file, media)


def value_of(name: str, desc: InputDescription | None, text: str) -> Any:
    schema = desc.schema_ if desc is not None else {}
    if is_file(schema):
        media = schema.get("contentMediaType")
        if text.startswith("@"):
            return local_file(name, text[1:], media if isinstance(media, str) else None)
        if text.startswith(("http://", "https://", "s3://", "file:///")):
            return {"href": text, **({"type": media} if isinstance(media, str) else {})}
        raise UsageError(f"input {name!r} is a file: give an http(s), s3:// or file:/// URL or @local-file, "
                         f"not {text[:60]!r}")
    if text.startswith("@"):  # curl's convention: the value is the file's content
        try:
            text = Path(text[1:]).expanduser().read_text().rstrip("\n")
        except OSError as exc:
            raise UsageError(f"input {name!r}: cannot read {text[1:]}: {exc.strerror}") from None
    kind = _type(schema)
    if kind == "array" and not text.startswith("["):
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        return [_scalar(name, _type(items), part.strip()) for part in text.split(",") if part.strip()]
    return _scalar(name, kind, text)


def parse_inputs(pairs: list[str], description: ProcessDescription | None) -> dict[str, Any]:
    """The -i options in order; an input with maxOccurs > 1 is a list of every value given for it."""
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"-i {pair!r}: expected name=value")
        desc = description.inputs.get(name) if description is not None else None
        value = value_of(name, desc, text)
        many = desc is not None and not _is_array(desc) and \
            (desc.maxOccurs == "unbounded" or (desc.maxOccurs or 1) > 1)
        if many:
            out.setdefault(name, []).append(value)
        elif name in out:
            raise UsageError(f"input {name!r} takes one value; it was given twice")
        else:
            out[name] = value
    return out


def _is_array(desc: InputDescription | None) -> bool:
    return desc is not None and _type(desc.schema_) == "array"
