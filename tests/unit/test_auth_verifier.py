"""Token verification against a real HTTP issuer on 127.0.0.1: the attacks of issue 4, key rotation,
rate-limited refetches, introspection, several issuers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from hpgc.auth.issuer import Issuer
from hpgc.auth.principal import AuthUnavailable, InvalidToken
from hpgc.auth.settings import AuthSettings, IssuerSettings
from hpgc.auth.verifier import TokenVerifier
from tests.fake_issuer import CLIENT, FakeIssuer, b64json, ec_key, forge, hs256_with_public_key, rs256_raw

Make = Callable[..., TokenVerifier]


@pytest.fixture
async def make() -> AsyncIterator[Make]:
    session = aiohttp.ClientSession()

    def build(*issuers: IssuerSettings, **auth: Any) -> TokenVerifier:
        settings = AuthSettings(issuers=list(issuers), **auth)
        return TokenVerifier(settings, [Issuer(i, lambda: session) for i in settings.issuers])

    yield build
    await session.close()


@pytest.fixture
def verifier(fake: FakeIssuer, make: Make) -> TokenVerifier:
    return make(IssuerSettings(issuer=fake.url, jwks_refresh_min_s=0))


async def rejected(verifier: TokenVerifier, token: str, reason: str) -> None:
    with pytest.raises(InvalidToken) as err:
        await verifier.verify(token)
    assert reason in err.value.detail, err.value.detail


async def test_valid_token_is_accepted_through_discovery_and_jwks(fake: FakeIssuer, verifier: TokenVerifier) -> None:
    issuer, claims = await verifier.verify(fake.token())
    assert issuer.id == fake.url and claims["sub"] == "alice-sub"
    assert fake.jwks_hits == 1
    await verifier.verify(fake.token(sub="bob"))
    assert fake.jwks_hits == 1, "keys are cached"


async def test_ec_keys_and_audience_lists(fake: FakeIssuer, verifier: TokenVerifier) -> None:
    fake.keys.append(key := ec_key())
    _, claims = await verifier.verify(fake.token(key=key, aud=["account", "hpgc"]))
    assert claims["aud"] == ["account", "hpgc"]


async def test_alg_none_is_rejected(fake: FakeIssuer, verifier: TokenVerifier) -> None:
    for alg in ("none", "None", "NONE"):
        await rejected(verifier, forge({"alg": alg, "typ": "JWT"}, fake.claims()), "algorithm")
        await rejected(verifier, forge({"alg": alg, "kid": fake.signing.kid}, fake.claims(), b"x"), "algorithm")


async def test_hs256_signed_with_the_public_key_is_rejected(fake: FakeIssuer, make: Make) -> None:
    token = hs256_with_public_key(fake)
    await rejected(make(IssuerSettings(issuer=fake.url)), token, "algorithm 'HS256' is not accepted")
    # even where a configuration would list it, HS* cannot be configured at all
    with pytest.raises(ValueError, match="HS256"):
        IssuerSettings(issuer=fake.url, algorithms=["RS256", "HS256"])


async def test_expired_token_is_rejected_but_leeway_is_small_and_honoured(fake: FakeIssuer,
                                                                          verifier: TokenVerifier) -> None:
    now = int(time.time())
    await rejected(verifier, fake.token(exp=now - 3600, iat=now - 7200, nbf=now - 7200), "expired")
    await rejected(verifier, fake.token(exp=now - 60), "expired")  # leeway is 30 s
    await verifier.verify(fake.token(exp=now - 5))  # within leeway: clocks differ a little
    await rejected(verifier, fake.token(exp=None), "exp")


async def test_nbf_and_iat_in_the_future_are_rejected(fake: FakeIssuer, verifier: TokenVerifier) -> None:
    now = int(time.time())
    await rejected(verifier, fake.token(nbf=now + 3600, exp=now + 7200), "not valid yet")
    await rejected(verifier, fake.token(iat=now + 3600, exp=now + 7200), "not valid yet")


async def test_wrong_issuer_is_rejected(fake: FakeIssuer, verifier: TokenVerifier) -> None:
    await rejected(verifier, fake.token(iss="https://evil.example/realms/test"), "is not trusted here")
    await rejected(verifier, fake.token(iss=fake.url + "/"), "is not trusted here")
    await rejected(verifier, fake.token(iss=None), "is not trusted here")


async def test_wrong_or_missing_audience_is_rejected(fake: FakeIssuer, verifier: TokenVerifier) -> None:
    await rejected(verifier, fake.token(aud="account"), "'aud'")
    await rejected(verifier, fake.token(aud=["account", "other"]), "'aud'")
    await rejected(verifier, fake.token(aud=None), "aud")


async def test_tampered_payload_is_rejected(fake: FakeIssuer, verifier: TokenVerifier) -> None:
    head, _, sig = fake.token().split(".")
    forged = fake.claims(sub="root", scope="hpgc:admin hpgc:execute")
    await rejected(verifier, f"{head}.{b64json(forged)}.{sig}", "signature does not verify")
    # a valid signature on another token's payload does not carry over
    head2, body2, _ = fake.token(sub="bob").split(".")
    await rejected(verifier, f"{head2}.{body2}.{sig}", "signature does not verify")


async def test_unknown_kid_stays_unknown_after_one_refetch(fake: FakeIssuer, verifier: TokenVerifier) -> None:
    await verifier.verify(fake.token())
    stranger = FakeIssuer(keys=[ec_key()])
    stranger.url = fake.url
    hits = fake.jwks_hits
    await rejected(verifier, stranger.token(), "is not one of issuer")
    assert fake.jwks_hits == hits + 1, "an unknown kid triggers exactly one refetch"


async def test_unknown_kid_refetches_are_rate_limited(fake: FakeIssuer, make: Make) -> None:
    verifier = make(IssuerSettings(issuer=fake.url, jwks_refresh_min_s=3600))
    await verifier.verify(fake.token())
    stranger = FakeIssuer(keys=[ec_key()])
    stranger.url = fake.url
    for _ in range(20):
        await rejected(verifier, stranger.token(), "is not one of issuer")
    assert fake.jwks_hits == 1, "forged kids must not turn into requests to the issuer"


async def test_key_rotation_is_picked_up_without_restart(fake: FakeIssuer, verifier: TokenVerifier) -> None:
    old = fake.token()
    await verifier.verify(old)
    fake.rotate()
    await verifier.verify(fake.token())  # new kid → one refetch → accepted
    await verifier.verify(old)  # the old key is still published: its tokens still verify
    fake.rotate(drop_old=True)
    await verifier.verify(fake.token())
    await rejected(verifier, old, "is not one of issuer")  # retired key: its tokens no longer pass


async def test_concurrent_unknown_kids_share_one_fetch(fake: FakeIssuer, verifier: TokenVerifier) -> None:
    await verifier.verify(fake.token())
    fake.rotate()
    hits = fake.jwks_hits
    tokens = [fake.token(sub=f"u{i}") for i in range(10)]
    await asyncio.gather(*(verifier.verify(t) for t in tokens))
    assert fake.jwks_hits == hits + 1


@pytest.mark.parametrize("token", [
    "", "abc", "a.b", "a.b.c", "....", "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln", "x" * 20000,
    forge({"alg": "RS256"}, {"iss": "x"}).replace(".", "..", 1),
])
async def test_malformed_tokens_are_rejected(verifier: TokenVerifier, token: str) -> None:
    with pytest.raises(InvalidToken):
        await verifier.verify(token)


async def test_header_tricks_are_rejected(fake: FakeIssuer, verifier: TokenVerifier) -> None:
    # a key offered by the token itself (jwk / jku) is never used
    attacker = ec_key()
    await rejected(verifier, fake.token(key=attacker, header={"jwk": FakeIssuer.public(attacker)}),
                   "is not one of issuer")
    await rejected(verifier, fake.token(key=attacker, header={"jku": "http://127.0.0.1:9/jwks"}),
                   "is not one of issuer")
    # a real kid with an algorithm of another key type
    fake.keys.append(ec := ec_key())
    token = rs256_raw({"alg": "RS256", "kid": ec.kid}, fake.claims(), fake.keys[0])
    await rejected(verifier, token, "is not for algorithm")
    # the same forgery with the right kid passes: so the refusal above is the key-type check
    await verifier.verify(rs256_raw({"alg": "RS256", "kid": fake.keys[0].kid}, fake.claims(), fake.keys[0]))
    await rejected(verifier, fake.token(header={"typ": "logout+jwt"}), "not an access token")
    rsa = fake.keys[0]
    await rejected(verifier, rs256_raw({"alg": "RS256", "kid": 7}, fake.claims(), rsa), "kid")
    await rejected(verifier, rs256_raw({"alg": "RS256", "kid": rsa.kid, "crit": ["exp"], "exp": 1}, fake.claims(),
                                       rsa), "critical")


async def test_algorithm_not_configured_for_the_issuer_is_rejected(fake: FakeIssuer, make: Make) -> None:
    fake.keys.append(ec := ec_key())
    verifier = make(IssuerSettings(issuer=fake.url, algorithms=["RS256"]))
    await rejected(verifier, fake.token(key=ec), "algorithm 'ES256' is not accepted")


async def test_discovery_for_another_issuer_is_refused(fake: FakeIssuer, verifier: TokenVerifier) -> None:
    fake.metadata_issuer = "https://evil.example"
    with pytest.raises(AuthUnavailable, match="discovery document"):
        await verifier.verify(fake.token())


class CountingSession:
    """An aiohttp session that counts the requests made through it."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session, self.gets = session, 0

    def request(self, *args: Any, **kwargs: Any) -> Any:
        self.gets += 1
        return self.session.request(*args, **kwargs)


