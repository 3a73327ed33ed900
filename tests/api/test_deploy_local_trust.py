"""Deploy on a backend whose jobs run as the server's account: an administrator's decision by default."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient

from tests.api.fake_backend import FakeBackend
from tests.api.test_auth_http import bearer, client  # noqa: F401  (the fixture: auth on, dev issuer)

REPO = Path(__file__).resolve().parents[2]
BANDMATH = (REPO / "appkgs/BandMath/package.json").read_text()
PKG = {"Content-Type": "application/ogcapppkg+json"}
DEPLOY = "hpgc:execute hpgc:deploy"


async def test_a_deployer_needs_admin_on_the_server_account(client: TestClient,  # noqa: F811
                                                             fake_backend: FakeBackend) -> None:
    fake_backend.deploy_needs_admin = True
    alice = bearer(client, "alice", DEPLOY)
    resp = await client.post("/processes", data=BANDMATH, headers={**PKG, **alice})
    assert resp.status == 403, await resp.text()
    body = await resp.json()
    assert resp.content_type == "application/problem+json" and "local.allow_user_deploy" in body["detail"]
    assert body["error"] == "insufficient_scope" and "hpgc:admin" in body["scope"]
    assert (await client.get("/processes/BandMath", headers=alice)).status == 404
    admin = bearer(client, "root-admin", f"{DEPLOY} hpgc:admin")
    assert (await client.post("/processes", data=BANDMATH, headers={**PKG, **admin})).status == 201
    resp = await client.put("/processes/BandMath", data=BANDMATH, headers={**PKG, **alice})
    assert resp.status == 403  # not hers anyway; an owner who is no admin is refused the same way below
    fake_backend.deploy_needs_admin = False  # the administrator's opt-in
    assert (await client.post("/processes", data=BANDMATH.replace('"BandMath"', '"Mine"'),
                              headers={**PKG, **alice})).status == 201
    fake_backend.deploy_needs_admin = True
    resp = await client.put("/processes/Mine", data=BANDMATH, headers={**PKG, **alice})
    assert resp.status == 403 and "local.allow_user_deploy" in (await resp.json())["detail"]
    assert (await client.delete("/processes/Mine", headers=alice)).status == 204  # undeploy stays hers
