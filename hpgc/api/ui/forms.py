"""A run form from a process's input descriptions, and the form's answer back into OGC inputs.

Each input becomes one field of a kind chosen from its schema: text, number, integer, boolean, choice (enum),
file (an href: a URL the server fetches), bbox (four numbers and a CRS), list (one value a line) or JSON (any
other schema). Conversion errors name the input, so the page shows them beside its field; the server's own
validation (the same as for JSON requests) decides the rest.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

PREFIX = "in."
BBOX_PARTS = ("minx", "miny", "maxx", "maxy")
MAX_LIST = 10000


@dataclass
class Field:
    id: str
    kind: str  # text, number, integer, boolean, choice, file, bbox, list, json
    title: str
    description: str
    required: bool
    many: bool = False
    item: str = "text"  # the kind of each value of a list
    choices: list[str] = field(default_factory=list)
    default: Any = None
    media_types: list[str] = field(default_factory=list)
    minimum: float | None = None
    maximum: float | None = None

    @property
    def name(self) -> str:
        return PREFIX + self.id


def _is_file(schema: dict[str, Any]) -> bool:
    return "contentMediaType" in schema or schema.get("contentEncoding") in ("binary", "base64") \
        or schema.get("format") in ("uri", "url")


def _is_bbox(schema: dict[str, Any]) -> bool:
    ref = str(schema.get("$ref", "")) + str(schema.get("format", ""))
    return "bbox" in ref.lower() or ("bbox" in schema.get("properties", {}) and schema.get("type") == "object")


def _kind(schema: dict[str, Any]) -> tuple[str, list[str], list[str]]:
    """(kind, enum choices, media types) of one value's schema."""
    options = schema.get("oneOf") or schema.get("anyOf")
    if isinstance(options, list) and options and all(isinstance(o, dict) and _is_file(o) for o in options):
        return "file", [], [str(o.get("contentMediaType")) for o in options if o.get("contentMediaType")]
    if _is_bbox(schema):
        return "bbox", [], []
    if _is_file(schema):
        return "file", [], [str(schema["contentMediaType"])] if schema.get("contentMediaType") else []
    if isinstance(schema.get("enum"), list):
        return "choice", [str(v) for v in schema["enum"]], []
    kind = schema.get("type")
    if kind in ("number", "integer", "boolean"):
        return str(kind), [], []
    if kind == "string" or (kind is None and not options and not schema):
        return "text", [], []
    return "json", [], []


def fields_of(inputs: dict[str, Any]) -> list[Field]:
    out = []
    for iid, desc in inputs.items():
        desc = desc if isinstance(desc, dict) else {}
        schema = desc.get("schema") if isinstance(desc.get("schema"), dict) else {}
        many = desc.get("maxOccurs") not in (None, 1)
        if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
            many, schema = True, schema["items"]
        kind, choices, media = _kind(schema)
        f = Field(iid, kind, str(desc.get("title") or iid), str(desc.get("description") or ""),
                  int(desc.get("minOccurs", 1) or 0) > 0 and "default" not in schema, choices=choices,
                  default=schema.get("default"), media_types=media,
                  minimum=schema.get("minimum"), maximum=schema.get("maximum"))
        if many and kind in ("text", "number", "integer", "choice", "file"):
            f.kind, f.many, f.item = "list", True, kind
        elif many:
            f.kind = "json"
        out.append(f)
    return out


class FormErrors(Exception):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _scalar(kind: str, text: str) -> Any:
    text = text.strip()
    if kind == "integer":
        return int(text)
    if kind == "number":
        value = float(text)
        if not math.isfinite(value):
            raise ValueError("not a finite number")
        return value
    if kind == "file":
        if not text.startswith(("http://", "https://")):
            raise ValueError("give an http:// or https:// URL")
        return {"href": text}
    return text


def inputs_of(fields: list[Field], form: Any) -> dict[str, Any]:
    """The execute request's inputs from a submitted form (a MultiDict); FormErrors by input id."""
    inputs: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for f in fields:
        raw = str(form.get(f.name, "")) if f.kind != "bbox" else ""
        try:
            if f.kind == "bbox":
                parts = [str(form.get(f"{f.name}.{p}", "")).strip() for p in BBOX_PARTS]
                if not any(parts):
                    if f.required:
                        errors[f.id] = "give the four corners"
                    continue
                numbers = [_scalar("number", p) for p in parts]
                if numbers[0] > numbers[2] or numbers[1] > numbers[3]:
                    raise ValueError("the minimum is past the maximum")
                value: dict[str, Any] = {"bbox": numbers}
                crs = str(form.get(f"{f.name}.crs", "")).strip()
                if crs:
                    value["crs"] = crs
                inputs[f.id] = value
                continue
            if not raw.strip():
                if f.required:
                    errors[f.id] = "this input is required"
                continue
            if f.kind == "list":
                lines = [line for line in raw.replace("\r", "").split("\n") if line.strip()]
                if len(lines) > MAX_LIST:
                    raise ValueError(f"at most {MAX_LIST} values")
                inputs[f.id] = [_scalar(f.item, line) for line in lines]
            elif f.kind == "json":
                inputs[f.id] = json.loads(raw)
            elif f.kind == "boolean":
                if raw not in ("true", "false"):
                    raise ValueError("choose true or false")
                inputs[f.id] = raw == "true"
            elif f.kind == "choice":
                if f.choices and raw not in f.choices:
                    raise ValueError(f"choose one of {', '.join(f.choices)}")
                inputs[f.id] = raw
            else:
                inputs[f.id] = _scalar(f.kind, raw)
        except (ValueError, TypeError) as exc:
            errors[f.id] = f"not valid: {exc}" if f.kind != "json" else f"not JSON: {exc}"
    if errors:
        raise FormErrors(errors)
    return inputs


def _shown(kind: str, value: Any) -> str:
    if kind == "file" and isinstance(value, dict):
        return str(value.get("href", ""))
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def values_of(fields: list[Field], inputs: dict[str, Any]) -> dict[str, str]:
    """Form values (field name → text) that show `inputs` (a job's, for "re-run with changes")."""
    out: dict[str, str] = {}
    for f in fields:
        if f.id not in inputs:
            continue
        value = inputs[f.id]
        if f.kind == "bbox" and isinstance(value, dict) and isinstance(value.get("bbox"), list):
            out.update({f"{f.name}.{p}": str(v) for p, v in zip(BBOX_PARTS, value["bbox"], strict=False)})
            if value.get("crs"):
                out[f"{f.name}.crs"] = str(value["crs"])
        elif f.kind == "list" and isinstance(value, list):
            out[f.name] = "\n".join(_shown(f.item, v) for v in value)
        elif f.kind == "json":
            out[f.name] = json.dumps(value, indent=1)
        elif f.kind == "file" and isinstance(value, dict):
            out[f.name] = str(value.get("href", ""))
        else:
            out[f.name] = _shown(f.kind, value)
    return out


def defaults_of(fields: list[Field]) -> dict[str, str]:
    return values_of(fields, {f.id: f.default for f in fields if f.default is not None})