async def test_issuer_down_is_503_not_401() -> None:
    url = "http://127.0.0.1:9/realms/x"  # nothing listens on port 9 (discard)
    fake = FakeIssuer()
    fake.url = url
    async with aiohttp.ClientSession() as session:
        counting = CountingSession(session)
        settings = AuthSettings(issuers=[IssuerSettings(issuer=url, timeout_s=2)])
        verifier = TokenVerifier(settings, [Issuer(settings.issuers[0], lambda: counting)])  # type: ignore
        with pytest.raises(AuthUnavailable, match="unreachable"):
            await verifier.verify(fake.token())
        assert counting.gets == 1
        with pytest.raises(AuthUnavailable, match="unreachable"):
            await verifier.verify(fake.token())
        assert counting.gets == 1, "a recent failure answers at once instead of queueing a fetch"


async def test_several_issuers_each_with_its_own_keys(
    fake: FakeIssuer, make: Make, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    other = FakeIssuer(path="/other")
    server = await aiohttp_server(other.app())
    other.serve_at(str(server.make_url("")))
    verifier = make(IssuerSettings(issuer=fake.url), IssuerSettings(issuer=other.url, subject_prefix="other:"))
    assert (await verifier.verify(fake.token()))[0].id == fake.url
    issuer, _ = await verifier.verify(other.token())
    assert issuer.id == other.url and issuer.settings.subject_prefix == "other:"
    # one issuer's key cannot sign for another
    await rejected(verifier, fake.token(iss=other.url), "is not one of issuer")


# opaque tokens ------------------------------------------------------------------------------------------
def introspecting(fake: FakeIssuer, **kw: Any) -> IssuerSettings:
    return IssuerSettings(issuer=fake.url, client_id=CLIENT[0], client_secret=CLIENT[1], **kw)


async def test_introspection_active_false_is_rejected(fake: FakeIssuer, make: Make) -> None:
    verifier = make(introspecting(fake))
    await rejected(verifier, "opaque-unknown-token", "not active")
    fake.active_tokens["revoked"] = {"active": False, "sub": "alice"}
    await rejected(verifier, "revoked", "not active")


async def test_introspection_active_token_and_cache(fake: FakeIssuer, make: Make) -> None:
    verifier = make(introspecting(fake, introspection_cache_s=60))
    fake.active_tokens["good"] = {"active": True, "sub": "alice-sub", "scope": "hpgc:execute",
                                  "iss": fake.url, "aud": "hpgc", "exp": int(time.time()) + 300}
    issuer, claims = await verifier.verify("good")
    assert claims["sub"] == "alice-sub" and issuer.id == fake.url
    await verifier.verify("good")
    await rejected(verifier, "bad", "not active")
    await rejected(verifier, "bad", "not active")
    assert fake.introspection_hits == 2, "answers, active or not, are cached for a short while"


async def test_introspected_claims_are_still_checked(fake: FakeIssuer, make: Make) -> None:
    verifier = make(introspecting(fake, introspection_cache_s=0))
    now = int(time.time())
    good = {"active": True, "sub": "a", "iss": fake.url, "aud": "hpgc", "exp": now + 300}
    fake.active_tokens["t"] = {**good, "exp": now - 3600}
    await rejected(verifier, "t", "expired")
    fake.active_tokens["t"] = {**good, "aud": "other"}
    await rejected(verifier, "t", "'aud'")
    fake.active_tokens["t"] = {**good, "iss": "https://evil.example"}
    await rejected(verifier, "t", "another issuer")


@pytest.mark.parametrize("change, reason", [
    ({"exp": None}, "no expiry (exp)"),               # RFC 7662 makes exp optional: here it is required
    ({"exp": "2999999999"}, "no expiry (exp)"),       # a string is no NumericDate
    ({"exp": True}, "no expiry (exp)"),
    ({"iss": None}, "does not name this issuer (iss)"),
    ({"iss": "https://evil.example"}, "another issuer"),
    ({"aud": None}, "names no audience (aud)"),       # the issuer configures audience ["hpgc"] (the default)
    ({"aud": []}, "names no audience (aud)"),
    ({"aud": 7}, "names no audience (aud)"),
    ({"aud": ["other", "account"]}, "'aud'"),
    ({"active": "true"}, "not active"),               # only the JSON true counts
    ({"active": None}, "not active"),
])
async def test_introspection_answers_need_active_exp_iss_and_aud(
    fake: FakeIssuer, make: Make, change: dict[str, Any], reason: str
) -> None:
    verifier = make(introspecting(fake, introspection_cache_s=0))
    answer = {"active": True, "sub": "a", "scope": "hpgc:execute", "iss": fake.url, "aud": ["x", "hpgc"],
              "exp": int(time.time()) + 300}
    fake.active_tokens["t"] = answer
    assert (await verifier.verify("t"))[1]["sub"] == "a"
    fake.active_tokens["t"] = {k: v for k, v in {**answer, **change}.items() if v is not None}
    await rejected(verifier, "t", reason)


async def test_introspection_without_a_configured_audience_does_not_need_aud(fake: FakeIssuer, make: Make) -> None:
    verifier = make(introspecting(fake, audience=[], introspection_cache_s=0))
    fake.active_tokens["t"] = {"active": True, "sub": "a", "iss": fake.url, "exp": int(time.time()) + 300}
    assert (await verifier.verify("t"))[1]["sub"] == "a"


async def test_introspection_with_wrong_client_secret_is_503(fake: FakeIssuer, make: Make) -> None:
    verifier = make(IssuerSettings(issuer=fake.url, client_id=CLIENT[0], client_secret="wrong"))
    with pytest.raises(AuthUnavailable, match="401"):
        await verifier.verify("opaque")


async def test_opaque_token_without_introspection_is_rejected(verifier: TokenVerifier) -> None:
    await rejected(verifier, "opaque-token", "not a JWT")
