"""Slurm job states → OGC status, with a message in the user's words: the one place that knows them."""

from __future__ import annotations

from typing import Any

from hpgc.models.ogc import StatusCode
from hpgc.models.run import BackendStatus

ACCEPTED = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"}
RUNNING = {"RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED", "STOPPED", "STAGE_OUT", "SIGNALING",
           "RESIZING", "POWER_UP_NODE", "UPDATE_DB"}
# Why a job failed, in the user's words.
FAILED = {
    "FAILED": "the job exited with a non-zero code",
    "TIMEOUT": "the job ran over its time limit and Slurm stopped it",
    "OUT_OF_MEMORY": "the job ran out of memory and Slurm stopped it",
    "NODE_FAIL": "a compute node running the job failed",
    "BOOT_FAIL": "the compute node could not be booted for the job",
    "DEADLINE": "the job could not finish before its deadline",
    "PREEMPTED": "the job was preempted by a higher-priority job",
    "REVOKED": "the job was revoked (federation)",
    "SPECIAL_EXIT": "the job ended in Slurm's SPECIAL_EXIT state",
}
CANCELLED = "CANCELLED"


def base_state(text: str) -> str:
    """sacct's State column without its detail: 'CANCELLED by 1000' → 'CANCELLED'."""
    return text.split(" ")[0]


def ended_badly(state: str, code: int | None) -> bool:
    """Whether the job ended in a failure whose stderr is worth showing (COMPLETED with a non-zero code too)."""
    return state in FAILED or (state == "COMPLETED" and bool(code))


def to_status(state: str, code: int | None = None, sig: int | None = None, reason: str = "",
              stderr_tail: str = "", accounting: dict[str, Any] | None = None) -> BackendStatus:
    """Slurm state (+ exit code) → OGC status with a message saying what happened."""
    details: dict[str, Any] = {"slurm_state": state, **(accounting or {})}
    if sig:
        details["signal"] = sig
    if state in ACCEPTED:
        why = f" ({reason})" if reason and reason != "None" else ""
        return BackendStatus(status=StatusCode.accepted, message=f"queued in Slurm: {state}{why}", details=details)
    if state in RUNNING:
        return BackendStatus(status=StatusCode.running, message=f"running in Slurm ({state})", details=details)
    if state == CANCELLED:
        return BackendStatus(status=StatusCode.dismissed, message="cancelled in Slurm", exit_code=code,
                             details=details)
    if state == "COMPLETED" and not code:
        return BackendStatus(status=StatusCode.successful, progress=100, message="finished", exit_code=0,
                             details=details)
    if state == "COMPLETED" or state in FAILED:
        if stderr_tail:
            details["stderr_tail"] = stderr_tail
        if state in ("FAILED", "COMPLETED"):
            head = f"the job exited with code {code}" if code else "the job failed"
            if sig:
                head += f" (signal {sig})"
        else:
            head = f"{state}: {FAILED[state]}"
            if code:
                head += f"; exit code {code}"
        message = head + (f". stderr: {stderr_tail}" if stderr_tail else "")
        return BackendStatus(status=StatusCode.failed, message=message, exit_code=code, details=details)
    return BackendStatus(status=StatusCode.running, message=f"Slurm state {state}", details=details)
