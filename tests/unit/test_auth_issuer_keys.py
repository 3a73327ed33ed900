"""hpgc/auth/issuer.py and verifier.py without HTTP: when an issuer's keys are fetched again (max age, unknown kid,
rate limit, back-off after a failure), which JWKs are kept, the introspection cache, and the checks of an
introspection answer. The clock is a fake one (hpgc.auth.verifier's time.monotonic and time.time replaced), and
the JWKS comes from a callable that counts its calls: every expectation is a number of fetches at a given
instant, never a measured duration."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from hpgc.auth import issuer as oidc
from hpgc.auth.issuer import FAILURE_BACKOFF_S, Issuer
from hpgc.auth.jose import JsonWebKey
from hpgc.auth.principal import AuthUnavailable, InvalidToken
from hpgc.auth.settings import AuthSettings, IssuerSettings
from hpgc.auth.verifier import TokenVerifier, check_introspection, split_jwt
from tests.fake_issuer import FakeIssuer, b64json, ec_key, rsa_key

ISS = "https://issuer.example/realms/test"


class Clock:
    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = 1_700_000_000.0

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(oidc.time, "monotonic", lambda: c.mono)
    monkeypatch.setattr(oidc.time, "time", lambda: c.wall)
    return c


class Jwks:
    """The issuer's key set as a callable: counts fetches, can fail."""

    def __init__(self, *keys: Any) -> None:
        self.keys: list[dict[str, Any]] = [FakeIssuer.public(k) for k in keys]
        self.fetches = 0
        self.down = False

    def __call__(self) -> dict[str, Any]:
        self.fetches += 1
        if self.down:
            raise AuthUnavailable("the JWKS of issuer X is unreachable: test")
        return {"keys": self.keys}


def issuer(jwks: Callable[[], dict[str, Any]], **settings: Any) -> Issuer:
    return Issuer(IssuerSettings(issuer=ISS, **settings), session=lambda: None, local_jwks=jwks)  # type: ignore


# keys: when they are fetched ----------------------------------------------------------------------------
async def test_keys_are_fetched_once_then_again_only_after_max_age(clock: Clock) -> None:
    key = ec_key()
    jwks = Jwks(key)
    iss = issuer(jwks, jwks_max_age_s=100)
    assert (await iss.key(key.kid)).kid == key.kid
    assert jwks.fetches == 1
    clock.advance(100)  # exactly the max age: still fresh
    await iss.key(key.kid)
    assert jwks.fetches == 1
    clock.advance(0.5)
    await iss.key(key.kid)
    assert jwks.fetches == 2


async def test_an_unknown_kid_refetches_at_most_every_refresh_min(clock: Clock) -> None:
    key = ec_key()
    jwks = Jwks(key)
    iss = issuer(jwks, jwks_refresh_min_s=60)
    await iss.key(key.kid)
    for _ in range(5):
        with pytest.raises(InvalidToken, match=r"kid 'nope'\) is not one of issuer https://issuer.example/realms/"
                                               r"test's keys"):
            await iss.key("nope")
    assert jwks.fetches == 1, "within refresh_min an unknown kid fetches nothing"
    clock.advance(59.9)
    with pytest.raises(InvalidToken):
        await iss.key("nope")
    assert jwks.fetches == 1
    clock.advance(0.1)  # exactly refresh_min after the fetch: one more fetch
    rotated = rsa_key()
    jwks.keys.append(FakeIssuer.public(rotated))
    assert (await iss.key(rotated.kid)).kid == rotated.kid
    assert jwks.fetches == 2


async def test_a_token_without_kid_uses_the_only_key_and_never_one_of_several(clock: Clock) -> None:
    one, two = ec_key(), ec_key()
    jwks = Jwks(one)
    iss = issuer(jwks, jwks_max_age_s=100, jwks_refresh_min_s=3600)
    assert (await iss.key(None)).kid == one.kid
    jwks.keys.append(FakeIssuer.public(two))
    clock.advance(101)
    with pytest.raises(InvalidToken, match="kid None"):
        await iss.key(None)  # refetched (two keys now): which one is meant cannot be told
    assert jwks.fetches == 2


