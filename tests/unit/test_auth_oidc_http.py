"""hpgc/auth/issuer.py and verifier.py against issuers that answer badly over real HTTP on 127.0.0.1: what the
verifier asks for (discovery URL, headers, redirects), and the exact 503 or 401 reason for each bad answer or
token."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from hpgc.auth.issuer import Issuer
from hpgc.auth.principal import AuthUnavailable, InvalidToken
from hpgc.auth.settings import AuthSettings, IssuerSettings
from hpgc.auth.verifier import TokenVerifier
from tests.fake_issuer import CLIENT, FakeIssuer, ec_key, rs256_raw

Server = Callable[..., Awaitable[TestServer]]


class Odd:
    """An issuer whose every answer the test sets: path → (status, body bytes); records requests."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, bytes]] = {}
        self.requests: list[tuple[str, str, dict[str, str], dict[str, str]]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        form = dict(await request.post()) if request.method == "POST" else {}
        self.requests.append((request.method, request.path, dict(request.headers), {k: str(v) for k, v in
                                                                                    form.items()}))
        status, body = self.answers.get(request.path, (404, b"{}"))
        headers = {"Location": self.url + "/elsewhere"} if status in (301, 302) else {}
        return web.Response(status=status, body=body, content_type="application/json", headers=headers)


@pytest.fixture
async def odd(aiohttp_server: Server) -> AsyncIterator[Odd]:
    o = Odd()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", o.handle)
    server = await aiohttp_server(app)
    o.url = str(server.make_url("")).rstrip("/")
    yield o


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def verifier_for(session: aiohttp.ClientSession, **settings: Any) -> TokenVerifier:
    auth = AuthSettings(issuers=[IssuerSettings(**settings)])
    return TokenVerifier(auth, [Issuer(i, lambda: session) for i in auth.issuers])


def discovery(odd: Odd, **extra: Any) -> bytes:
    return json.dumps({"issuer": odd.url + "/r", "jwks_uri": odd.url + "/r/jwks", **extra}).encode()


async def unavailable(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(AuthUnavailable) as err:
        await verifier.verify(token)
    return err.value.detail


@pytest.mark.parametrize("answer, reason", [
    ((500, b"{}"), "the discovery document of issuer {iss} answered HTTP 500"),
    ((302, b""), "the discovery document of issuer {iss} answered HTTP 302"),  # redirects are not followed
    ((200, b"[1, 2]"), "the discovery document of issuer {iss}: the answer is not a JSON object"),
    ((200, b"<html>login</html>"), "the discovery document of issuer {iss}: the answer is not a JSON object"),
    ((200, b'{"a": "' + b"x" * (1024 * 1024) + b'"}'),
     "the discovery document of issuer {iss}: the answer is not a JSON object"),
])
async def test_bad_discovery_answers_are_503(odd: Odd, session: aiohttp.ClientSession, answer: tuple[int, bytes],
                                             reason: str) -> None:
    fake = FakeIssuer()
    fake.url = odd.url + "/r"
    odd.answers["/r/.well-known/openid-configuration"] = answer
    verifier = verifier_for(session, issuer=fake.url)
    assert await unavailable(verifier, fake.token()) == reason.format(iss=fake.url)
    method, path, headers, _ = odd.requests[0]
    assert (method, path, headers["Accept"]) == ("GET", "/r/.well-known/openid-configuration", "application/json")
    assert [r[1] for r in odd.requests] == ["/r/.well-known/openid-configuration"], "no redirect followed"


async def test_a_document_of_exactly_the_size_limit_is_read(odd: Odd, session: aiohttp.ClientSession) -> None:
    fake = FakeIssuer()
    fake.url = odd.url + "/r"
    doc = discovery(odd)
    odd.answers["/r/.well-known/openid-configuration"] = (200, doc[:-1] + b" " * (1024 * 1024 - len(doc)) + b"}")
    odd.answers["/r/jwks"] = (200, json.dumps({"keys": [FakeIssuer.public(fake.signing)]}).encode())
    _, claims = await verifier_for(session, issuer=fake.url).verify(fake.token())
    assert claims["sub"] == "alice-sub"


@pytest.mark.parametrize("doc, jwks, reason", [
    ({"issuer": "{url}/r/"}, None, "the discovery document at {url}/r/.well-known/openid-configuration is for issuer "
                                   "'{url}/r/'"),
    ({"jwks_uri": None}, None, "issuer {url}/r publishes no jwks_uri"),
    ({"jwks_uri": 5}, None, "issuer {url}/r publishes no jwks_uri"),
    ({}, (503, b"{}"), "the JWKS of issuer {url}/r answered HTTP 503"),
    ({}, (200, b"null"), "the JWKS of issuer {url}/r: the answer is not a JSON object"),
])
async def test_bad_discovery_documents_and_jwks_are_503(odd: Odd, session: aiohttp.ClientSession,
                                                        doc: dict[str, Any], jwks: tuple[int, bytes] | None,
                                                        reason: str) -> None:
    fake = FakeIssuer()
    fake.url = odd.url + "/r"
    body = {"issuer": fake.url, "jwks_uri": fake.url + "/jwks"}
    body.update({k: v.format(url=odd.url) if isinstance(v, str) else v for k, v in doc.items()})
    odd.answers["/r/.well-known/openid-configuration"] = (200, json.dumps(body).encode())
    if jwks:
        odd.answers["/r/jwks"] = jwks
    assert await unavailable(verifier_for(session, issuer=fake.url), fake.token()) == reason.format(url=odd.url)


async def test_configured_urls_replace_discovery(odd: Odd, session: aiohttp.ClientSession) -> None:
    fake = FakeIssuer()
    fake.url = odd.url + "/r/"  # a trailing slash in the issuer is not doubled in the discovery URL
    odd.answers["/r/.well-known/openid-configuration"] = (200, json.dumps({"issuer": fake.url,
                                                                           "jwks_uri": odd.url + "/k"}).encode())
    odd.answers["/k"] = (200, json.dumps({"keys": [FakeIssuer.public(fake.signing)]}).encode())
    odd.answers["/mine"] = (200, json.dumps({"issuer": fake.url, "jwks_uri": odd.url + "/k"}).encode())
    odd.answers["/keys-here"] = (200, json.dumps({"keys": [FakeIssuer.public(fake.signing)]}).encode())
    await verifier_for(session, issuer=fake.url).verify(fake.token())
    assert [r[1] for r in odd.requests] == ["/r/.well-known/openid-configuration", "/k"]
    odd.requests.clear()
    await verifier_for(session, issuer=fake.url, discovery_url=odd.url + "/mine").verify(fake.token())
    assert [r[1] for r in odd.requests] == ["/mine", "/k"]
    odd.requests.clear()
    await verifier_for(session, issuer=fake.url, jwks_uri=odd.url + "/keys-here").verify(fake.token())
    assert [r[1] for r in odd.requests] == ["/keys-here"], "a configured jwks_uri needs no discovery"


async def test_discovery_is_fetched_once(odd: Odd, session: aiohttp.ClientSession) -> None:
    fake = FakeIssuer()
    fake.url = odd.url + "/r"
    odd.answers["/r/.well-known/openid-configuration"] = (200, discovery(odd))
    odd.answers["/r/jwks"] = (200, json.dumps({"keys": [FakeIssuer.public(fake.signing)]}).encode())
    verifier = verifier_for(session, issuer=fake.url, jwks_refresh_min_s=0)
    await verifier.verify(fake.token())
    fake.rotate()
    odd.answers["/r/jwks"] = (200, json.dumps({"keys": [FakeIssuer.public(k) for k in fake.keys]}).encode())
    await verifier.verify(fake.token())
    assert [r[1] for r in odd.requests] == ["/r/.well-known/openid-configuration", "/r/jwks", "/r/jwks"]


# introspection requests ------------------------------------------------------------------------------
async def test_introspection_request_and_bad_answers(odd: Odd, session: aiohttp.ClientSession) -> None:
    url = odd.url + "/r"
    odd.answers["/r/.well-known/openid-configuration"] = (200, discovery(odd, introspection_endpoint=url + "/i"))
    verifier = verifier_for(session, issuer=url, client_id=CLIENT[0], client_secret=CLIENT[1],
                            introspection_cache_s=0)
    good = {"active": True, "sub": "a", "iss": url, "aud": "hpgc", "exp": int(time.time()) + 300}
    odd.answers["/r/i"] = (200, json.dumps(good).encode())
    _, claims = await verifier.verify("opaque-1")
    assert claims == good
    method, path, headers, form = odd.requests[-1]
    assert (method, path) == ("POST", "/r/i")
    assert form == {"token": "opaque-1", "token_type_hint": "access_token"}
    assert headers["Authorization"] == "Basic aHBnYy1yczpzM2NyZXQ="  # hpgc-rs:s3cret
    assert headers["Accept"] == "application/json"
    for answer, reason in [
        ((500, b"{}"), f"the introspection endpoint of issuer {url} answered HTTP 500"),
        ((302, b""), f"the introspection endpoint of issuer {url} answered HTTP 302"),
        ((200, b"not json"), f"the introspection endpoint of issuer {url}: the answer is not a JSON object"),
        ((200, b"[true]"), f"the introspection endpoint of issuer {url}: the answer is not a JSON object"),
        ((200, json.dumps(good).encode()[:-1] + b" " * (1024 * 1024 - len(json.dumps(good))) + b"} "),
         f"the introspection endpoint of issuer {url}: the answer is not a JSON object"),  # 1 MiB + 1 byte: too long
    ]:
        odd.answers["/r/i"] = answer
        assert await unavailable(verifier, "opaque-1") == reason
    odd.answers["/r/.well-known/openid-configuration"] = (200, discovery(odd))
    no_endpoint = verifier_for(session, issuer=url, client_id="c", client_secret="s")
    assert await unavailable(no_endpoint, "opaque-1") == f"issuer {url} has no introspection endpoint"
    configured = verifier_for(session, issuer=url, client_id="c", client_secret="s",
                              introspection_endpoint=odd.url + "/other")
    odd.answers["/other"] = (200, json.dumps(good).encode())
    assert (await configured.verify("opaque-2"))[1] == good
    padded = json.dumps(good).encode()[:-1] + b" " * (1024 * 1024 - len(json.dumps(good))) + b"}"
    assert len(padded) == 1024 * 1024
    odd.answers["/other"] = (200, padded)
    assert (await configured.verify("opaque-3"))[1] == good, "an answer of exactly 1 MiB is read whole"
    assert odd.requests[-1][1] == "/other"


async def test_unreachable_introspection_is_503(session: aiohttp.ClientSession) -> None:
    url = "http://127.0.0.1:9/r"
    verifier = verifier_for(session, issuer=url, client_id="c", client_secret="s",
                            introspection_endpoint=url + "/i", timeout_s=2)
    detail = await unavailable(verifier, "opaque")
    assert detail.startswith(f"the introspection endpoint of issuer {url} is unreachable: ")


# JWT checks with exact reasons -------------------------------------------------------------------------
@pytest.fixture
async def verifier(fake: FakeIssuer, session: aiohttp.ClientSession) -> TokenVerifier:
    return verifier_for(session, issuer=fake.url, jwks_refresh_min_s=0)


async def refused(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as err:
        await verifier.verify(token)
    return err.value.detail


@pytest.mark.parametrize("typ", ["JWT", "jwt", "at+jwt", "AT+JWT", "application/at+jwt", None])
async def test_access_token_types_accepted(fake: FakeIssuer, verifier: TokenVerifier, typ: str | None) -> None:
    assert (await verifier.verify(fake.token(header={"typ": typ})))[1]["sub"] == "alice-sub"


async def test_exact_reasons(fake: FakeIssuer, verifier: TokenVerifier) -> None:
    now = int(time.time())
    rsa = fake.keys[0]
    assert await refused(verifier, fake.token(header={"typ": "id+jwt"})) == "a token of type 'id+jwt' is not an " \
                                                                           "access token"
    assert await refused(verifier, fake.token(header={"typ": 1})) == "a token of type 1 is not an access token"
    assert await refused(verifier, rs256_raw({"alg": "RS256", "kid": 7}, fake.claims(), rsa)) == \
        "the token's kid is not a string"
    assert await refused(verifier, rs256_raw({"alg": "RS256", "kid": rsa.kid, "crit": []}, fake.claims(), rsa)) == \
        "the token has critical header extensions this server does not support"
    assert await refused(verifier, rs256_raw({"alg": "RS512", "kid": rsa.kid}, fake.claims(), rsa)) == \
        "the token's algorithm 'RS512' is not accepted (accepted: RS256, ES256, PS256, EdDSA)"
    assert await refused(verifier, rs256_raw({"alg": 5, "kid": rsa.kid}, fake.claims(), rsa)) == \
        "the token's algorithm 5 is not accepted (accepted: RS256, ES256, PS256, EdDSA)"
    assert await refused(verifier, fake.token(exp=now - 31)) == "the token has expired"
    assert await refused(verifier, fake.token(nbf=now + 60)) == "the token is not valid yet (nbf or iat in the future)"
    assert await refused(verifier, fake.token(aud="x")) == "the token's 'aud' claim is not acceptable here"
    assert await refused(verifier, fake.token(aud=None)) == "the token lacks a claim: Missing 'aud' claim"
    assert await refused(verifier, fake.token(exp=None)) == "the token lacks a claim: Missing 'exp' claim"
    head, body, sig = fake.token().split(".")
    assert await refused(verifier, f"{head}.{body}.{sig[:-4]}AAAA") == "the token's signature does not verify"
    assert await refused(verifier, f"{head}.{body}.A") == "the token is malformed: Invalid signature padding: "
    assert await refused(verifier, fake.token(iss=["x"])) == "the token's issuer ['x'] is not trusted here"
    assert await refused(verifier, fake.token(exp="soon")) == "the token's 'exp' claim is not acceptable here"
    assert await refused(verifier, fake.token(iss="https://x.example")) == \
        "the token's issuer 'https://x.example' is not trusted here"
    assert await refused(verifier, fake.token(iss="https://x.example/" + "a" * 300)) == \
        ("the token's issuer 'https://x.example/" + "a" * 300)[:200]
    assert await refused(verifier, "opaque") == "the token is not a JWT, and no issuer here introspects opaque tokens"


async def test_a_key_published_for_another_algorithm_is_refused(fake: FakeIssuer, odd: Odd,
                                                                session: aiohttp.ClientSession) -> None:
    url = odd.url + "/r"
    fake.url = url
    rsa = fake.keys[0]
    odd.answers["/r/.well-known/openid-configuration"] = (200, discovery(odd))
    odd.answers["/r/jwks"] = (200, json.dumps({"keys": [{**FakeIssuer.public(rsa), "alg": "PS256"}]}).encode())
    verifier = verifier_for(session, issuer=url)
    with pytest.raises(InvalidToken) as err:
        await verifier.verify(fake.token())
    assert err.value.detail == f"the key '{rsa.kid}' is not for algorithm RS256"
    odd.answers["/r/jwks"] = (200, json.dumps({"keys": [{**FakeIssuer.public(rsa), "alg": "RS256"}]}).encode())
    assert (await verifier_for(session, issuer=url).verify(fake.token()))[1]["sub"] == "alice-sub"


async def test_an_ec_token_needs_an_ec_key_and_an_okp_key_is_not_rsa(fake: FakeIssuer,
                                                                     verifier: TokenVerifier) -> None:
    ec = ec_key()
    fake.keys.append(ec)
    assert (await verifier.verify(fake.token(key=ec)))[1]["sub"] == "alice-sub"
    # an RS256 token naming the EC key's kid: the key type does not fit the algorithm
    assert await refused(verifier, rs256_raw({"alg": "RS256", "kid": ec.kid}, fake.claims(), fake.keys[0])) == \
        f"the key '{ec.kid}' is not for algorithm RS256"
    # an audience check can be turned off: any aud (or none) passes
    no_aud = TokenVerifier(AuthSettings(issuers=[IssuerSettings(issuer=fake.url, audience=[])]),
                           [Issuer(IssuerSettings(issuer=fake.url, audience=[]), lambda: verifier.issuers[fake.url]
                                   ._session())])
    assert (await no_aud.verify(fake.token(aud="anything")))[1]["aud"] == "anything"
    assert "aud" not in (await no_aud.verify(fake.token(aud=None)))[1]


async def test_plain_http_urls_in_an_issuers_documents_are_503(odd: Odd, session: aiohttp.ClientSession) -> None:
    url = odd.url + "/r"
    fake = FakeIssuer()
    fake.url = url
    odd.answers["/r/.well-known/openid-configuration"] = (200, discovery(
        odd, jwks_uri="http://keys.invalid/jwks", introspection_endpoint="http://intro.invalid/i"))
    assert await unavailable(verifier_for(session, issuer=url), fake.token()) == (
        f"the JWKS of issuer {url} is not fetched: 'http://keys.invalid/jwks' must be an https:// URL (http:// only "
        "for loopback addresses or with allow_http)")
    assert await unavailable(verifier_for(session, issuer=url, client_id="c", client_secret="s"), "opaque") == (
        f"the introspection endpoint of issuer {url} is not fetched: 'http://intro.invalid/i' must be an https:// "
        "URL (http:// only for loopback addresses or with allow_http)")
    # allow_http lets them through: then they are asked (and here do not resolve)
    detail = await unavailable(verifier_for(session, issuer=url, allow_http=True), fake.token())
    assert detail.startswith(f"the JWKS of issuer {url} is unreachable: "), detail
    detail = await unavailable(verifier_for(session, issuer=url, client_id="c", client_secret="s", allow_http=True),
                               "opaque")
    assert detail.startswith(f"the introspection endpoint of issuer {url} is unreachable: "), detail


async def test_an_issuer_that_never_answers_is_503_after_timeout_s(aiohttp_server: Server,
                                                                   session: aiohttp.ClientSession) -> None:
    """A test of the timeout itself: the issuer holds every request until the test ends."""
    hold = asyncio.Event()

    async def silent(request: web.Request) -> web.Response:
        await hold.wait()
        return web.Response()

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", silent)
    server = await aiohttp_server(app)
    url = str(server.make_url("/r"))
    fake = FakeIssuer()
    fake.url = url
    try:
        assert await unavailable(verifier_for(session, issuer=url, timeout_s=0.2), fake.token()) == (
            f"the discovery document of issuer {url} is unreachable: TimeoutError")
        assert await unavailable(verifier_for(session, issuer=url, client_id="c", client_secret="s", timeout_s=0.2,
                                              introspection_endpoint=url + "/i"), "opaque") == (
            f"the introspection endpoint of issuer {url} is unreachable: TimeoutError")
    finally:
        hold.set()


async def test_an_inactive_answer_is_not_returned_by_introspect(odd: Odd, session: aiohttp.ClientSession) -> None:
    url = odd.url + "/r"
    issuer = Issuer(IssuerSettings(issuer=url, client_id="c", client_secret="s", introspection_endpoint=url + "/i"),
                    lambda: session)
    for answer in ({"active": False, "sub": "a"}, {"active": "true", "sub": "a"}, {"sub": "a"}):
        odd.answers["/r/i"] = (200, json.dumps(answer).encode())
        with pytest.raises(InvalidToken) as err:
            await issuer.introspect(f"t{len(answer)}{answer.get('active')}")
        assert err.value.detail == "the token is not active (introspection)"


async def test_documents_over_1_mib_are_refused_even_when_valid(odd: Odd, session: aiohttp.ClientSession) -> None:
    fake = FakeIssuer()
    fake.url = odd.url + "/r"
    doc = discovery(odd)
    odd.answers["/r/.well-known/openid-configuration"] = (200, doc + b" " * (1024 * 1024 + 1 - len(doc)))
    assert await unavailable(verifier_for(session, issuer=fake.url), fake.token()) == (
        f"the discovery document of issuer {fake.url}: the answer is not a JSON object")


async def test_discovery_url_keeps_the_issuer_path(odd: Odd, session: aiohttp.ClientSession) -> None:
    fake = FakeIssuer()
    fake.url = odd.url + "/realmX"
    odd.answers["/realmX/.well-known/openid-configuration"] = (200, json.dumps(
        {"issuer": fake.url, "jwks_uri": odd.url + "/k"}).encode())
    odd.answers["/k"] = (200, json.dumps({"keys": [FakeIssuer.public(fake.signing)]}).encode())
    await verifier_for(session, issuer=fake.url).verify(fake.token())
    assert [r[1] for r in odd.requests] == ["/realmX/.well-known/openid-configuration", "/k"]
