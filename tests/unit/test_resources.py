"""Resources: CWL requirements → Resources → #SBATCH lines, parameter references evaluated (JavaScript refused),
and the limits a request's `hpgc:resources` must stay within (each refusal's message written out)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from hpgc.backends.slurm.config import ClusterSettings
from hpgc.backends.slurm.script import render
from hpgc.errors import InvalidPackage, InvalidParameterValue
from hpgc.jobs.lifecycle import usage_of
from hpgc.models.ogc import Execute
from hpgc.models.resources import ResourceLimits, ResourceRequest, clock, memory_mb, seconds
from hpgc.models.run import Resources, RunSpec
from hpgc.packages.command import command_limits
from hpgc.packages.cwl import pack_text
from hpgc.packages.cwl_resources import check, cwl_resources
from hpgc.packages.resources import job_resources

TOOL = """
cwlVersion: v1.2
class: CommandLineTool
id: sized
$namespaces: {cwltool: "http://commonwl.org/cwltool#"}
requirements:
  ResourceRequirement: {coresMin: %(cores)s, ramMin: 1024, tmpdirMin: 2048, outdirMin: 4096%(extra)s}
  ToolTimeLimit: {timelimit: 600}
hints:
  cwltool:CUDARequirement: {cudaVersionMin: "11.4", cudaComputeCapability: "3.0"%(gpus)s}
baseCommand: "true"
inputs:
  threads: {type: int, default: 3}
  name: {type: string, default: "x"}
outputs: []
"""


def tool(cores: str = "2", extra: str = "", gpus: str = "") -> dict[str, Any]:
    return pack_text(TOOL % {"cores": cores, "extra": extra, "gpus": gpus})


def _cluster(**kw: object) -> ClusterSettings:
    return ClusterSettings(**{"host": "login", "known_hosts": "/etc/ssh/known", "user": "alice",
                              "work_root": "/data/hpgc", **kw})


def sbatch_lines(resources: Resources, cluster: ClusterSettings | None = None) -> list[str]:
    spec = RunSpec(job_id="j1", process_id="sized", kind="cwl", resources=resources)
    text = render(spec, cluster or _cluster(), "/data/hpgc/alice/j1")
    return [line for line in text.splitlines() if line.startswith("#SBATCH") and "=/data" not in line
            and "--job-name" not in line]


# --- CWL requirements → Resources → #SBATCH ------------------------------------------------------------------
def test_resource_requirement_time_limit_and_cuda_reach_sbatch_lines() -> None:
    resources, limits = cwl_resources(tool(), {})
    assert resources == Resources(cpus=2, memory_mb=1024, tmp_mb=2048, time_limit_s=600, gpus=1)
    # no coresMax/ramMax: the process sets no ceiling of its own
    assert (limits.cpus, limits.memory_mb) == (None, None)
    assert sbatch_lines(resources) == ["#SBATCH --cpus-per-task=2", "#SBATCH --mem=1024M",
                                       "#SBATCH --time=0:10:00", "#SBATCH --tmp=2048M", "#SBATCH --gpus=1"]


def test_cuda_device_count_and_max_values() -> None:
    resources, limits = cwl_resources(tool(extra=", coresMax: 8, ramMax: 4096", gpus=", cudaDeviceCountMin: 2, "
                                           "cudaDeviceCountMax: 4"), {})
    assert (resources.cpus, resources.gpus) == (2, 2)
    assert (limits.cpus, limits.memory_mb, limits.gpus) == (8, 4096, 4)


def test_a_parameter_reference_is_evaluated_with_the_inputs() -> None:
    packed = tool(cores="$(inputs.threads)")
    check(packed)
    assert cwl_resources(packed, {"threads": 6})[0].cpus == 6
    assert cwl_resources(packed, {"threads": 2.5})[0].cpus == 3  # fractional cores (CWL 1.2) round up


def test_a_reference_that_gives_no_number_is_a_400_naming_the_field() -> None:
    packed = tool(cores="$(inputs.name)")
    with pytest.raises(InvalidParameterValue) as exc:
        cwl_resources(packed, {"name": "many"})
    assert str(exc.value) == (
        "ResourceRequirement.coresMin: evaluated to 'many', not a non-negative number")


@pytest.mark.parametrize("expression", ["$(inputs.threads * 2)", "${ return 4; }", "$(inputs.threads) cores",
                                        "$(runtime.cores)", "$(self)"])
def test_javascript_in_resources_is_refused_at_deploy(expression: str) -> None:
    with pytest.raises(InvalidPackage, match="this server evaluates only parameter references such as "
                       r"\$\(inputs.threads\) in resources, not JavaScript"):
        check(pack_text(TOOL.replace("requirements:", "requirements:\n  InlineJavascriptRequirement: {}")
                        % {"cores": f'"{expression}"', "extra": "", "gpus": ""}))


WORKFLOW = """
cwlVersion: v1.2
class: Workflow
id: wf
requirements:
  ScatterFeatureRequirement: {}
