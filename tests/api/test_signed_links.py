"""Signed result links (hpgc/api/links.py): a results document's hrefs open their output without a bearer
token, with Range, until they expire or the job is dismissed; an altered link opens nothing."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.test_utils import TestClient

from hpgc.api.app import create_app
from hpgc.api.bearer import DEV_ISSUER
from hpgc.api.keys import SETTINGS
from hpgc.api.links import SIGNER
from hpgc.auth.dev_issuer import dev_issuer_url
from hpgc.auth.links import LinkRefused, LinkSigner
from hpgc.auth.settings import AuthSettings
from hpgc.config import Settings
from hpgc.models.run import JobRef
from tests.api.fake_backend import FakeBackend

DATA = bytes(range(256)) * 40


@pytest.fixture
async def client(aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings,
                 fake_backend: FakeBackend) -> TestClient:
    async def outputs(job: JobRef) -> dict[str, Any]:
        fake_backend.files[(job.job_id, "/jobs/image.png")] = DATA
        return {"image": {"class": "File", "path": "/jobs/image.png"}}

    fake_backend.outputs = outputs  # type: ignore[method-assign]
    return await aiohttp_client(create_app(settings.model_copy(update={"auth": AuthSettings()}),
                                           backends={"local": fake_backend}))


def bearer(client: TestClient, user: str) -> dict[str, str]:
    tok = client.app[DEV_ISSUER].mint(dev_issuer_url(client.app[SETTINGS]), user, "hpgc:execute")
    return {"Authorization": f"Bearer {tok}"}


async def signed_href(client: TestClient, user: str = "alice") -> tuple[str, str]:
    resp = await client.post("/processes/echo/execution", json={"inputs": {"stringInput": "x"}},
                             headers={**bearer(client, user), "Prefer": "wait=10"})
    assert resp.status == 204, await resp.text()  # one file, raw: 204 and a Link header, signed too
    assert "&sig=" in resp.headers["Link"]
    job = resp.headers["Location"].rsplit("/", 1)[1]
    doc = await (await client.get(f"/jobs/{job}/results", headers=bearer(client, user))).json()
    href = doc["image"]["href"]
    parts = urlsplit(href)
    assert parts.path == f"/jobs/{job}/results/image" and set(parse_qs(parts.query)) == {"exp", "sig"}
    return job, f"{parts.path}?{parts.query}"


async def test_a_signed_link_opens_its_output_without_a_token_and_with_range(client: TestClient) -> None:
    _, link = await signed_href(client)
    resp = await client.get(link)
    assert resp.status == 200 and await resp.read() == DATA and resp.content_type == "image/png"
    part = await client.get(link, headers={"Range": "bytes=100-199"})
    assert part.status == 206 and await part.read() == DATA[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(DATA)}"
    head = await client.head(link)
    assert head.status == 200 and head.headers["Content-Length"] == str(len(DATA))


async def test_without_the_signature_the_token_is_still_needed(client: TestClient) -> None:
    _, link = await signed_href(client)
    assert (await client.get(link.split("?")[0])).status == 401


@pytest.mark.parametrize("change", ["sig", "exp", "job", "output", "twice"])
async def test_an_altered_link_is_403(client: TestClient, change: str) -> None:
    job, link = await signed_href(client)
    path, query = link.split("?")
    q = {k: v[0] for k, v in parse_qs(query).items()}
    if change == "sig":
        q["sig"] = q["sig"][:-2] + ("AA" if q["sig"][-2:] != "AA" else "BB")
    elif change == "exp":
        q["exp"] = str(int(q["exp"]) + 3600)
    elif change == "job":
        other, _ = await signed_href(client)
        path = path.replace(job, other)
    elif change == "output":
        path = path.rsplit("/", 1)[0] + "/other"
    resp = await client.get(path, params=list(q.items()) + ([("sig", q["sig"])] if change == "twice" else []))
    assert resp.status == 403 and resp.content_type == "application/problem+json", await resp.text()
    assert "WWW-Authenticate" not in resp.headers


async def test_an_expired_link_is_403(client: TestClient) -> None:
    job, _ = await signed_href(client)
    old = client.app[SIGNER].sign(job, "image", now=time.time() - 2 * client.app[SIGNER].expiry_s)
    resp = await client.get(f"/jobs/{job}/results/image", params=old)
    assert resp.status == 403 and "expired" in (await resp.json())["detail"]


async def test_a_dismissed_jobs_link_stops_working(client: TestClient) -> None:
    job, link = await signed_href(client)
    assert (await client.get(link)).status == 200
    assert (await client.delete(f"/jobs/{job}", headers=bearer(client, "alice"))).status == 200
    resp = await client.get(link)
    assert resp.status == 403 and "dismissed" in (await resp.json())["detail"]


async def test_a_link_opens_only_its_output_route(client: TestClient) -> None:
    job, link = await signed_href(client)
    query = link.split("?")[1]
    for path in (f"/jobs/{job}", f"/jobs/{job}/results", f"/jobs/{job}/logs", "/jobs"):
        assert (await client.get(f"{path}?{query}")).status == 401, path
    assert (await client.delete(f"/jobs/{job}/results/image?{query}")).status in (401, 405)


def test_the_signer_refuses_what_it_did_not_sign() -> None:
    signer = LinkSigner(b"k" * 32, 60)
    good = signer.sign("j", "o", now=1000)
    signer.verify("j", "o", good["exp"], good["sig"], now=1000)
    for exp, sig in ((good["exp"], ""), ("1e9", good["sig"]), ("9" * 40, good["sig"]), ("١٠٠", good["sig"])):
        with pytest.raises(LinkRefused):
            signer.verify("j", "o", exp, sig, now=1000)
    with pytest.raises(LinkRefused):
        LinkSigner(b"x" * 32, 60).verify("j", "o", good["exp"], good["sig"], now=1000)
    with pytest.raises(ValueError):
        LinkSigner(b"short", 60)
