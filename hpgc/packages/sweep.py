"""A sweep request checked against its process: every task's inputs validated exactly as a single execute's
would be, before anything is stored or submitted; a bad value is a 400 naming its input and index."""

from __future__ import annotations

import re
from typing import Any

from hpgc.errors import InvalidParameterValue, InvalidRequest
from hpgc.models.ogc import JobControlOption, ProcessDescription
from hpgc.models.package import param
from hpgc.models.sweep import SweepRequest
from hpgc.packages.inputs import InputValue, validate_inputs

_NAMED = re.compile(r"input '([^']*)'")


def check_sweepable(description: ProcessDescription) -> None:
    """A 400 when this process cannot sweep: it runs synchronously only (a sweep is always followed as a job),
    or its package says so (additional parameter `hpgc:sweep` false)."""
    if param(description.additionalParameters, "hpgc:sweep") is False:
        raise InvalidRequest(f"process '{description.id}' cannot run as a sweep (hpgc:sweep): its package says so")
    if JobControlOption.async_ not in description.jobControlOptions:
        raise InvalidRequest(f"process '{description.id}' runs synchronously only and cannot run as a sweep "
                             "(hpgc:sweep), which is always an asynchronous job")


def sweep_inputs(
    description: ProcessDescription, common: dict[str, Any], sweep: SweepRequest, max_tasks: int, max_values: int,
) -> list[dict[str, list[InputValue]]]:
    """Each task's validated inputs, in task order."""
    check_sweepable(description)
    unknown = sorted(set(sweep.inputs) - set(description.inputs))
    if unknown:
        raise InvalidParameterValue(f"hpgc:sweep: unknown input '{unknown[0]}'; process '{description.id}' takes: "
                                    + ", ".join(sorted(description.inputs)))
    both = sorted(set(sweep.inputs) & set(common))
    if both:
        raise InvalidRequest(f"hpgc:sweep: input '{both[0]}' is given both in inputs and in hpgc:sweep; give it "
                             "in one place")
    empty = next((k for k, v in sweep.inputs.items() if not v), None)
    if empty is not None:
        raise InvalidParameterValue(f"hpgc:sweep: input '{empty}' has no values")
    if (odd := sweep.unequal()) is not None:
        first, values = next(iter(sweep.inputs.items()))
        raise InvalidParameterValue(f"hpgc:sweep: mode 'zip' needs lists of one length: input '{odd[0]}' has "
                                    f"{odd[1]} values, input '{first}' {len(values)} (or use mode 'product')")
    size = sweep.size()
    if size > max_tasks:
        raise InvalidRequest(f"hpgc:sweep makes {size} tasks; this server runs at most {max_tasks} in one sweep "
                             "(limits.sweep_max_tasks): split it into several")
    result = []
    for index, values in enumerate(sweep.tasks()):
        try:
            result.append(validate_inputs(description, {**common, **values}, max_values))
        except InvalidParameterValue as exc:
            named = _NAMED.search(exc.detail)
            input_id = named.group(1) if named and named.group(1) in sweep.inputs else None
            if input_id is None:
                raise  # the common inputs are wrong (the same for every task): the single execute's 400
            raise InvalidParameterValue(f"hpgc:sweep: input '{input_id}' index {sweep.index_of(index, input_id)}: "
                                        f"{exc.detail}") from None
    return result
