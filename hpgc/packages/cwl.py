"""CWL documents: validation and packing with cwltool, and the OGC description derived from them."""

from __future__ import annotations

import io
import json
import logging
import tempfile
import threading
from pathlib import Path
from typing import Any

from hpgc.errors import InvalidRequest
from hpgc.models.ogc import InputDescription, OutputDescription, ProcessDescription

_cwltool_lock = threading.Lock()  # cwltool's loader keeps global caches; one document at a time

SCALARS: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "int": {"type": "integer"},
    "long": {"type": "integer"},
    "float": {"type": "number"},
    "double": {"type": "number"},
    "boolean": {"type": "boolean"},
    "Any": {},
}


def pack(path: Path | str, only_itself: bool = False) -> dict[str, Any]:
    """Validate a CWL document (path, optionally with #id) and return it packed: one self-contained
    document with every reference resolved, so it is never re-fetched at run time. With `only_itself`,
    cwltool may read that one file and nothing else (no other file, no URL)."""
    from cwltool.context import LoadingContext
    from cwltool.main import main as cwltool_main

    loading = None
    if only_itself:
        loading = LoadingContext()
        loading.fetcher_constructor = _only(str(path).partition("#")[0])

    out, err = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)
    cwl_logger = logging.getLogger("cwltool")
    with _cwltool_lock:
        propagate, cwl_logger.propagate = cwl_logger.propagate, False  # its chatter belongs in `err` only
        try:
            rc = cwltool_main(["--pack", "--quiet", str(path)], stdout=out, stderr=err, logger_handler=handler,
                              loadingContext=loading)
        finally:
            cwl_logger.propagate = propagate
    if rc != 0:
        raise InvalidRequest(f"invalid CWL: {_tidy(err.getvalue())}")
    return json.loads(out.getvalue())


def pack_text(text: str, fragment: str | None = None) -> dict[str, Any]:
    """Pack a user's document: cwltool reads its temporary copy and fetches nothing else."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "package.cwl"
        path.write_text(text)
        return pack(f"{path}#{fragment}" if fragment else path, only_itself=True)


def _only(path: str) -> Any:
    """A schema-salad fetcher constructor that reads `path` and cwltool's own cached schemas, nothing else:
    defence in depth behind cwl_refs, should a reference slip past it."""
    from schema_salad.exceptions import ValidationException
    from schema_salad.fetcher import DefaultFetcher
    from schema_salad.ref_resolver import file_uri

    allowed = file_uri(str(Path(path).resolve()))

    class OnlyThisDocument(DefaultFetcher):
        def _allowed(self, url: str) -> bool:
            return url.partition("#")[0] == allowed or url in self.cache

        def fetch_text(self, url: str, content_types: list[str] | None = None) -> str:
            if not self._allowed(url):
                raise ValidationException(f"refused to fetch {url}: a deployed document must be self-contained")
            return super().fetch_text(url, content_types)

        def check_exists(self, url: str) -> bool:
            return self._allowed(url) and super().check_exists(url)

    def construct(cache: Any, session: Any) -> DefaultFetcher:
        return OnlyThisDocument(cache, None)  # no session: not even a request it could be tricked into

    return construct


def _tidy(message: str) -> str:
    lines = [ln for ln in message.splitlines() if ln.strip() and "INFO" not in ln]
    return " ".join(ln.strip() for ln in lines)[:2000] or "cwltool rejected the document"


def main_process(packed: dict[str, Any]) -> dict[str, Any]:
    """The runnable object of a packed document: the document itself, or '#main' in its $graph."""
    if "$graph" not in packed:
        return packed
    for obj in packed["$graph"]:
        if obj.get("id") == "#main":
            return obj
    return packed["$graph"][0]


def short_id(cwl_id: str) -> str:
    return cwl_id.rsplit("/", 1)[-1].lstrip("#")


def _schema(cwl_type: Any) -> tuple[dict[str, Any], bool, bool]:
    """JSON schema for a CWL type → (schema, optional, is_file_list)."""
    optional = False
    if isinstance(cwl_type, list):
        members = [t for t in cwl_type if t != "null"]
        optional = len(members) < len(cwl_type)
        if len(members) == 1:
            schema, _, files = _schema(members[0])
            return schema, optional, files
        return {"oneOf": [_schema(m)[0] for m in members]}, optional, False
    if isinstance(cwl_type, str):
        if cwl_type in SCALARS:
            return dict(SCALARS[cwl_type]), optional, False
        if cwl_type in ("File", "Directory"):
            return {"type": "string", "contentEncoding": "binary"}, optional, False
        return {"type": "string"}, optional, False
    kind = cwl_type.get("type")
    if kind == "enum":
        return {"type": "string", "enum": [short_id(s) for s in cwl_type["symbols"]]}, optional, False
    if kind == "array":
        item, _, _ = _schema(cwl_type["items"])
        if cwl_type["items"] == "File":
            return item, optional, True
        return {"type": "array", "items": item}, optional, False
    if kind == "record":
        props = {short_id(f["name"]): _schema(f["type"])[0] for f in cwl_type.get("fields", [])}
        return {"type": "object", "properties": props}, optional, False
    return {}, optional, False


def describe(packed: dict[str, Any], process_id: str, version: str = "1.0.0") -> ProcessDescription:
    tool = main_process(packed)
    inputs: dict[str, InputDescription] = {}
    for inp in tool.get("inputs", []):
        schema, optional, file_list = _schema(inp["type"])
        if "default" in inp:
            optional = True
            schema["default"] = inp["default"]
        if inp.get("format") and schema.get("contentEncoding"):
            schema["contentMediaType"] = media_type_of(inp["format"])
        inputs[short_id(inp["id"])] = InputDescription(
            title=inp.get("label"),
            description=_doc(inp.get("doc")),
            minOccurs=0 if optional else 1,
            maxOccurs="unbounded" if file_list else None,
            schema=schema,
        )
    outputs: dict[str, OutputDescription] = {}
    for out in tool.get("outputs", []):
        schema, _, _ = _schema(out["type"])
        if out.get("format") and schema.get("contentEncoding"):
            schema["contentMediaType"] = media_type_of(out["format"])
        outputs[short_id(out["id"])] = OutputDescription(
            title=out.get("label"), description=_doc(out.get("doc")), schema=schema
        )
    return ProcessDescription(
        id=process_id,
        version=str(tool.get("s:version", version)),
        title=tool.get("label") or process_id,
        description=_doc(tool.get("doc")),
        inputs=inputs,
        outputs=outputs,
    )


def _doc(doc: Any) -> str | None:
    if isinstance(doc, list):
        return "\n".join(doc)
    return doc


def media_type_of(fmt: str) -> str:
    """CWL formats are IRIs; IANA media type IRIs map back to the media type itself."""
    prefix = "https://www.iana.org/assignments/media-types/"
    if fmt.startswith(prefix):
        return fmt[len(prefix):]
    return fmt
