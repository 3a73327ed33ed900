"""A parameter sweep (`hpgc:sweep` in an execute request): one OGC job of N tasks, each task the process run
with the request's common inputs and its own values of the swept inputs.

    {"inputs": {...common...},
     "hpgc:sweep": {"inputs": {"il": [v0, v1, ...], "ratio": [r0, r1, ...]}, "mode": "zip", "maxParallel": 50}}

`zip` pairs the i-th values of every swept input (all lists the same length: N = that length); `product`
takes every combination (N = the product of the lengths, the last input varying fastest). Each value is one
value of its input, exactly as it would be given in a single execute (a list for an input taking several).
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_PARALLEL = 100_000  # above any cluster's MaxArraySize; the backend takes min(maxParallel, N)


class SweepRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, list[Any]] = Field(
        min_length=1, description="Swept input id → its values, one per task (zip) or per combination (product).")
    mode: Literal["zip", "product"] = Field(
        default="zip", description="zip: the i-th values together (lists of one length); product: every combination.")
    maxParallel: int | None = Field(
        default=None, ge=1, le=MAX_PARALLEL, strict=True,
        description="Tasks running at once (Slurm: the array's %N); none: as many as the backend runs.")

    def size(self) -> int:
        """How many tasks the sweep makes (computed without building them: a product can be astronomically large)."""
        lengths = [len(v) for v in self.inputs.values()]
        return math.prod(lengths) if self.mode == "product" else (lengths[0] if lengths else 0)

    def unequal(self) -> tuple[str, int] | None:
        """For zip: the first input whose list length differs from the first one's, with its length."""
        if self.mode != "zip":
            return None
        first = len(next(iter(self.inputs.values())))
        return next(((k, len(v)) for k, v in self.inputs.items() if len(v) != first), None)

    def tasks(self) -> list[dict[str, Any]]:
        """Each task's swept values, in task order (call only after checking size())."""
        names = list(self.inputs)
        if self.mode == "zip":
            rows = zip(*self.inputs.values(), strict=True)
        else:
            rows = itertools.product(*self.inputs.values())
        return [dict(zip(names, row, strict=True)) for row in rows]

    def index_of(self, task: int, input_id: str) -> int:
        """The position in `inputs[input_id]` of task `task`'s value (the index a 400 names)."""
        if self.mode == "zip":
            return task
        stride = math.prod(len(v) for k, v in list(self.inputs.items())[list(self.inputs).index(input_id) + 1:])
        return (task // stride) % len(self.inputs[input_id])


TASKS_DIR = "tasks"


def task_key(job_id: str, index: int) -> str:
    """How a backend knows task `index` of sweep `job_id` (RunSpec.job_id, JobRef.job_id): its directory is
    the sweep's job directory's `tasks/<index>`, so dismissing the sweep removes every task's files."""
    return f"{job_id}/{TASKS_DIR}/{index}"


def split_task_key(key: str) -> tuple[str, int] | None:
    """(sweep job id, task index) of a task key; None for a plain job id."""
    job_id, sep, rest = key.partition(f"/{TASKS_DIR}/")
    return (job_id, int(rest)) if sep and rest.isdigit() else None
