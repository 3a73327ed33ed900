"""JobService: create, follow, list, dismiss jobs, collect their results, and keep the process catalogue.

It knows the store, the registry and the backends, and nothing about HTTP (pygeoapi's process manager):
handlers call it and render what it answers. It is made of parts, one module each, sharing parts.py's state.
"""

from __future__ import annotations

from hpgc.jobs.catalog import Catalog
from hpgc.jobs.delivery import Delivery
from hpgc.jobs.lifecycle import Lifecycle
from hpgc.jobs.operations import Operations
from hpgc.jobs.results import Results
from hpgc.jobs.retention import RetentionPart
from hpgc.jobs.submission import Submission
from hpgc.jobs.sweep_results import SweepResults
from hpgc.jobs.sweeps import Sweeps
from hpgc.jobs.uploads import Uploads


class JobService(Delivery, Sweeps, Submission, Lifecycle, SweepResults, Results, Catalog, Operations, RetentionPart,
                 Uploads):
    """The whole service; see each part for what it does."""
