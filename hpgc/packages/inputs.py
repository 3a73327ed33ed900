"""Check execute inputs against a process description and normalise them.

Each input becomes a list of values; a value is a literal, a file given by reference (`href`), or a file
given inline (`value` with a media type, base64 for binary). Every error names the input.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from dataclasses import dataclass
from typing import Any

import jsonschema

from hpgc.errors import InvalidParameterValue
from hpgc.models.ogc import ProcessDescription

# s3://: an endpoint the site configured (hpgc/storage); file:///: a path where jobs run (hpgc/jobs/paths.py)
ALLOWED_HREF_SCHEMES = ("http://", "https://", "s3://", "file://")


@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class FileRef:
    href: str
    media_type: str | None = None


@dataclass(frozen=True)
class FileData:
    content: bytes
    media_type: str | None = None


@dataclass(frozen=True)
class FileSource:
    """A file the backend holds already (an upload): `source` is its absolute path where the job runs."""

    source: str
    media_type: str | None = None


@dataclass(frozen=True)
class FileInPlace:
    """A file where jobs run, read in place (a cluster path the user may read, checked as them)."""

    path: str
    media_type: str | None = None


InputValue = Literal | FileRef | FileData | FileSource | FileInPlace


def is_binary(schema: dict[str, Any]) -> bool:
    if schema.get("contentEncoding") or schema.get("format") in ("binary", "byte"):
        return True
    alternatives = schema.get("oneOf") or schema.get("anyOf") or []
    return bool(alternatives) and all(is_binary(s) for s in alternatives)


def _literal_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema keywords only: OGC adds `nullable`, and `contentEncoding` constrains nothing here."""
    schema = dict(schema)
    if schema.pop("nullable", False) and "type" in schema:
        schema["type"] = [schema["type"], "null"]
    return schema


def _one(input_id: str, schema: dict[str, Any], raw: Any) -> InputValue:
    if isinstance(raw, dict) and "href" in raw:
        href = raw["href"]
        if not isinstance(href, str) or not href.startswith(ALLOWED_HREF_SCHEMES):
            raise InvalidParameterValue(f"input '{input_id}': href must be an http(s), s3:// or file:/// URL")
        return FileRef(href, raw.get("type") or raw.get("mediaType"))
    if isinstance(raw, dict) and "value" in raw and set(raw) <= {
        "value", "mediaType", "encoding", "schema", "format"
    }:
        media_type = raw.get("mediaType") or (raw.get("format") or {}).get("mediaType")
        raw_value = raw["value"]
    else:
        media_type, raw_value = None, raw
    if is_binary(schema):
        if not isinstance(raw_value, str):
            raise InvalidParameterValue(f"input '{input_id}': expected a file (href or base64 value)")
        encoding = (raw.get("encoding") if isinstance(raw, dict) else None) or _encoding(schema)
        if encoding == "base64":
            try:
                return FileData(base64.b64decode(raw_value, validate=True), media_type)
            except (binascii.Error, ValueError):
                raise InvalidParameterValue(f"input '{input_id}': value is not valid base64") from None
        return FileData(raw_value.encode(), media_type)
    validator = _validator(json.dumps(_literal_schema(schema), sort_keys=True))
    if validator is not None:
        error = jsonschema.exceptions.best_match(validator.iter_errors(raw_value))
        if error is not None:
            raise InvalidParameterValue(f"input '{input_id}': {error.message}")
    return Literal(raw_value)


@functools.lru_cache(maxsize=1024)
def _validator(schema_json: str) -> jsonschema.protocols.Validator | None:
    """A checked validator per schema, built once: checking the schema itself costs far more than the value."""
    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError:
        return None  # a package's schema we cannot use to check: values are accepted as given
    return cls(schema)


def _encoding(schema: dict[str, Any]) -> str | None:
    if schema.get("contentEncoding"):
        return str(schema["contentEncoding"])
    for alt in schema.get("oneOf") or schema.get("anyOf") or []:
        if alt.get("contentEncoding"):
            return str(alt["contentEncoding"])
    return None


def validate_inputs(
    description: ProcessDescription, inputs: dict[str, Any], max_values: int = 10000
) -> dict[str, list[InputValue]]:
    unknown = sorted(set(inputs) - set(description.inputs))
    if unknown:
        raise InvalidParameterValue(
            f"unknown input '{unknown[0]}'; process '{description.id}' takes: "
            + ", ".join(sorted(description.inputs))
        )
    result: dict[str, list[InputValue]] = {}
    total = 0
    for input_id, desc in description.inputs.items():
        if input_id not in inputs or inputs[input_id] is None:
            if desc.minOccurs > 0 and "default" not in desc.schema_:
                raise InvalidParameterValue(f"input '{input_id}' is required")
            continue
        raw = inputs[input_id]
        schema = desc.schema_
        values = raw if isinstance(raw, list) and schema.get("type") != "array" else [raw]
        max_occurs = desc.maxOccurs
        limit = None if max_occurs in (None, "unbounded") else int(max_occurs)
        if limit is None and max_occurs is None:
            limit = 1
        if limit is not None and len(values) > limit:
            raise InvalidParameterValue(f"input '{input_id}' takes at most {limit} value(s), got {len(values)}")
        if len(values) < desc.minOccurs:
            raise InvalidParameterValue(f"input '{input_id}' needs at least {desc.minOccurs} value(s)")
        total += len(values)
        if total > max_values:
            raise InvalidParameterValue(f"too many input values (more than {max_values})")
        result[input_id] = [_one(input_id, schema, v) for v in values]
    return result
