"""Which CWL runner a package asks for, and whether its document is a workflow that gains from Toil (each step
and scatter element its own Slurm job). The backend makes the choice (hpgc/backends/runner.py); this module
only reads the package: the additional parameter `cwl-runner` and the shape of the document."""

from __future__ import annotations

from typing import Any, Literal, cast

from hpgc.models.names import shown
from hpgc.models.ogc import ProcessDescription
from hpgc.models.package import param
from hpgc.packages import cwl

RUNNERS = ("cwltool", "toil")
RUNNER_PARAMETER = "cwl-runner"
Runner = Literal["cwltool", "toil"]


def asked_runner(description: ProcessDescription) -> Runner | None:
    """The runner the package names in its additional parameter `cwl-runner`; None when it names none.
    A value that is not a runner raises ValueError (a 400 at deploy, where it is checked first)."""
    value = param(description.additionalParameters, RUNNER_PARAMETER)
    if value is None:
        return None
    if not isinstance(value, str) or value not in RUNNERS:
        raise ValueError(f"additionalParameters: {RUNNER_PARAMETER} is {shown(str(value))}; it may be one of "
                         + ", ".join(RUNNERS))
    return cast(Runner, value)


def is_parallel_workflow(packed: dict[str, Any]) -> bool:
    """A Workflow with `scatter` on a step or more than one step: what Toil runs as several Slurm jobs."""
    main = cwl.main_process(packed)
    if main.get("class") != "Workflow":
        return False
    steps = main.get("steps") or []
    items = list(steps.values()) if isinstance(steps, dict) else list(steps)
    return len(items) > 1 or any(isinstance(s, dict) and s.get("scatter") for s in items)
