"""docs/deploy/grafana-dashboard.json is valid JSON and asks only for metrics hpgc has (a renamed metric
fails here, not on an operator's screen)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hpgc.api.metrics import reference

DASHBOARD = Path(__file__).resolve().parents[2] / "docs/deploy/grafana-dashboard.json"


def test_every_panel_asks_for_existing_metrics() -> None:
    doc = json.loads(DASHBOARD.read_text())
    names = set(re.findall(r"\| `(hpgc_[a-z_]+)` \| (\w+) \|", reference()))
    series = {n for n, _ in names} | {f"{n}_bucket" for n, kind in names if kind == "histogram"}
    asked = {m for p in doc["panels"] for t in p["targets"] for m in re.findall(r"hpgc_[a-z_]+", t["expr"])}
    assert len(doc["panels"]) >= 10 and asked and asked <= series, asked - series
    assert {"hpgc_jobs", "hpgc_http_requests_total", "hpgc_ssh_connections_up", "hpgc_submissions_total",
            "hpgc_callback_outbox_oldest_seconds", "hpgc_poll_cycle_seconds_bucket"} <= asked
