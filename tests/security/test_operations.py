"""Attacks on the operations routes: /metrics is an administrator's, no path or id an attacker sends becomes a
metric label or a log line's id, and the public health routes tell nothing about the site."""

from __future__ import annotations

import httpx

from tests.security.conftest import Attacked


def test_metrics_are_not_for_ordinary_users(target: Attacked) -> None:
    assert httpx.get(f"{target.url}/metrics").status_code == 401
    refused = target.alice.get("/metrics")
    assert refused.status_code == 403 and refused.json()["error"] == "insufficient_scope"
    assert target.admin.get("/metrics").status_code == 200


def test_paths_and_request_ids_an_attacker_sends_do_not_become_labels_or_ids(target: Attacked) -> None:
    for i in range(20):  # a scan: each path would be a new series if raw paths were labels
        assert target.alice.get(f"/scan-{i}/x%2e%2e/admin").status_code == 404
    forged = target.alice.get("/processes", headers={"X-Request-Id": 'x" level=ERROR {"forged": 1}'})
    assert forged.status_code == 200 and forged.headers["X-Request-Id"] != 'x" level=ERROR {"forged": 1}'
    text = target.admin.get("/metrics").text
    assert "scan-" not in text and "forged" not in text
    assert 'route="(unmatched)"' in text
    assert "forged" not in target.log()


def test_health_is_public_and_says_nothing_of_the_site(target: Attacked) -> None:
    ready = httpx.get(f"{target.url}/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "checks": {"callbacks": "ok", "database": "ok"}}
    assert str(target.server.data_dir) not in ready.text
    for method in ("POST", "PUT", "DELETE"):
        assert httpx.request(method, f"{target.url}/health/ready").status_code in (401, 405)
