"""OGC application packages (Part 2, application/ogcapppkg+json), as deployed by clients.

Two generations of the same document circulate: `processDescription` is the process itself (the
Testbed-19 / September 2023 draft, used by the HPGC notebooks), or wraps it as `{"process": {...}}`
(later drafts). `additionalParameters` arrives as a bare list or in the 1.0 object form. Both are read.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

OGCAPPPKG = "application/ogcapppkg+json"  # an application package (a command in a container)
CWL_MEDIA_TYPE = "application/cwl+json"  # a packed CWL document, as hpgc stores and runs it


class ExecutionUnit(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    type: str | None = Field(default=None, description="SLURM, docker, oci, or a CWL media type.")
    image: str | None = None
    deployment: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    href: str | None = None
    value: Any = None
    unit: Any = None
    mediaType: str | None = None


class AppPackage(BaseModel):
    model_config = ConfigDict(extra="allow")

    processDescription: dict[str, Any] | None = None
    executionUnit: ExecutionUnit | list[ExecutionUnit]

    @field_validator("processDescription", mode="before")
    @classmethod
    def _unwrap(cls, value: Any) -> Any:
        if isinstance(value, dict) and isinstance(value.get("process"), dict) and "id" not in value:
            return value["process"]
        return value

    def units(self) -> list[ExecutionUnit]:
        return self.executionUnit if isinstance(self.executionUnit, list) else [self.executionUnit]


def params_list(additional: Any) -> list[dict[str, Any]]:
    """additionalParameters in either form → the list of {name, value} parameters."""
    if isinstance(additional, list):
        return [p for p in additional if isinstance(p, dict)]
    if isinstance(additional, dict):
        return [p for p in additional.get("parameters", []) if isinstance(p, dict)]
    if isinstance(additional, BaseModel):  # hpgc.models.ogc.AdditionalParameters
        return params_list(additional.model_dump())
    return []


def param(additional: Any, name: str) -> Any:
    for p in params_list(additional):
        if p.get("name") == name:
            value = p.get("value")
            return value[0] if isinstance(value, list) and len(value) == 1 else value
    return None


def to_object_form(additional: Any) -> dict[str, Any] | None:
    """The 1.0 form that the official schema and published clients expect."""
    if additional is None:
        return None
    if isinstance(additional, dict):
        return additional
    return {"parameters": [
        {"name": p.get("name"), "value": p.get("value") if isinstance(p.get("value"), list) else [p.get("value")]}
        for p in params_list(additional)
    ]}
