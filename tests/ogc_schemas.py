"""Validate documents against the official OGC API - Processes schemas in ../shared/ogcapi-processes."""

from __future__ import annotations

import base64
import binascii
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7


def _find_schemas() -> Path:
    """../shared/ogcapi-processes beside the checkout; looked for further up too, so that a copy of the tree
    inside the checkout (mutmut's mutants/, bench/mutation.py) finds the same schemas."""
    for folder in Path(__file__).resolve().parents[1].parents:
        if (folder / "shared" / "ogcapi-processes").is_dir():
            return folder / "shared" / "ogcapi-processes"
    return Path(__file__).resolve().parents[1].parent / "shared" / "ogcapi-processes"


SCHEMAS = _find_schemas()


FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("byte", raises=(binascii.Error, ValueError))
def _is_base64(value: object) -> bool:
    """OpenAPI's `format: byte` is base64; without this check every plain string is ambiguous in the
    1.0 schemas' oneOf (string vs binaryInputValue)."""
    if not isinstance(value, str):
        return True
    base64.b64decode(value, validate=True)
    return True


@cache
def _registry(part: str) -> Registry:
    resources = []
    for path in (SCHEMAS / part).rglob("*.yaml"):
        rel = path.relative_to(SCHEMAS / part).as_posix()
        resources.append((f"https://schemas.test/{part}/{rel}", Resource(yaml.safe_load(path.read_text()), DRAFT7)))
    return Registry().with_resources(resources)


def validate(doc: Any, schema: str, part: str = "part1") -> None:
    """Raise jsonschema.ValidationError when doc does not match part/schema (e.g. 'statusInfo.yaml')."""
    if not SCHEMAS.is_dir():
        raise RuntimeError(f"official schemas not found at {SCHEMAS}")
    registry = _registry(part)
    root = registry.contents(f"https://schemas.test/{part}/{schema}")
    validator = jsonschema.Draft7Validator(
        {"$id": f"https://schemas.test/{part}/{schema}", **root}, registry=registry,
        format_checker=FORMATS,
    )
    validator.validate(doc)
