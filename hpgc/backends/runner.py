"""Which runner a CWL job gets: cwltool (the whole document in one allocation) or Toil (a leader, and each
step and scatter element its own batch job). The package may ask (RunSpec.cwl_runner, from its additional
parameter `cwl-runner`); else a workflow with scatter or several steps gets Toil where there is one; else the
site's default. Nothing else decides, so a job's runner is the same at every submission of it."""

from __future__ import annotations

from typing import Literal

from hpgc.backends.base import BackendError
from hpgc.models.run import RunSpec

Runner = Literal["cwltool", "toil"]


def choose_runner(spec: RunSpec, default: Runner, has_toil: bool, where: str = "the cluster") -> Runner:
    if spec.kind != "cwl":
        return "cwltool"
    if spec.cwl_runner == "toil" and not has_toil:
        raise BackendError(f"this package asks for the CWL runner 'toil', but {where} has no Toil "
                           "(toil_cwl_runner is not set)")
    if spec.cwl_runner is not None:
        return spec.cwl_runner
    if spec.cwl_workflow and has_toil:
        return "toil"
    return default if has_toil else "cwltool"
