"""What a CWL process asks of the machine → Resources (and so #SBATCH lines), and the most it allows.

Read from a packed document: `ResourceRequirement` (coresMin/Max → CPUs, ramMin/Max → memory in MiB,
tmpdirMin/Max → local scratch; outdirMin is checked but has no Slurm option: outputs go to the shared job
directory), `ToolTimeLimit` (→ time limit; 0 = none) and `cwltool:CUDARequirement` (cudaDeviceCountMin/Max →
GPUs). As cwltool does, a Min without a Max is also the Max and a Max without a Min is also the Min; CWL's
defaults (1 core, 256 MiB...) are not applied: a field the package does not give leaves the site's default.

Precedence is CWL's, a requirement as a whole: the process's own requirements, then its step's, then the
enclosing workflow's, then the hints in the same order. A workflow's allocation is the maximum over its steps
(cwltool runs them one after another inside the one job) and its time limit the sum of its steps' (none when
a step has none or is scattered: how many times it runs is known only then).

Values may be numbers or, in a CommandLineTool that is the process itself, one parameter reference to its
inputs (`$(inputs.threads)`), evaluated with the job's inputs by cwl_utils' parameter-reference code, in Python:
no JavaScript engine. JavaScript expressions (`$(inputs.n * 2)`, `${...}`), and any expression in a
workflow's steps (whose inputs are known only while the workflow runs), are refused at deploy time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from hpgc.errors import InvalidPackage, InvalidParameterValue
from hpgc.models.resources import ResourceLimits
from hpgc.models.run import Resources
from hpgc.packages.cwl import main_process

CUDA = ("cwltool:CUDARequirement", "http://commonwl.org/cwltool#CUDARequirement")
MAX_DEPTH = 16  # nested workflows: packed documents cannot loop, but a hostile one may nest deeply
# (CWL requirement, field stem) → Resources field; outdir has none
STEMS = {"cores": "cpus", "ram": "memory_mb", "tmpdir": "tmp_mb", "outdir": None}


@dataclass
class _Tool:
    """The requirements that apply to one tool, as written (numbers or expressions)."""

    where: str  # e.g. "steps.a" or "" (the process itself)
    resource: dict[str, Any] | None
    time: dict[str, Any] | None
    cuda: dict[str, Any] | None
    scattered: bool = False
    expressions_allowed: bool = False


def _listed(value: Any) -> list[dict[str, Any]]:
    """Requirements or hints, as a list of objects (a map form {class: {...}} is accepted too)."""
    if isinstance(value, dict):
        return [{"class": k, **v} for k, v in value.items() if isinstance(v, dict)]
    return [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []


def _find(chain: list[dict[str, Any]], classes: tuple[str, ...]) -> dict[str, Any] | None:
    return next((r for r in chain if r.get("class") in classes), None)


def _graph(packed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {obj["id"]: obj for obj in packed.get("$graph", []) if isinstance(obj, dict) and "id" in obj}


def _tools(obj: dict[str, Any], graph: dict[str, dict[str, Any]], reqs: list[dict[str, Any]],
           hints: list[dict[str, Any]], where: str, scattered: bool, depth: int) -> list[_Tool]:
    if depth > MAX_DEPTH:
        raise InvalidPackage(f"{where}: workflows nest more than {MAX_DEPTH} deep")
    reqs = _listed(obj.get("requirements")) + reqs
    hints = _listed(obj.get("hints")) + hints
    if obj.get("class") != "Workflow":
        chain = reqs + hints
        return [_Tool(where, _find(chain, ("ResourceRequirement",)), _find(chain, ("ToolTimeLimit",)),
                      _find(chain, CUDA), scattered, depth == 0 and obj.get("class") == "CommandLineTool")]
    found: list[_Tool] = []
    for step in obj.get("steps") or []:
        if not isinstance(step, dict):
            continue
        name = f"{where}steps.{str(step.get('id', '?')).rsplit('/', 1)[-1]}"
        run = step.get("run")
        if isinstance(run, str):
            run = graph.get(run)
        if not isinstance(run, dict):
            continue  # cwltool's packing refused what cannot be found; nothing to allocate here
        found += _tools(run, graph, _listed(step.get("requirements")) + reqs, _listed(step.get("hints")) + hints,
                        name + ".", scattered or bool(step.get("scatter")), depth + 1)
    return found


def tools_of(packed: dict[str, Any]) -> list[_Tool]:
    return _tools(main_process(packed), _graph(packed), [], [], "", False, 0)


def _is_reference(value: str) -> bool:
    """One parameter reference to the inputs, nothing around it: `$(inputs.x)`, `$(inputs['x'].y)`."""
    from cwl_utils.sandboxjs import param_re

    m = param_re.match(value[1:]) if value.startswith("$(") else None
    return m is not None and m.group(1) == "inputs"


def _checked(value: Any, tool: _Tool, name: str) -> None:
    place = f"{tool.where}{name}"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidPackage(f"{place}: must be a number or a parameter reference")
    if isinstance(value, str):
        if not tool.expressions_allowed:
            raise InvalidPackage(f"{place}: {value[:80]!r}: resources of a workflow's steps must be numbers on "
                                 "this server (the allocation is made before the workflow runs)")
        if not _is_reference(value):
            raise InvalidPackage(f"{place}: {value[:80]!r}: this server evaluates only parameter references such "
                                 "as $(inputs.threads) in resources, not JavaScript; give a number or one reference")
    elif value < 0:
        raise InvalidPackage(f"{place}: must not be negative")


_COUNTED = {"ResourceRequirement": {f"{stem}{end}" for stem in STEMS for end in ("Min", "Max")},
            "ToolTimeLimit": {"timelimit"}, "CUDARequirement": {"cudaDeviceCountMin", "cudaDeviceCountMax"}}


def _fields(tool: _Tool) -> list[tuple[str, str, Any]]:
    """(requirement name, field, value) of everything this tool asks for."""
    reqs = {"ResourceRequirement": tool.resource, "ToolTimeLimit": tool.time, "CUDARequirement": tool.cuda}
    return [(cls, key, value) for cls, req in reqs.items() for key, value in (req or {}).items()
            if key in _COUNTED[cls] and value is not None]


def check(packed: dict[str, Any]) -> None:
    """Deploy time: every resource value can be turned into a number when a job runs (else a 400 naming it)."""
    for tool in tools_of(packed):
        for cls, key, value in _fields(tool):
            _checked(value, tool, f"{cls}.{key}")


def _evaluate(value: Any, inputs: dict[str, Any], place: str) -> float:
    if isinstance(value, str):
        from cwl_utils.expression import interpolate

        try:  # fullJS=False: parameter references only, walked in Python; a JavaScript engine is never started
            value = interpolate(value, {"inputs": inputs, "self": None, "runtime": {}}, fullJS=False)
        except Exception as exc:  # cwl_utils raises several kinds; all are the request's
            raise InvalidParameterValue(f"{place}: could not be evaluated with this request's inputs: "
                                        f"{str(exc)[:200]}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InvalidParameterValue(f"{place}: evaluated to {str(value)[:80]!r}, not a non-negative number")
    return float(value)


@dataclass
class _Ask:
    low: dict[str, int] = field(default_factory=dict)
    high: dict[str, int] = field(default_factory=dict)
    time_s: int | None = None


def _tool_ask(tool: _Tool, inputs: dict[str, Any]) -> _Ask:
    values = {f"{cls}.{key}": _evaluate(v, inputs, f"{tool.where}{cls}.{key}") for cls, key, v in _fields(tool)}
    ask = _Ask()
    pairs = [(f"ResourceRequirement.{stem}", target) for stem, target in STEMS.items() if target] + [
        ("CUDARequirement.cudaDeviceCount", "gpus")]
    for prefix, target in pairs:
        low, high = values.get(prefix + "Min"), values.get(prefix + "Max")
        if low is None and high is None and target == "gpus" and tool.cuda is not None:
            low = 1.0  # a CUDA requirement without a count wants one device (cwltool's default)
        if high is not None and low is not None and high < low:
            raise InvalidParameterValue(f"{tool.where}{prefix}Max ({high:g}) is below {prefix}Min ({low:g})")
        low = high if low is None else low  # cwltool's rule: a Max alone is also the Min
        if low is not None and math.ceil(low) >= 1:
            ask.low[target] = math.ceil(low)
        if high is not None:  # only a declared Max limits a request (a Min alone is no ceiling)
            ask.high[target] = math.ceil(high)
    limit = values.get("ToolTimeLimit.timelimit")
    ask.time_s = math.ceil(limit) if limit else None  # 0: no limit
    return ask


def cwl_resources(packed: dict[str, Any], inputs: dict[str, Any]) -> tuple[Resources, ResourceLimits]:
    """The job's allocation and the most a request may raise it to, with the job's CWL input object."""
    tools = tools_of(packed)
    asks = [_tool_ask(t, inputs) for t in tools]
    low: dict[str, int] = {}
    high: dict[str, int | None] = {}
    for target in ("cpus", "memory_mb", "tmp_mb", "gpus"):
        lows = [a.low[target] for a in asks if target in a.low]
        if lows:
            low[target] = max(lows)
        # a limit only when every tool declares one: a tool that says nothing can use whatever it is given
        highs = [a.high.get(target) for a in asks]
        high[target] = max(h for h in highs if h is not None) if highs and None not in highs else None
    times = [a.time_s for a in asks]
    time_s = sum(t for t in times if t) if times and None not in times and not any(t.scattered for t in tools) \
        else None
    resources = Resources(time_limit_s=time_s, **low)
    return resources, ResourceLimits(cpus=high["cpus"], memory_mb=high["memory_mb"], tmp_mb=high["tmp_mb"],
                                     gpus=high["gpus"], where="the process (its CWL requirements)")
