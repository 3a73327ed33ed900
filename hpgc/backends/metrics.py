"""The backends' Prometheus metrics (SSH to the clusters); the whole list is docs/operations.md.

Defined here, below the job service, because the backends count them; they live in prometheus_client's
process-wide registry, which hpgc/api/metrics.py serves at /metrics."""

from __future__ import annotations

import weakref
from collections import Counter as Tally
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

SSH_ROUND_TRIPS = Counter("hpgc_ssh_round_trips", "Remote commands run over SSH, by cluster.", ["cluster"])
SSH_CONNECTS = Counter(
    "hpgc_ssh_connects",
    "SSH connections opened, by cluster and result (ok, failed); more than one ok per SSH identity means "
    "reconnections.", ["cluster", "result"])
SSH_LOST = Counter("hpgc_ssh_connections_lost", "SSH connections found dropped while in use, by cluster.",
                   ["cluster"])


class Connection(Protocol):
    cluster: str

    @property
    def is_connected(self) -> bool: ...


CLIENTS: weakref.WeakSet[Connection] = weakref.WeakSet()  # every SSH client (ssh.py adds itself)


class ConnectionCollector(Collector):
    """SSH connections open now, per cluster: read from the clients at scrape time, so it cannot drift."""

    def collect(self) -> Iterator[Metric]:
        up = Tally(c.cluster for c in list(CLIENTS) if c.is_connected)
        family = GaugeMetricFamily("hpgc_ssh_connections_up", "SSH connections open now, by cluster.",
                                   labels=["cluster"])
        for cluster in sorted({c.cluster for c in list(CLIENTS)}):
            family.add_metric([cluster], up[cluster])
        yield family


REGISTRY.register(ConnectionCollector())