inputs:
  xs: {type: "int[]", default: [1, 2]}
outputs: []
steps:
  small:
    run:
      class: CommandLineTool
      requirements: {ResourceRequirement: {coresMin: 4, ramMin: 512}, ToolTimeLimit: {timelimit: 60}}
      baseCommand: "true"
      inputs: []
      outputs: []
    in: []
    out: []
  big:
    run:
      class: CommandLineTool
      hints: [{class: ResourceRequirement, coresMin: 1, ramMin: %(ram)s}]
      requirements: {ToolTimeLimit: {timelimit: 120}}
      baseCommand: "true"
      inputs: [{id: x, type: int, default: 1}]
      outputs: []
    in: %(big_in)s
    out: []
"""


def test_a_workflow_takes_the_maximum_over_its_steps_and_the_sum_of_their_times() -> None:
    packed = pack_text(WORKFLOW % {"ram": "2048", "big_in": "[]"})
    check(packed)
    resources, _ = cwl_resources(packed, {})
    assert resources == Resources(cpus=4, memory_mb=2048, time_limit_s=180)
    assert sbatch_lines(resources) == ["#SBATCH --cpus-per-task=4", "#SBATCH --mem=2048M", "#SBATCH --time=0:03:00"]


def test_a_scattered_step_leaves_the_time_to_the_cluster() -> None:
    packed = pack_text((WORKFLOW % {"ram": "2048", "big_in": "{x: xs}"}).replace(
        "    out: []\n", "    out: []\n    scatter: x\n", 2).replace("    scatter: x\n", "", 1))
    resources, _ = cwl_resources(packed, {})
    assert (resources.cpus, resources.time_limit_s) == (4, None)
    assert "#SBATCH --time=4:00:00" in sbatch_lines(resources, _cluster(time_limit="4:00:00"))


def test_an_expression_in_a_workflow_step_is_refused_at_deploy() -> None:
    packed = pack_text(WORKFLOW % {"ram": '"$(inputs.x)"', "big_in": "[]"})
    with pytest.raises(InvalidPackage, match=r"steps\.big\.ResourceRequirement\.ramMin: '\$\(inputs.x\)': "
                       "resources of a workflow's steps must be numbers on this server"):
        check(packed)


def test_a_tool_without_requirements_asks_for_nothing() -> None:
    packed = pack_text("cwlVersion: v1.2\nclass: CommandLineTool\nid: t\nbaseCommand: 'true'\ninputs: []\n"
                       "outputs: []\n")
    resources, limits = cwl_resources(packed, {})
    assert resources == Resources() and limits.cpus is None
    assert sbatch_lines(resources) == []


# --- units ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "mb"), [("16G", 16384), ("512M", 512), ("1.5G", 1536), ("1048576K", 1024),
                                          ("2048", 2048), (300, 300), ("1T", 1048576), ("8GiB", 8192), ("1k", 1)])
def test_memory_sizes(text: str | int, mb: int) -> None:
    assert memory_mb(text) == mb


@pytest.mark.parametrize(("text", "s"), [("2:00:00", 7200), ("30", 1800), ("5:30", 330), ("1-12", 129600),
                                         ("1-12:30", 131400), ("1-00:00:05", 86405), (90, 90)])
def test_slurm_times(text: str | int, s: int) -> None:
    assert seconds(text) == s


def test_clock_is_slurms_format() -> None:
    assert (clock(90), clock(7200), clock(86405)) == ("0:01:30", "2:00:00", "1-00:00:05")


# --- the request's member ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("member", "needle"), [
    ({"cpu": 2}, "cpu"),  # an unknown key is refused, never ignored
    ({"cpus": 0}, "greater than or equal to 1"),
    ({"cpus": "4; rm -rf /"}, "cpus"),
    ({"memory": "lots"}, "'lots' is not a size"),
    ({"memory": "1G\n#SBATCH --uid=0"}, "is not a size"),
    ({"time": "forever"}, "'forever' is not a Slurm time"),
    ({"time": "$(reboot)"}, "is not a Slurm time"),
    ({"time": 0}, "at least 1 second"),
    ({"partition": "x\n#SBATCH --uid=0"}, "a partition name is 1 to 64 letters, digits and _.-"),
    ({"partition": "gpu; rm -rf /"}, "a partition name is 1 to 64 letters, digits and _.-"),
    ({"gpus": True}, "gpus"),
])
def test_bad_resource_members_are_refused(member: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError, match=needle.replace("$", r"\$").replace("(", r"\(").replace(")", r"\)")):
        Execute.model_validate({"inputs": {}, "hpgc:resources": member})


def test_the_member_round_trips_through_the_stored_request() -> None:
    ex = Execute.model_validate({"hpgc:resources": {"cpus": 8, "memory": "16G", "time": "2:00:00",
                                                     "partition": "gpu"}})
    stored = ex.model_dump(mode="json", exclude_none=True)
    again = Execute.model_validate(stored)
    assert again.resources == ResourceRequest(cpus=8, memory="16G", time="2:00:00", partition="gpu")


# --- limits -----------------------------------------------------------------------------------------------------
SITE = _cluster(max_cpus=16, max_memory_mb=65536, max_time="1-00:00:00", max_gpus=2, max_tmp_mb=10240,
                partitions=["cpu", "gpu"]).limits("hpc")
PROCESS = ResourceLimits(cpus=8, memory_mb=32768, where="the process (its CWL requirements)")
BASE = Resources(cpus=2, memory_mb=1024, time_limit_s=600)


def test_a_request_within_the_limits_raises_the_allocation() -> None:
    got = job_resources(BASE, PROCESS, SITE, ResourceRequest(cpus=8, memory="16G", time="2:00:00", partition="gpu",
                                                             gpus=1))
    assert got == Resources(cpus=8, memory_mb=16384, time_limit_s=7200, gpus=1, partition="gpu")
    assert sbatch_lines(got, _cluster(partition="cpu")) == [
        "#SBATCH --cpus-per-task=8", "#SBATCH --mem=16384M", "#SBATCH --time=2:00:00", "#SBATCH --gpus=1",
        "#SBATCH --partition=gpu"]
    assert got.shown() == {"cpus": 8, "memory": "16384M", "time": "2:00:00", "gpus": 1, "partition": "gpu"}


@pytest.mark.parametrize(("request_", "message"), [
    (ResourceRequest(cpus=12), "hpgc:resources: cpus 12 is more than 8, the most the process (its CWL "
                               "requirements) allows"),
    (ResourceRequest(memory="40G"), "hpgc:resources: memory 40960 MiB is more than 32768 MiB, the most the process "
                                    "(its CWL requirements) allows"),
    (ResourceRequest(time="2-00:00:00"), "hpgc:resources: time 2-00:00:00 (172800 s) is more than 1-00:00:00 "
                                         "(86400 s), the most cluster 'hpc' allows (setting clusters.hpc.max_time)"),
    (ResourceRequest(gpus=4), "hpgc:resources: gpus 4 is more than 2, the most cluster 'hpc' allows (setting "
                              "clusters.hpc.max_gpus)"),
    (ResourceRequest(tmp="20G"), "hpgc:resources: tmp 20480 MiB is more than 10240 MiB, the most cluster 'hpc' "
                                 "allows (setting clusters.hpc.max_tmp_mb)"),
    (ResourceRequest(cpus=1), "hpgc:resources: cpus 1 is less than 2, the least the process needs (its own "
                              "requirement)"),
    (ResourceRequest(partition="bigmem"), "hpgc:resources: partition 'bigmem' is not one cluster 'hpc' allows; "
                                          "partitions: cpu, gpu"),
])
def test_each_refusal_names_its_limit(request_: ResourceRequest, message: str) -> None:
    with pytest.raises(InvalidParameterValue) as exc:
        job_resources(BASE, PROCESS, SITE, request_)
    assert str(exc.value) == message


def test_a_shorter_time_than_the_tools_limit_may_be_asked_for() -> None:
    assert job_resources(BASE, PROCESS, SITE, ResourceRequest(time=60)).time_limit_s == 60


def test_the_site_limit_applies_when_the_process_sets_none() -> None:
    with pytest.raises(InvalidParameterValue) as exc:
        job_resources(BASE, ResourceLimits(), SITE, ResourceRequest(cpus=32))
    assert str(exc.value) == ("hpgc:resources: cpus 32 is more than 16, the most cluster 'hpc' allows "
                              "(setting clusters.hpc.max_cpus)")


def test_a_process_asking_more_than_the_site_allows_is_refused_at_execute() -> None:
    with pytest.raises(InvalidParameterValue) as exc:
        job_resources(Resources(memory_mb=131072), ResourceLimits(), SITE, None)
    assert str(exc.value) == ("the process asks for memory 131072 MiB is more than 65536 MiB, the most cluster "
                              "'hpc' allows (setting clusters.hpc.max_memory_mb)")


def test_a_backend_without_partitions_refuses_one() -> None:
    with pytest.raises(InvalidParameterValue) as exc:
        job_resources(BASE, ResourceLimits(), ResourceLimits(partitions=[], where="the local backend"),
                      ResourceRequest(partition="gpu"))
    assert str(exc.value) == "hpgc:resources: partition 'gpu' is not one the local backend allows; partitions: none"


@pytest.mark.parametrize("bad", [{"partitions": ["ok", "x\n#SBATCH --uid=0"]}, {"partitions": ["a b"]},
                                 {"max_time": "soon"}])
def test_cluster_limit_settings_are_checked(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _cluster(**bad)


def test_a_resources_partition_cannot_carry_an_option() -> None:
    with pytest.raises(ValidationError):
        Resources(partition="gpu\n#SBATCH --uid=0")


def test_a_command_packages_config_gives_its_ceiling() -> None:
    limits = command_limits({"processDescription": {"id": "x"}, "executionUnit": [
        {"type": "SLURM", "config": {"cpuMin": 2, "cpuMax": 4, "memoryMax": 8}}]})
    assert (limits.cpus, limits.memory_mb) == (4, 8192)  # memoryMax is in GB (the schema's unit)
    with pytest.raises(InvalidParameterValue) as exc:
        job_resources(Resources(cpus=2), limits, ResourceLimits(), ResourceRequest(cpus=6))
    assert str(exc.value) == ("hpgc:resources: cpus 6 is more than 4, the most the process (its executionUnit.config) "
                              "allows")


def test_usage_kept_from_the_final_report() -> None:
    assert usage_of({"slurm_state": "COMPLETED", "Elapsed": "00:00:05", "TotalCPU": "00:01.200", "MaxRSS": "2048K",
                     "NodeList": "n1"}) == {"Elapsed": "00:00:05", "TotalCPU": "00:01.200", "MaxRSS": "2048K"}
    assert usage_of({"stderr_tail": "x"}) is None
