"""Part 2 with authentication on: the deploy scope, owners, administrators, immutable built-ins."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient

from tests.api.test_auth_http import bearer, client  # noqa: F401  (the fixture: auth on, dev issuer)

REPO = Path(__file__).resolve().parents[2]
BANDMATH = (REPO / "appkgs/BandMath/package.json").read_text()
PKG = {"Content-Type": "application/ogcapppkg+json"}
DEPLOY = "hpgc:execute hpgc:deploy"


async def test_deploy_needs_the_deploy_scope(client: TestClient) -> None:  # noqa: F811
    resp = await client.post("/processes", data=BANDMATH, headers={**PKG, **bearer(client, "alice")})
    assert resp.status == 403
    assert (await resp.json())["error"] == "insufficient_scope"
    assert "insufficient_scope" in resp.headers["WWW-Authenticate"]
    resp = await client.post("/processes", data=BANDMATH, headers=PKG)
    assert resp.status == 401


async def test_only_the_owner_or_an_admin_changes_a_process(client: TestClient) -> None:  # noqa: F811
    alice, bob = bearer(client, "alice", DEPLOY), bearer(client, "bob", DEPLOY)
    assert (await client.post("/processes", data=BANDMATH, headers={**PKG, **alice})).status == 201
    resp = await client.put("/processes/BandMath", data=BANDMATH, headers={**PKG, **bob})
    assert resp.status == 403, await resp.text()
    assert (await client.delete("/processes/BandMath", headers=bob)).status == 403
    assert (await client.put("/processes/BandMath", data=BANDMATH, headers={**PKG, **alice})).status == 204
    admin = bearer(client, "root-admin", "hpgc:admin")
    assert (await client.delete("/processes/BandMath", headers=admin)).status == 204


async def test_builtins_are_immutable_even_for_admins(client: TestClient) -> None:  # noqa: F811
    admin = bearer(client, "root-admin", "hpgc:admin")
    resp = await client.delete("/processes/echo", headers=admin)
    assert resp.status == 403
    assert (await resp.json())["type"].endswith("/immutable-process")


async def test_owner_only_visibility(aiohttp_client, settings, fake_backend) -> None:
    from hpgc.api.app import create_app
    from hpgc.auth.settings import AuthSettings

    app = create_app(settings.model_copy(update={"auth": AuthSettings(deployed_process_visibility="owner")}),
                     backends={"local": fake_backend})
    c = await aiohttp_client(app)
    alice, bob = bearer(c, "alice", DEPLOY), bearer(c, "bob", "hpgc:execute")
    assert (await c.post("/processes", data=BANDMATH, headers={**PKG, **alice})).status == 201
    listed = [p["id"] for p in (await (await c.get("/processes", headers=bob)).json())["processes"]]
    assert "BandMath" not in listed and "echo" in listed
    assert (await c.get("/processes/BandMath", headers=bob)).status == 404
    assert (await c.get("/processes/BandMath/package", headers=bob)).status == 404
    run = await c.post("/processes/BandMath/execution", headers=bob,
                       json={"inputs": {"il": [{"href": "http://x/a.tif"}], "exp": "im1b1"}})
    assert run.status == 404
    assert (await c.get("/processes/BandMath", headers=alice)).status == 200


async def test_everyone_sees_deployed_processes_by_default(client: TestClient) -> None:  # noqa: F811
    alice, bob = bearer(client, "alice", DEPLOY), bearer(client, "bob", "hpgc:execute")
    assert (await client.post("/processes", data=BANDMATH, headers={**PKG, **alice})).status == 201
    assert (await client.get("/processes/BandMath", headers=bob)).status == 200
