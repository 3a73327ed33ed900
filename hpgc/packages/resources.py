"""A job's resources: what its process asks for, raised or lowered by the request's `hpgc:resources`, within
what the process and the site allow. Anything outside is a 400 that names the limit, never silently clipped."""

from __future__ import annotations

from hpgc.errors import InvalidParameterValue
from hpgc.models.resources import ResourceLimits, ResourceRequest, clock, memory_mb, seconds
from hpgc.models.run import Resources

MEMBER = "hpgc:resources"
# Resources field → (request key, how a number is shown in a message)
_SHOWN = {"cpus": ("cpus", str), "memory_mb": ("memory", lambda v: f"{v} MiB"),
          "time_limit_s": ("time", lambda v: f"{clock(v)} ({v} s)"), "tmp_mb": ("tmp", lambda v: f"{v} MiB"),
          "gpus": ("gpus", str)}


def _requested(request: ResourceRequest) -> dict[str, int]:
    out: dict[str, int] = {}
    if request.cpus is not None:
        out["cpus"] = request.cpus
    if request.memory is not None:
        out["memory_mb"] = memory_mb(request.memory)
    if request.time is not None:
        out["time_limit_s"] = seconds(request.time)
    if request.tmp is not None:
        out["tmp_mb"] = memory_mb(request.tmp)
    if request.gpus is not None:
        out["gpus"] = request.gpus
    return out


def _over(name: str, value: int, limit: ResourceLimits, what: str) -> None:
    most = getattr(limit, name)
    if most is not None and value > most:
        key, show = _SHOWN[name]
        setting = f" (setting {limit.setting}max_{'time' if name == 'time_limit_s' else name})" \
            if limit.setting else ""
        raise InvalidParameterValue(f"{what} {key} {show(value)} is more than {show(most)}, the most "
                                    f"{limit.where} allows{setting}")


def job_resources(base: Resources, process: ResourceLimits, site: ResourceLimits,
                  request: ResourceRequest | None) -> Resources:
    """The resources the job runs with; a 400 when the request or the process itself is over a limit."""
    asked = _requested(request) if request is not None else {}
    merged = base.model_copy()
    for name, value in asked.items():
        key, show = _SHOWN[name]
        # a time limit is a ceiling (CWL's ToolTimeLimit, which cwltool enforces inside the job anyway, or a
        # package's jobTimeout), not a need: asking for less, to be scheduled sooner, is the client's choice
        floor = getattr(base, name) if name != "time_limit_s" else None
        if floor is not None and value < floor:
            raise InvalidParameterValue(f"{MEMBER}: {key} {show(value)} is less than {show(floor)}, the least "
                                        "the process needs (its own requirement)")
        _over(name, value, process, f"{MEMBER}:")
        setattr(merged, name, value)
    for name in _SHOWN:
        value = getattr(merged, name)
        if value is not None:  # also what the process asks for by itself: a job the site cannot run is a 400 now
            _over(name, value, site, f"{MEMBER}:" if name in asked else "the process asks for")
    if request is not None and request.partition is not None:
        if site.partitions is not None and request.partition not in site.partitions:
            offered = ", ".join(site.partitions) or "none"
            raise InvalidParameterValue(f"{MEMBER}: partition '{request.partition}' is not one {site.where} "
                                        f"allows; partitions: {offered}")
        merged.partition = request.partition
    if request is not None:  # who may charge which account or use which QOS: the identity's grants (hpgc/jobs)
        merged.account = request.account or merged.account
        merged.qos = request.qos or merged.qos
    return merged
