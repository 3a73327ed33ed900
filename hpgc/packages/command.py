"""Command packages (executionUnit SLURM / docker / oci + an entry point) → RunSpec.

The command line is built from the package's per-input `pattern` / `array-pattern` (the ZOO-Project /
Testbed-19 convention, see appkgs/BandMath):
  `-name`  → `-<input id>`           `name` → `<input id>`
  `value`, `__value__` → the value, as one argument (argv is never parsed by a shell)
  `value value` in an array-pattern → every value of the input, one argument each
  n value tokens in a pattern → the next n values; an input with more values and no array-pattern gets the
  pattern once per n values (`-name value` with a, b → `-x a -x b`): no value is dropped
  `inputs_<id>_value` → the value of another input        a blank pattern → nothing by itself
In an output's pattern, `value` is the output file (a generated path).
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from hpgc.errors import InvalidPackage
from hpgc.models.names import (
    ImageNameError,
    image_cache_name,
    is_managed_image,
    is_site_image,
    normalise_reference,
    shown,
)
from hpgc.models.ogc import OutputRequest, ProcessDescription
from hpgc.models.package import AppPackage, ExecutionUnit, param
from hpgc.models.resources import ResourceLimits
from hpgc.models.run import Container, Resources, RunSpec, StagedFile
from hpgc.packages.inputs import InputValue, Literal
from hpgc.packages.staging import EXTENSIONS, stage

RUNTIMES = ("singularity", "apptainer")
DEFAULT_PATTERN = "-name value"


def _reference(ref: str, where: str) -> str:
    try:
        return normalise_reference(ref)
    except ImageNameError as exc:
        raise InvalidPackage(f"{where}: {exc}") from None


def _site_image(name: str, where: str) -> str:
    """A bare .sif file name: an image the site put in the cache, only ever read."""
    if is_managed_image(name):
        raise InvalidPackage(f"{where}: {shown(name)} names a file hpgc pulls an image reference into; "
                             "give the reference itself (e.g. docker://owner/image:tag) as executionUnit.image")
    if not is_site_image(name):
        raise InvalidPackage(f"{where}: {shown(name)} must be a .sif file name in the image cache (no folder, "
                             "not starting with '.') or a pullable reference (docker://, oras://, https://...)")
    return name


def _pulled(ref: str, where: str) -> Container:
    source = _reference(ref, where)
    return Container(image=image_cache_name(source), source=source)


def container_of(named: str | None, unit_image: str | None) -> Container | None:
    """The image a command package runs in: `named` is the file the entry point names after
    `singularity exec` (if it does), `unit_image` is executionUnit.image.

    A pullable reference is pulled into a cache file whose name carries a digest of the whole reference
    (image_cache_name), so no two references share a file and no deploy can write a file another reference
    uses. A bare .sif name is an image the site put in the cache: it is only read, never pulled into. When
    the entry point names a site image and executionUnit.image a reference, the site's file is used where
    it exists and the reference is pulled where it does not (packages written for clusters whose sites
    pre-seed images, like the HPGC notebooks' BandMath)."""
    if named is not None and "://" in named:
        container = _pulled(named, "entry-point")
        if unit_image and _reference(unit_image, "executionUnit.image") != container.source:
            raise InvalidPackage("the entry point and executionUnit.image name different images")
        return container
    if named is not None:
        site = _site_image(named, "entry-point")
        if not unit_image:
            return Container(image=site)
        if "://" not in unit_image and unit_image.endswith(".sif"):
            _site_image(unit_image, "executionUnit.image")
            return Container(image=site)  # two site images: the one the entry point runs
        return _pulled(unit_image, "executionUnit.image").model_copy(update={"site_image": site})
    if not unit_image:
        return None
    if "://" not in unit_image and unit_image.endswith(".sif"):
        return Container(image=_site_image(unit_image, "executionUnit.image"))
    return _pulled(unit_image, "executionUnit.image")


def command_unit(pkg: AppPackage) -> ExecutionUnit:
    for unit in pkg.units():
        if (unit.type or "").lower() in ("slurm", "docker", "oci"):
            return unit
    raise InvalidPackage("executionUnit: expected a unit of type SLURM, docker or oci")


def split_entry_point(entry: str, unit: ExecutionUnit) -> tuple[Container | None, list[str]]:
    """'singularity exec X.sif /bin/tool' → (Container X.sif, ['/bin/tool']); the runtime named in the
    package is replaced by the cluster's own (apptainer or singularity)."""
    try:
        tokens = shlex.split(entry)
    except ValueError as exc:
        raise InvalidPackage(f"entry-point: {exc}") from None
    if not tokens:
        raise InvalidPackage("entry-point is empty")
    if tokens[0] in RUNTIMES and len(tokens) >= 3 and tokens[1] in ("exec", "run"):
        return container_of(tokens[2], unit.image), tokens[3:]
    return container_of(None, unit.image), tokens


def pattern_of(additional: Any, array: bool) -> str:
    if array:
        found = param(additional, "array-pattern")
        if found is not None:
            return str(found)
    found = param(additional, "pattern")
    return DEFAULT_PATTERN if found is None else str(found)


def check_patterns(description: ProcessDescription, pkg: AppPackage) -> None:
    """Deploy-time: every `inputs_<id>_value` must name an input, and there must be an entry point."""
    if not param(description.additionalParameters, "entry-point") and not param(
            pkg.processDescription.get("additionalParameters") if pkg.processDescription else None, "entry-point"):
        raise InvalidPackage("processDescription.additionalParameters: missing the 'entry-point' parameter")
    for kind, items in (("inputs", description.inputs), ("outputs", description.outputs)):
        for item_id, item in items.items():
            for array in (False, True):
                for token in pattern_of(item.additionalParameters, array).split():
                    ref = _input_ref(token)
                    if ref is not None and ref not in description.inputs:
                        raise InvalidPackage(f"{kind}.{item_id}: pattern refers to unknown input '{ref}'")


def _input_ref(token: str) -> str | None:
    if token.startswith("inputs_") and token.endswith("_value") and len(token) > 13:
        return token[len("inputs_"):-len("_value")]
    return None


def _text(value: object) -> str:
    if isinstance(value, StagedFile):
        return value.path
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _expand(pattern: str, name: str, values: list[str], refs: dict[str, str], array: bool) -> list[str]:
    tokens = pattern.split()
    n_value = sum(t in ("value", "__value__") for t in tokens)
    if not array and 0 < n_value < len(values):
        # more values than a (non-array) pattern takes: the pattern again for each next n_value of them, so no
        # value is dropped (`-name value` with a, b → -x a -x b)
        return [arg for i in range(0, len(values), n_value)
                for arg in _expand(pattern, name, values[i:i + n_value], refs, False)]
    out: list[str] = []
    used = 0
    for token in tokens:
        if token == "-name":
            out.append(f"-{name}")
        elif token == "name":
            out.append(name)
        elif token in ("value", "__value__"):
            if array:
                if used == 0:
                    out.extend(values)  # the run of value tokens stands for all the values
                used += 1
            elif used < len(values):
                out.append(values[used])
                used += 1
        elif (ref := _input_ref(token)) is not None:
            if ref in refs:
                out.append(refs[ref])
        else:
            out.append(token)
    if not array and n_value == 0 and not tokens:
        return []
    return out


def _resources(unit: ExecutionUnit) -> Resources:
    cfg = unit.config or {}

    def num(*keys: str) -> float | None:
        for k in keys:
            if isinstance(cfg.get(k), (int, float)):
                return float(cfg[k])
        return None

    cpus, mem, tmp, timeout = num("cpuMin", "cpuMax"), num("memoryMin", "memoryMax"), num("storageTempMin"), num(
        "jobTimeout")
    return Resources(
        cpus=int(cpus) if cpus else None,
        memory_mb=int(mem * 1024) if mem else None,  # the schema's unit is GB
        tmp_mb=int(tmp * 1024) if tmp else None,
        time_limit_s=int(timeout) if timeout else None,
    )


def command_limits(package: dict[str, Any]) -> ResourceLimits:
    """The most a request may ask of a command package: executionUnit.config's cpuMax and memoryMax."""
    cfg = command_unit(AppPackage.model_validate(package)).config or {}
    cpus, mem = cfg.get("cpuMax"), cfg.get("memoryMax")
    ok = (int, float)
    return ResourceLimits(cpus=int(cpus) if isinstance(cpus, ok) and cpus >= 1 else None,
                          memory_mb=int(mem * 1024) if isinstance(mem, ok) and mem > 0 else None,
                          where="the process (its executionUnit.config)")


def output_path(output_id: str, description: ProcessDescription, requested: OutputRequest | None) -> str:
    media = (requested.format or {}).get("mediaType") if requested and requested.format else None
    if media is None and output_id in description.outputs:
        schema = description.outputs[output_id].schema_
        for s in [schema, *(schema.get("oneOf") or [])]:
            if s.get("contentMediaType"):
                media = s["contentMediaType"]
                break
    return f"outputs/{output_id}{EXTENSIONS.get(media or '', '')}"


def command_run_spec(
    description: ProcessDescription, package: dict[str, Any], job_id: str, inputs: dict[str, list[InputValue]],
    requested: dict[str, OutputRequest] | None,
) -> RunSpec:
    pkg = AppPackage.model_validate(package)
    unit = command_unit(pkg)
    entry = param(description.additionalParameters, "entry-point")
    if not entry:
        raise InvalidPackage("the package has no entry point")
    container, argv = split_entry_point(str(entry), unit)
    files: list[StagedFile] = []
    texts: dict[str, list[str]] = {}
    for input_id, desc in description.inputs.items():
        values = inputs.get(input_id)
        if values is None and "default" in desc.schema_ and desc.schema_["default"] is not None:
            values = [Literal(desc.schema_["default"])]
        if not values:
            continue
        staged, seen = stage(input_id, values)
        files.extend(staged)
        texts[input_id] = [_text(v) for v in seen]
    refs = {k: v[0] for k, v in texts.items() if v}
    for input_id, desc in description.inputs.items():
        if input_id not in texts:
            continue
        array = len(texts[input_id]) > 1 or (desc.maxOccurs not in (None, 1))
        pattern = pattern_of(desc.additionalParameters, array)
        argv += _expand(pattern, input_id, texts[input_id], refs, array and param(
            desc.additionalParameters, "array-pattern") is not None)
    outputs: dict[str, str] = {}
    for output_id, odesc in description.outputs.items():
        path = output_path(output_id, description, (requested or {}).get(output_id))
        outputs[output_id] = path
        argv += _expand(pattern_of(odesc.additionalParameters, False), output_id, [path], refs, False)
    return RunSpec(job_id=job_id, process_id=description.id, kind="command", argv=argv, container=container,
                   files=files, outputs=outputs, resources=_resources(unit))
