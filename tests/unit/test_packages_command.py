"""Command packages → RunSpec: command-line patterns, array patterns, defaults, resources, entry points.
Every expected command line is written out here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hpgc.errors import InvalidPackage
from hpgc.models.names import image_cache_name
from hpgc.models.ogc import OutputRequest, ProcessDescription
from hpgc.models.package import AppPackage, ExecutionUnit, to_object_form
from hpgc.models.run import Container, Resources, StagedFile
from hpgc.packages.command import (
    DEFAULT_PATTERN,
    _input_ref,
    _resources,
    _text,
    check_patterns,
    command_run_spec,
    command_unit,
    container_of,
    output_path,
    pattern_of,
    split_entry_point,
)
from hpgc.packages.inputs import FileData, FileRef, Literal

REPO = Path(__file__).resolve().parents[2]
BANDMATH = json.loads((REPO / "appkgs/BandMath/package.json").read_text())
OTB = "/opt/otbtf/bin/otbcli_BandMath"


def _stored(doc: dict[str, Any]) -> dict[str, Any]:
    """A description as the registry stores it: additionalParameters in the 1.0 object form."""
    out = {**doc, "additionalParameters": to_object_form(doc.get("additionalParameters"))}
    for kind in ("inputs", "outputs"):
        out[kind] = {k: {**v, "additionalParameters": to_object_form(v.get("additionalParameters"))}
                     for k, v in doc.get(kind, {}).items()}
    return out


def _bandmath() -> tuple[ProcessDescription, dict[str, Any]]:
    return ProcessDescription.model_validate(_stored(BANDMATH["processDescription"])), BANDMATH


def test_bandmath_as_the_notebooks_run_it_with_defaults() -> None:
    desc, pkg = _bandmath()
    spec = command_run_spec(desc, pkg, "j1", {"il": [FileRef("https://x/a.tif"), FileRef("https://x/b.tif")],
                                              "exp": [Literal("im1b1+im2b1")]}, None)
    # il: its array-pattern "-name value value" (all values); out: pattern " " (nothing) but its default
    # 'float' is what the output's "inputs_out_value" says; ram: its default 128; exp: "-name __value__"
    assert spec.argv == [OTB, "-il", "inputs/il_0.tif", "inputs/il_1.tif", "-ram", "128", "-exp", "im1b1+im2b1",
                         "-out", "outputs/out.tif", "float"]
    assert spec.files == [StagedFile(path="inputs/il_0.tif", href="https://x/a.tif"),
                          StagedFile(path="inputs/il_1.tif", href="https://x/b.tif")]
    assert spec.outputs == {"out": "outputs/out.tif"}
    assert spec.kind == "command" and spec.job_id == "j1" and spec.process_id == "BandMath"
    assert spec.container is not None and spec.container.site_image == "otbtf_4.1.0-cpu.sif"
    assert spec.container.source == "docker://otbtf/4.1.0-cpu"
    assert spec.resources == Resources()


def test_bandmath_given_values_replace_defaults_and_one_image_is_still_an_array() -> None:
    desc, pkg = _bandmath()
    spec = command_run_spec(desc, pkg, "j2", {"il": [FileData(b"II*", "image/tiff")], "out": [Literal("uint8")],
                                              "ram": [Literal(256)], "exp": [Literal("im1b1")]},
                            {"out": OutputRequest.model_validate({"format": {"mediaType": "image/png"}})})
    assert spec.argv == [OTB, "-il", "inputs/il_0.tif", "-ram", "256", "-exp", "im1b1",
                         "-out", "outputs/out.png", "uint8"]
    assert spec.files == [StagedFile(path="inputs/il_0.tif", content=b"II*")]
    assert spec.outputs == {"out": "outputs/out.png"}


def _pkg(inputs: dict[str, Any], outputs: dict[str, Any] | None = None, entry: str = "tool --go",
         unit: dict[str, Any] | None = None) -> tuple[ProcessDescription, dict[str, Any]]:
    doc = {"id": "p", "inputs": inputs, "outputs": outputs or {},
           "additionalParameters": [{"name": "entry-point", "value": entry}]}
    return ProcessDescription.model_validate(_stored(doc)), {"processDescription": doc,
                                                    "executionUnit": unit or {"type": "SLURM"}}


def _ap(**params: str) -> dict[str, Any]:
    return {"additionalParameters": [{"name": k.replace("_", "-"), "value": [v]} for k, v in params.items()]}


def _argv(inputs: dict[str, Any], values: dict[str, list[Any]], outputs: dict[str, Any] | None = None) -> list[str]:
    desc, pkg = _pkg(inputs, outputs)
    return command_run_spec(desc, pkg, "j", values, None).argv


S = {"schema": {"type": "string"}}
GO = ["tool", "--go"]  # the entry point: the command line starts with it


@pytest.mark.parametrize(("pattern", "values", "argv"), [
    ("-name value", ["v"], ["-x", "v"]),
    ("name value", ["v"], ["x", "v"]),
    ("--flag=on value", ["v"], ["--flag=on", "v"]),  # any other token is itself
    ("-name __value__", ["a b"], ["-x", "a b"]),  # one argument, never split
    ("value -name", ["v"], ["v", "-x"]),
    ("", ["v"], []),  # a blank pattern: nothing by itself
    (" ", ["v"], []),
])
def test_patterns_of_one_value(pattern: str, values: list[str], argv: list[str]) -> None:
    assert _argv({"x": {**S, **_ap(pattern=pattern)}}, {"x": [Literal(v) for v in values]}) == [*GO, *argv]


def test_default_pattern_is_dash_name_value() -> None:
    assert DEFAULT_PATTERN == "-name value"
    assert _argv({"x": S}, {"x": [Literal("v")]}) == [*GO, "-x", "v"]


def test_two_value_tokens_take_two_values_and_an_array_pattern_takes_all() -> None:
    arr = {"schema": {"type": "string"}, "maxOccurs": 5}
    two = _argv({"x": {**arr, **_ap(pattern="-name value value")}}, {"x": [Literal("a"), Literal("b")]})
    assert two == [*GO, "-x", "a", "b"]
    allv = _argv({"x": {**arr, **_ap(pattern="-no", array_pattern="-name value value -end")}},
                 {"x": [Literal("a"), Literal("b"), Literal("c")]})
    assert allv == [*GO, "-x", "a", "b", "c", "-end"]
    # one value of an input that may have many is an array too
    assert _argv({"x": {**arr, **_ap(pattern="-no", array_pattern="-name value")}}, {"x": [Literal("a")]}) == [
        *GO, "-x", "a"]
    # an input of one value uses its pattern, not its array-pattern
    assert _argv({"x": {**S, **_ap(pattern="-one value", array_pattern="-many value")}}, {"x": [Literal("a")]}) == [
        *GO, "-one", "a"]


def test_value_tokens_take_the_values_in_order_and_no_more_than_given() -> None:
    arr = {"schema": {"type": "string"}, "maxOccurs": 5}
    three = _argv({"x": {**arr, **_ap(pattern="-name value value value")}},
                  {"x": [Literal("a"), Literal("b"), Literal("c")]})
    assert three == [*GO, "-x", "a", "b", "c"]
    fewer = _argv({"x": {**arr, **_ap(pattern="-name value value -z")}}, {"x": [Literal("a")]})
    assert fewer == [*GO, "-x", "a", "-z"]


@pytest.mark.parametrize(("pattern", "n", "argv"), [
    ("-name value", 3, ["-x", "a", "-x", "b", "-x", "c"]),  # one value token: the pattern once per value
    ("value", 2, ["a", "b"]),
    ("--in=1 name __value__", 2, ["--in=1", "x", "a", "--in=1", "x", "b"]),
    ("-name value value", 3, ["-x", "a", "b", "-x", "c"]),  # two value tokens: once per two values
    ("-name value value", 4, ["-x", "a", "b", "-x", "c", "d"]),
    ("-flag", 3, ["-flag"]),  # no value token: the pattern once, as for one value
    ("", 2, []),
])
def test_more_values_than_a_pattern_without_array_form_takes_are_all_passed(
        pattern: str, n: int, argv: list[str]) -> None:
    # maxOccurs > 1 but no array-pattern: the values after the first were dropped (mutant command_run_spec_76)
    desc = {"schema": {"type": "string"}, "maxOccurs": 5, **_ap(pattern=pattern)}
    assert _argv({"x": desc, "y": S}, {"x": [Literal(v) for v in "abcd"[:n]], "y": [Literal("z")]}) == [
        *GO, *argv, "-y", "z"]


def test_several_files_of_an_input_without_array_pattern_are_all_on_the_command_line() -> None:
    desc = {"schema": {"type": "string", "contentMediaType": "image/tiff", "contentEncoding": "base64"},
            "maxOccurs": 4, **_ap(pattern="--img value")}
    spec = command_run_spec(*_pkg({"im": desc}), "j", {"im": [FileData(b"1", "image/tiff"),
                                                           FileData(b"2", "image/tiff")]}, None)
    assert spec.argv == [*GO, "--img", "inputs/im_0.tif", "--img", "inputs/im_1.tif"]
    assert spec.files == [StagedFile(path="inputs/im_0.tif", content=b"1"), StagedFile(path="inputs/im_1.tif",
                                                                                        content=b"2")]


@pytest.mark.parametrize(("max_occurs", "n", "used"), [
    (None, 2, "-many"), (1, 2, "-many"), (2, 1, "-many"), (1, 1, "-one"), (None, 1, "-one")])
def test_array_pattern_is_for_several_values_or_inputs_that_may_have_several(
        max_occurs: int | None, n: int, used: str) -> None:
    desc = {"schema": {"type": "string"}, **_ap(pattern="-one value", array_pattern="-many value value")}
    if max_occurs is not None:
        desc["maxOccurs"] = max_occurs
    values = [Literal(v) for v in "ab"[:n]]
    assert _argv({"x": desc}, {"x": values}) == [*GO, used, *"ab"[:n]]


def test_value_of_another_input_and_of_a_missing_one() -> None:
    inputs = {"a": {**S, **_ap(pattern="-name value inputs_b_value")}, "b": {**S, **_ap(pattern="")},
              "c": {**S, **_ap(pattern="inputs_zz_value -name")}}
    assert _argv(inputs, {"a": [Literal("1")], "b": [Literal("2")], "c": [Literal("3")]}) == [
        *GO, "-a", "1", "2", "-c"]
    assert _argv({"a": {**S, **_ap(pattern="-name value inputs_b_value")}, "b": S}, {"a": [Literal("1")]}) == [
        *GO, "-a", "1"]


def test_inputs_without_value_or_default_are_left_out_and_null_default_is_no_default() -> None:
    inputs = {"a": {"schema": {"type": "integer", "default": 3}}, "b": {"schema": {"type": "integer"}},
              "c": {"schema": {"type": "integer", "default": None}}, "d": {"schema": {"type": "integer", "default": 0}}}
    assert _argv(inputs, {}) == [*GO, "-a", "3", "-d", "0"]
    assert _argv(inputs, {"a": [Literal(7)], "b": [Literal(8)]}) == [*GO, "-a", "7", "-b", "8", "-d", "0"]


def test_output_patterns_get_the_generated_path() -> None:
    outputs = {"o": {"schema": {"type": "string", "contentMediaType": "application/json"},
                     **_ap(pattern="--out value")}, "p": {"schema": {"type": "string"}}}
    assert _argv({}, {}, outputs) == [*GO, "--out", "outputs/o.json", "-p", "outputs/p"]


def test_values_as_text() -> None:
    assert _text(True) == "true" and _text(False) == "false"
    assert _text({"a": [1, 2]}) == '{"a": [1, 2]}' and _text([1, "x"]) == '[1, "x"]'
    assert _text(StagedFile(path="inputs/x_0.tif")) == "inputs/x_0.tif"
    assert _text(2.5) == "2.5" and _text(0) == "0" and _text("s") == "s"


def test_input_reference_tokens() -> None:
    assert _input_ref("inputs_a_value") == "a"
    assert _input_ref("inputs_out_value") == "out"
    assert _input_ref("inputs__value") is None  # names no input
    assert _input_ref("inputs_a_valuex") is None and _input_ref("xinputs_a_value") is None
    assert _input_ref("value") is None


def test_pattern_of() -> None:
    ap = _ap(pattern="-p value", array_pattern="-a value")["additionalParameters"]
    assert pattern_of(ap, False) == "-p value" and pattern_of(ap, True) == "-a value"
    only = _ap(pattern="-p value")["additionalParameters"]
    assert pattern_of(only, True) == "-p value"
    assert pattern_of(None, False) == "-name value" and pattern_of(None, True) == "-name value"
    assert pattern_of([{"name": "pattern", "value": ""}], False) == ""


@pytest.mark.parametrize(("config", "expected"), [
    ({}, Resources()),
    ({"cpuMin": 2, "memoryMin": 1.5, "storageTempMin": 2, "jobTimeout": 600},
     Resources(cpus=2, memory_mb=1536, tmp_mb=2048, time_limit_s=600)),
    ({"cpuMax": 4, "memoryMax": 2}, Resources(cpus=4, memory_mb=2048)),  # the max where no min is given
    ({"cpuMin": 1, "cpuMax": 8, "memoryMin": 1, "memoryMax": 4}, Resources(cpus=1, memory_mb=1024)),
    ({"cpuMin": "2", "memoryMin": None, "jobTimeout": 0}, Resources()),  # not numbers, or nothing asked
    ({"cpuMin": 2.7, "jobTimeout": 90.5}, Resources(cpus=2, time_limit_s=90)),
])
def test_resources_from_the_unit_config(config: dict[str, Any], expected: Resources) -> None:
    assert _resources(ExecutionUnit(type="docker", config=config)) == expected


def test_resources_reach_the_run_spec() -> None:
    desc, pkg = _pkg({}, unit={"type": "docker", "image": "docker://a/b", "config": {"cpuMin": 3}})
    spec = command_run_spec(desc, pkg, "j", {}, None)
    assert spec.resources == Resources(cpus=3)
    assert spec.container is not None and spec.container.source == "docker://a/b"


def test_command_unit_is_the_first_slurm_docker_or_oci_one() -> None:
    for kind in ("SLURM", "slurm", "docker", "OCI"):
        assert command_unit(AppPackage.model_validate({"executionUnit": {"type": kind}})).type == kind
    pkg = AppPackage.model_validate({"executionUnit": [{"type": "application/cwl"}, {"type": "oci", "image": "i1"},
                                                       {"type": "docker", "image": "i2"}]})
    assert command_unit(pkg).image == "i1"
    for units in ({"type": "application/cwl"}, {"href": "x"}):
        with pytest.raises(InvalidPackage, match="expected a unit of type SLURM, docker or oci"):
            command_unit(AppPackage.model_validate({"executionUnit": units}))


def test_entry_points() -> None:
    unit = ExecutionUnit(type="SLURM")
    assert split_entry_point("apptainer run x.sif tool 'a b'", unit) == (Container(image="x.sif"), ["tool", "a b"])
    assert split_entry_point("singularity exec x.sif", unit) == (Container(image="x.sif"), [])
    assert split_entry_point("singularity shell x.sif", unit) == (None, ["singularity", "shell", "x.sif"])
    assert split_entry_point("singularity exec", unit) == (None, ["singularity", "exec"])
    assert split_entry_point("docker exec x.sif t", unit) == (None, ["docker", "exec", "x.sif", "t"])
    assert split_entry_point("python3 -c 'print(1)'", unit) == (None, ["python3", "-c", "print(1)"])
    assert split_entry_point("t", ExecutionUnit(type="SLURM", image="s.sif")) == (Container(image="s.sif"), ["t"])
    with pytest.raises(InvalidPackage, match="entry-point: No closing quotation"):
        split_entry_point("tool 'open", unit)
    with pytest.raises(InvalidPackage, match="entry-point is empty"):
        split_entry_point("   ", unit)


def test_no_entry_point_is_refused_at_run_time() -> None:
    desc, pkg = _pkg({})
    desc.additionalParameters = None
    with pytest.raises(InvalidPackage, match=r"^the package has no entry point$"):
        command_run_spec(desc, pkg, "j", {}, None)


def test_check_patterns_at_deploy_time() -> None:
    desc, pkg = _pkg({"a": {**S, **_ap(pattern="-name value inputs_b_value")}, "b": S})
    check_patterns(desc, AppPackage.model_validate(pkg))
    for where, inputs, outputs in [
        ("inputs.a", {"a": {**S, **_ap(pattern="inputs_nope_value")}}, {}),
        ("inputs.a", {"a": {**S, **_ap(array_pattern="-name value inputs_nope_value")}}, {}),
        ("outputs.o", {"a": S}, {"o": {**S, **_ap(pattern="value inputs_nope_value")}}),
    ]:
        d, p = _pkg(inputs, outputs)
        with pytest.raises(InvalidPackage, match=rf"^{where}: pattern refers to unknown input 'nope'$"):
            check_patterns(d, AppPackage.model_validate(p))
    # a pattern is checked in the form it is used in, also when an array-pattern is there too
    d, p = _pkg({"a": {**S, "maxOccurs": 3, **_ap(pattern="inputs_nope_value", array_pattern="-name value")}})
    with pytest.raises(InvalidPackage, match=r"^inputs.a: pattern refers to unknown input 'nope'$"):
        check_patterns(d, AppPackage.model_validate(p))
    d, p = _pkg({"a": S})
    d.additionalParameters = None
    check_patterns(d, AppPackage.model_validate(p))  # the package's own description has the entry point
    d, p = _pkg({"a": S})
    p["processDescription"] = {**p["processDescription"], "additionalParameters": []}
    check_patterns(d, AppPackage.model_validate(p))  # the stored description has it
    del p["processDescription"]
    check_patterns(d, AppPackage.model_validate(p))
    d.additionalParameters = None
    for pd in ({"id": "p", "additionalParameters": []}, None):
        p["processDescription"] = pd
        with pytest.raises(InvalidPackage, match=r"^processDescription\.additionalParameters: missing the "
                                                 r"'entry-point' parameter$"):
            check_patterns(d, AppPackage.model_validate(p))


def test_an_image_name_hpgc_pulls_into_is_refused_as_an_entry_point_image() -> None:
    with pytest.raises(InvalidPackage) as err:
        split_entry_point("singularity exec a_b_c-a780b26c0f2884f6.sif tool", ExecutionUnit(type="SLURM"))
    assert str(err.value) == (
        "entry-point: 'a_b_c-a780b26c0f2884f6.sif' names a file hpgc pulls an image reference into; give the "
        "reference itself (e.g. docker://owner/image:tag) as executionUnit.image")


def test_output_paths() -> None:
    desc = ProcessDescription.model_validate({"id": "p", "inputs": {}, "outputs": {
        "tif": {"schema": {"oneOf": [{"type": "string"}, {"type": "string", "contentMediaType": "image/tiff"},
                                     {"type": "string", "contentMediaType": "image/png"}]}},
        "plain": {"schema": {"type": "string", "contentMediaType": "application/x-unknown"}}}})
    assert output_path("tif", desc, None) == "outputs/tif.tif"
    assert output_path("tif", desc, OutputRequest.model_validate({"format": {"mediaType": "image/png"}})) == (
        "outputs/tif.png")
    assert output_path("tif", desc, OutputRequest.model_validate({"format": {"encoding": "binary"}})) == (
        "outputs/tif.tif")
    assert output_path("plain", desc, None) == "outputs/plain"
    assert output_path("other", desc, None) == "outputs/other"


SITE_RULE = ("must be a .sif file name in the image cache (no folder, not starting with '.') or a pullable "
             "reference (docker://, oras://, https://...)")


@pytest.mark.parametrize(("named", "unit_image", "container"), [
    ("site.sif", "other.sif", Container(image="site.sif")),  # two site images: the entry point's runs
    ("site.sif", "python:3.11", Container(image="python_3.11-4d8521524542d1c1.sif", source="docker://python:3.11",
                                          site_image="site.sif")),
    (None, "python:3.11", Container(image="python_3.11-4d8521524542d1c1.sif", source="docker://python:3.11")),
    # a reference ending in .sif is still a reference, pulled
    (None, "https://h.org/x/tool.sif", Container(image=image_cache_name("https://h.org/x/tool.sif"),
                                                 source="https://h.org/x/tool.sif")),
    ("site.sif", "https://h.org/x/tool.sif", Container(image=image_cache_name("https://h.org/x/tool.sif"),
                                                       source="https://h.org/x/tool.sif", site_image="site.sif")),
    ("docker://python:3.11", "python:3.11", Container(image="python_3.11-4d8521524542d1c1.sif",
                                                      source="docker://python:3.11")),
])
def test_images_of_a_package(named: str | None, unit_image: str | None, container: Container) -> None:
    assert container_of(named, unit_image) == container


@pytest.mark.parametrize(("named", "unit_image", "message"), [
    ("file:///x.sif", None, "entry-point: 'file:///x.sif': images are pulled from docker://, oras://, library://, "
                            "shub://, http://, https:// only"),
    ("docker://a/b", "docker://bad ref", "executionUnit.image: 'docker://bad ref' is not a pullable image reference"),
    (None, "docker://bad ref", "executionUnit.image: 'docker://bad ref' is not a pullable image reference"),
    ("site.sif", "docker://bad ref", "executionUnit.image: 'docker://bad ref' is not a pullable image reference"),
    ("docker://a/b", "docker://c/d", "the entry point and executionUnit.image name different images"),
    ("a/b.sif", None, f"entry-point: 'a/b.sif' {SITE_RULE}"),
    ("site.sif", ".bad.sif", f"executionUnit.image: '.bad.sif' {SITE_RULE}"),
    (None, "x/.bad.sif", f"executionUnit.image: 'x/.bad.sif' {SITE_RULE}"),
])
def test_refused_images_say_where_and_why(named: str | None, unit_image: str | None, message: str) -> None:
    with pytest.raises(InvalidPackage) as err:
        container_of(named, unit_image)
    assert str(err.value) == message


def test_whole_messages_of_refused_units_and_entry_points() -> None:
    with pytest.raises(InvalidPackage) as err:
        command_unit(AppPackage.model_validate({"executionUnit": {"type": "cwl"}}))
    assert str(err.value) == "executionUnit: expected a unit of type SLURM, docker or oci"
    with pytest.raises(InvalidPackage) as err:
        split_entry_point("", ExecutionUnit(type="SLURM"))
    assert str(err.value) == "entry-point is empty"


def test_an_output_pattern_is_never_an_array_pattern() -> None:
    outputs = {"o": {"schema": {"type": "string"}, **_ap(pattern="--out value", array_pattern="--many value")}}
    assert _argv({}, {}, outputs) == [*GO, "--out", "outputs/o"]