async def test_a_failed_fetch_without_keys_is_503_and_backs_off(clock: Clock) -> None:
    key = ec_key()
    jwks = Jwks(key)
    jwks.down = True
    iss = issuer(jwks, jwks_refresh_min_s=0)
    with pytest.raises(AuthUnavailable, match="unreachable"):
        await iss.key(key.kid)
    assert jwks.fetches == 1
    clock.advance(FAILURE_BACKOFF_S - 0.1)
    with pytest.raises(AuthUnavailable, match="unreachable"):
        await iss.key(key.kid)
    assert jwks.fetches == 1, "a failure moments ago answers at once: no fetch queued per request"
    clock.advance(0.1)  # the back-off is over: the next request tries again
    jwks.down = False
    assert (await iss.key(key.kid)).kid == key.kid
    assert jwks.fetches == 2
    # and a success forgets the failure: a later failure is retried at once, not answered from the old one
    jwks.down = True
    iss2 = issuer(jwks)
    with pytest.raises(AuthUnavailable):
        await iss2.key(key.kid)
    clock.advance(FAILURE_BACKOFF_S)
    jwks.down = False
    await iss2.key(key.kid)
    assert iss2._failure is None


async def test_a_failed_refresh_keeps_the_keys_it_had(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    key = ec_key()
    jwks = Jwks(key)
    iss = issuer(jwks, jwks_max_age_s=100, jwks_refresh_min_s=0)
    await iss.key(key.kid)
    jwks.down = True
    clock.advance(101)
    with caplog.at_level(logging.WARNING, logger="hpgc.auth"):
        assert (await iss.key(key.kid)).kid == key.kid, "the issuer is down: the keys fetched before still serve"
    assert jwks.fetches == 2
    assert "unreachable: test; keeping the keys fetched before" in caplog.text
    # the failed attempt counts as a fetch: the next requests do not each try again
    await iss.key(key.kid)
    assert jwks.fetches == 2
    clock.advance(100)
    await iss.key(key.kid)
    assert jwks.fetches == 2, "max age counts from the failed attempt"


async def test_warm_up_fetches_keys_and_survives_an_issuer_that_is_down(clock: Clock,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    up, down = Jwks(ec_key()), Jwks(ec_key())
    down.down = True
    a = issuer(up)
    b = Issuer(IssuerSettings(issuer="https://other.example", subject_prefix="o:"), session=lambda: None,  # type: ignore
               local_jwks=down)
    verifier = TokenVerifier(AuthSettings(issuers=[a.settings, b.settings]), [a, b])
    with caplog.at_level(logging.WARNING, logger="hpgc.auth"):
        await verifier.warm_up()
    assert (up.fetches, down.fetches) == (1, 1)
    assert "the JWKS of issuer X is unreachable: test (retried on the first request that needs it)" in caplog.text
    assert list(a._keys) == [up.keys[0]["kid"]]


# keys: which are kept ----------------------------------------------------------------------------------
async def test_only_usable_signing_keys_are_kept(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    good_ec, good_rsa = ec_key(), rsa_key()
    good_okp = JsonWebKey.generate_key("OKP", "Ed25519", options={"kid": "ed"}, is_private=True)
    small = JsonWebKey.generate_key("RSA", 1024, options={"kid": "small"}, is_private=True)
    jwks = Jwks(good_ec, good_rsa, good_okp)
    enc = {**FakeIssuer.public(ec_key()), "use": "enc", "kid": "enc"}
    no_use = {k: v for k, v in FakeIssuer.public(ec_key()).items() if k != "use"} | {"kid": "no-use"}
    no_kid = {k: v for k, v in FakeIssuer.public(ec_key()).items() if k != "kid"}
    jwks.keys += [
        enc,                                               # an encryption key
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},    # a symmetric key: never
        {"kty": "RSA", "kid": "broken", "n": "AA"},        # does not import (no exponent)
        {**FakeIssuer.public(small), "kid": "small"},      # RSA under 2048 bits
        "not a key", no_use, no_kid,
    ]
    iss = issuer(jwks)
    with caplog.at_level(logging.WARNING, logger="hpgc.auth"):
        await iss.refresh_keys(stale_ok=False)
    assert sorted(iss._keys) == sorted(["", good_ec.kid, good_rsa.kid, "ed", "no-use"])
    assert f"issuer {ISS}: ignoring key broken: " in caplog.text
    assert f"issuer {ISS}: ignoring key small: RSA keys under 2048 bits" in caplog.text


async def test_a_jwks_without_keys_gives_no_key(clock: Clock) -> None:
    iss = issuer(lambda: {"keys": None})
    with pytest.raises(InvalidToken, match="is not one of issuer"):
        await iss.key("k")
    iss = issuer(lambda: {})
    with pytest.raises(InvalidToken, match="is not one of issuer"):
        await iss.key(None)


# introspection cache -----------------------------------------------------------------------------------
def introspecting(**settings: Any) -> Issuer:
    return Issuer(IssuerSettings(issuer=ISS, client_id="c", client_secret="s", **settings), session=lambda: None)  # type: ignore


def counting_answers(iss: Issuer, answers: dict[str, dict[str, Any] | None]) -> list[str]:
    asked: list[str] = []

    async def ask(token: str) -> dict[str, Any] | None:
        asked.append(token)
        return answers.get(token)

    iss._ask = ask  # type: ignore[method-assign]
    return asked


async def test_introspection_answers_are_cached_for_cache_s(clock: Clock) -> None:
    iss = introspecting(introspection_cache_s=60)
    asked = counting_answers(iss, {"good": {"active": True, "sub": "a"}})
    assert await iss.introspect("good") == {"active": True, "sub": "a"}
    with pytest.raises(InvalidToken, match="not active"):
        await iss.introspect("bad")
    clock.advance(59.9)
    await iss.introspect("good")
    with pytest.raises(InvalidToken):
        await iss.introspect("bad")
    assert asked == ["good", "bad"]
    clock.advance(0.1)  # the entry ends at exactly cache_s
    await iss.introspect("good")
    assert asked == ["good", "bad", "good"]
    assert "good" not in str(iss._introspected), "the cache holds digests, never tokens"


async def test_introspection_cache_never_outlives_the_token(clock: Clock) -> None:
    iss = introspecting(introspection_cache_s=60)
    asked = counting_answers(iss, {"t": {"active": True, "exp": clock.wall + 10}, "old": {"active": True,
                                                                                           "exp": clock.wall}})
    await iss.introspect("t")
    clock.advance(9.9)
    await iss.introspect("t")
    assert asked == ["t"]
    clock.advance(0.1)
    await iss.introspect("t")
    assert asked == ["t", "t"]
    await iss.introspect("old")  # expires now: not cached at all
    await iss.introspect("old")
    assert asked == ["t", "t", "old", "old"]
    answers_soon = {"soon": {"active": True, "exp": clock.wall + 0.5}}
    asked = counting_answers(iss, answers_soon)
    await iss.introspect("soon")  # half a second left: cached for that half second
    await iss.introspect("soon")
    assert asked == ["soon"]


async def test_introspection_cache_zero_caches_nothing(clock: Clock) -> None:
    iss = introspecting(introspection_cache_s=0)
    asked = counting_answers(iss, {"t": {"active": True}})
    await iss.introspect("t")
    await iss.introspect("t")
    assert asked == ["t", "t"] and iss._introspected == {}


def test_introspection_cache_is_bounded_dropping_expired_then_oldest(clock: Clock) -> None:
    iss = introspecting(introspection_cache_s=60)
    now = clock.mono
    for i in range(9999):
        iss._remember(f"live{i}", None, now)
    iss._remember("expired", None, now - 60)  # put in cache_s ago: it expires exactly now
    assert len(iss._introspected) == 10000
    iss._remember("new", None, now)
    assert len(iss._introspected) == 10000 and "expired" not in iss._introspected
    assert "live0" in iss._introspected and iss._introspected["new"] == (now + 60, None)
    iss._remember("newer", None, now)  # nothing expired: the oldest entry goes
    assert len(iss._introspected) == 10000 and "live0" not in iss._introspected and "live1" in iss._introspected
    assert iss._introspected["newer"] == (now + 60, None)


# an introspection answer -------------------------------------------------------------------------------
NOW = 1_700_000_000.0


def answer(**changes: Any) -> dict[str, Any]:
    base = {"active": True, "sub": "a", "iss": ISS, "aud": "hpgc", "exp": NOW + 300}
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


@pytest.mark.parametrize("changes", [
    {}, {"exp": NOW - 30}, {"exp": int(NOW)}, {"nbf": NOW + 30}, {"nbf": "later"}, {"nbf": True},
    {"aud": ["x", "hpgc"]}, {"aud": [7, "hpgc"]}, {"exp": NOW - 29.5},
])
def test_introspection_answers_accepted(clock: Clock, changes: dict[str, Any]) -> None:
    check_introspection(answer(**changes), IssuerSettings(issuer=ISS), leeway_s=30)


@pytest.mark.parametrize("changes, message", [
    ({"active": False}, "the token is not active (introspection)"),
    ({"active": 1}, "the token is not active (introspection)"),
    ({"exp": None}, "the introspection answer gives the token no expiry (exp)"),
    ({"exp": True}, "the introspection answer gives the token no expiry (exp)"),
    ({"exp": "1800000000"}, "the introspection answer gives the token no expiry (exp)"),
    ({"exp": NOW - 30.5}, "the token has expired"),
    ({"exp": NOW - 31}, "the token has expired"),
    ({"nbf": NOW + 31}, "the token is not valid yet"),
    ({"nbf": NOW + 30.5}, "the token is not valid yet"),
    ({"iss": None}, "the introspection answer does not name this issuer (iss)"),
    ({"iss": ISS + "/"}, "the introspected token is from another issuer"),
    ({"aud": None}, "the introspection answer names no audience (aud), and this server needs one of: hpgc, acct"),
    ({"aud": [7]}, "the introspection answer names no audience (aud), and this server needs one of: hpgc, acct"),
    ({"aud": {"hpgc": 1}}, "the introspection answer names no audience (aud), and this server needs one of: hpgc, "
                           "acct"),
    ({"aud": "other"}, "the token's 'aud' claim is not acceptable here"),
    ({"aud": ["other", 7]}, "the token's 'aud' claim is not acceptable here"),
])
def test_introspection_answers_refused(clock: Clock, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidToken) as err:
        check_introspection(answer(**changes), IssuerSettings(issuer=ISS, audience=["hpgc", "acct"]), leeway_s=30)
    assert err.value.detail == message


def test_introspection_without_configured_audience_ignores_aud(clock: Clock) -> None:
    check_introspection(answer(aud=None), IssuerSettings(issuer=ISS, audience=[]), leeway_s=0)
    check_introspection(answer(aud="other"), IssuerSettings(issuer=ISS, audience=[]), leeway_s=0)


# token shapes ------------------------------------------------------------------------------------------
def test_split_jwt_tells_jws_from_opaque() -> None:
    head, body = b64json({"alg": "ES256", "kid": "k"}), b64json({"sub": "a"})
    assert split_jwt(f"{head}.{body}.sig") == ({"alg": "ES256", "kid": "k"}, {"sub": "a"})
    assert split_jwt(f"{head}.{body}") is None
    assert split_jwt(f"{head}.{body}.sig.x") is None
    assert split_jwt(f"{b64json({'kid': 'k'})}.{body}.sig") is None, "a header without alg: an opaque token"
    assert split_jwt(f"{b64json(['alg'])}.{body}.sig") is None
    assert split_jwt(f"not base64!.{body}.sig") is None
    with pytest.raises(InvalidToken) as err:
        split_jwt(f"{head}.{b64json([1])}.sig")
    assert err.value.detail == "the token's payload is not a JSON object"
    with pytest.raises(InvalidToken, match="the token's payload is not a JSON object"):
        split_jwt(f"{head}.%%%.sig")


async def test_token_length_limit_is_16_kib(clock: Clock) -> None:
    verifier = TokenVerifier(AuthSettings(issuers=[]), [])
    with pytest.raises(InvalidToken) as err:
        await verifier.verify("x" * (16 * 1024 + 1))
    assert err.value.detail == "the token is too long"
    with pytest.raises(InvalidToken) as err:
        await verifier.verify("x" * (16 * 1024))
    assert err.value.detail == "the token is not a JWT, and no issuer here introspects opaque tokens"


async def test_an_opaque_token_goes_to_the_one_issuer_that_introspects() -> None:
    plain = Issuer(IssuerSettings(issuer="https://a.example", subject_prefix="a:"), session=lambda: None)  # type: ignore
    intro = introspecting(introspection_cache_s=0)
    asked = counting_answers(intro, {"tok": answer(exp=2**40)})
    verifier = TokenVerifier(AuthSettings(issuers=[plain.settings, intro.settings]), [plain, intro])
    issuer_, claims = await verifier.verify("tok")
    assert issuer_ is intro and claims["sub"] == "a" and asked == ["tok"]


class Stream:
    """A response body arriving in chunks: read(n) gives at most n bytes of the chunk at hand, as aiohttp's does."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)

    async def read(self, n: int = -1) -> bytes:
        if not self.chunks:
            return b""
        head = self.chunks[0][:n] if n >= 0 else self.chunks[0]
        rest = self.chunks[0][len(head):]
        self.chunks = ([rest] if rest else []) + self.chunks[1:]
        return head


@pytest.mark.parametrize("chunks, limit, expected", [
    ([b"abc", b"def", b"g"], 100, b"abcdefg"),       # every chunk, not only the first
    ([b"abcdef", b"ghijkl"], 10, b"abcdefghij"),     # at most the limit, however the chunks fall
    ([b"abcdef", b"ghijkl", b"mnopqr"], 10, b"abcdefghij"),
    ([b"abcdefghij", b"k"], 10, b"abcdefghij"),
    ([b"a"] * 12, 10, b"a" * 10),
    ([], 10, b""),
])
async def test_read_capped(chunks: list[bytes], limit: int, expected: bytes) -> None:
    from hpgc.auth.issuer import _read_capped

    assert await _read_capped(Stream(*chunks), limit) == expected  # type: ignore[arg-type]


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("hpgc.auth.")]


async def test_fetched_keys_are_logged(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    one, two = ec_key(), ec_key()
    with caplog.at_level(logging.INFO, logger="hpgc.auth"):
        await issuer(Jwks(one, two)).refresh_keys(stale_ok=False)
        await issuer(Jwks()).refresh_keys(stale_ok=False)
    assert messages(caplog) == [f"issuer {ISS}: 2 signing key(s): {one.kid}, {two.kid}",
                                f"issuer {ISS}: 0 signing key(s): -"]


async def test_an_unknown_kid_while_the_issuer_is_down_is_401_with_the_old_keys(
        clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    key = ec_key()
    jwks = Jwks(key)
    iss = issuer(jwks, jwks_refresh_min_s=10)
    await iss.key(key.kid)
    jwks.down = True
    clock.advance(10)
    with caplog.at_level(logging.WARNING, logger="hpgc.auth"), pytest.raises(InvalidToken):
        await iss.key("rotated?")  # the refetch fails: the token is judged on the keys at hand
    assert messages(caplog) == ["the JWKS of issuer X is unreachable: test; keeping the keys fetched before"]
    assert (await iss.key(key.kid)).kid == key.kid and jwks.fetches == 2


async def test_log_lines_name_the_issuer_and_key(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    small = JsonWebKey.generate_key("RSA", 1024, options={"kid": "small"}, is_private=True)
    jwks = Jwks()
    jwks.keys = [{"kty": "RSA", "kid": "broken", "n": "AA"}, {**FakeIssuer.public(small), "kid": "small"}]
    down = Jwks()
    down.down = True
    a = issuer(jwks)
    b = Issuer(IssuerSettings(issuer="https://other.example", subject_prefix="o:"), session=lambda: None,  # type: ignore
               local_jwks=down)
    with caplog.at_level(logging.WARNING, logger="hpgc.auth"):
        await a.refresh_keys(stale_ok=False)
        await TokenVerifier(AuthSettings(issuers=[a.settings, b.settings]), [b]).warm_up()
    got = messages(caplog)
    assert got == [f'issuer {ISS}: ignoring key broken: Missing required field: "e"',
                   f"issuer {ISS}: ignoring key small: RSA keys under 2048 bits",
                   "the JWKS of issuer X is unreachable: test (retried on the first request that needs it)"]
