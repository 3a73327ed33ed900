"""The job service's Prometheus metrics; the whole list is docs/operations.md.

Counters and histograms live in prometheus_client's process-wide registry (the service increments them);
what the store knows (jobs by state, the callback outbox) is read at scrape time into StoreCollector, one
GROUP BY in the store's worker thread, so a scrape costs the same however many jobs ran."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hpgc.store.stats import OutboxStats

SLOW = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)  # SSH round trips, sbatch, a poll cycle, a pull
SUBMISSIONS = Counter("hpgc_submissions", "Jobs handed to their backend (sbatch on Slurm), by backend and "
                      "result (ok, failed).", ["backend", "result"])
SUBMIT_SECONDS = Histogram("hpgc_submit_seconds", "Time to hand one job to its backend (Slurm: staging and "
                           "sbatch over SSH, retries included), by backend.", ["backend"], buckets=SLOW)
POLL_SECONDS = Histogram("hpgc_poll_cycle_seconds", "Duration of one poll cycle of a backend's monitor (Slurm: "
                         "one sacct per cluster and SSH identity), by backend.", ["backend"], buckets=SLOW)
POLL_FAILURES = Counter("hpgc_poll_failures", "Poll cycles that failed (and are tried again), by backend.",
                        ["backend"])
STATUS_CHANGES = Counter("hpgc_job_status_changes", "Jobs that reached a status, by backend and status.",
                         ["backend", "status"])
CALLBACK_ATTEMPTS = Counter("hpgc_callback_attempts", "Delivery attempts of subscriber callbacks, by result "
                            "(delivered, failed: retried later, given_up).", ["result"])
DEPLOYS = Counter("hpgc_deploys", "Processes deployed, replaced and undeployed (Part 2), by action.", ["action"])
IMAGE_PULLS = Counter("hpgc_image_pulls", "Container image pulls into a backend's image cache, by backend and "
                      "result (ok, failed).", ["backend", "result"])
IMAGE_PULL_SECONDS = Histogram("hpgc_image_pull_seconds", "Duration of one image pull, by backend.", ["backend"],
                               buckets=SLOW)
RETENTION_PURGED = Counter("hpgc_retention_purged", "Ended jobs whose files retention deleted (now tombstones), "
                           "by backend.", ["backend"])
RETENTION_FAILURES = Counter("hpgc_retention_failures", "Expired jobs whose files could not be deleted (tried again "
                             "at the next sweep), by backend.", ["backend"])

JobCounts = list[tuple[str, str, str, str, int]]


class StoreCollector(Collector):
    """Jobs by status, process, backend and cluster, and the callback outbox, from the last `update`.

    Not in the process-wide registry: each app has its own store; /metrics asks the store, calls `update`,
    then renders this collector's registry beside the process-wide one."""

    def __init__(self) -> None:
        self.counts: JobCounts = []
        self.outbox: OutboxStats = {"pending": 0, "oldest_pending": None, "overdue": 0}
        self.now = time.time()

    def update(self, counts: JobCounts, outbox: OutboxStats, now: float) -> None:
        self.counts, self.outbox, self.now = counts, outbox, now

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("hpgc_jobs", "Jobs in the database now, by status, process, backend and cluster "
                                 "('' for the backend's default).", labels=["status", "process", "backend",
                                                                             "cluster"])
        for status, process, backend, cluster, n in self.counts:
            jobs.add_metric([status, process, backend, cluster], n)
        yield jobs
        yield GaugeMetricFamily("hpgc_callback_outbox_pending", "Subscriber callbacks waiting for delivery now.",
                                value=self.outbox["pending"])
        oldest = self.outbox["oldest_pending"]
        yield GaugeMetricFamily("hpgc_callback_outbox_oldest_seconds", "Age of the oldest callback waiting for "
                                "delivery (0: none waits).", value=0 if oldest is None else max(0.0, self.now - oldest))
        yield GaugeMetricFamily("hpgc_callback_outbox_overdue", "Callbacks whose next attempt is overdue by more "
                                "than health.outbox_stuck_s (the dispatcher is not keeping up).",
                                value=self.outbox["overdue"])
