"""The development issuer's keys: kept in the data dir, private, rotated; its tokens verify."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from hpgc.auth.dev_issuer import DevIssuer, cli_token, dev_issuer_url
from hpgc.auth.issuer import Issuer
from hpgc.auth.principal import InvalidToken
from hpgc.auth.settings import AuthSettings, IssuerSettings
from hpgc.auth.verifier import TokenVerifier, split_jwt
from tests.conftest import REPO

URL = "http://127.0.0.1:8000/auth"


def local_verifier(dev: DevIssuer) -> TokenVerifier:
    settings = IssuerSettings(issuer=URL, algorithms=["ES256", "RS256"], jwks_refresh_min_s=0)

    def no_http() -> None:
        raise AssertionError("the embedded issuer's keys need no HTTP")

    return TokenVerifier(AuthSettings(), [Issuer(settings, no_http, dev.jwks)])  # type: ignore[arg-type]


def test_key_is_created_once_and_private(tmp_path: Path) -> None:
    dev = DevIssuer(tmp_path)
    dev.load()
    mode = stat.S_IMODE(dev.key_file.stat().st_mode)
    assert mode == 0o600, oct(mode)
    assert stat.S_IMODE(dev.key_file.parent.stat().st_mode) == 0o700
    kid = dev.keys()[-1]["kid"]
    again = DevIssuer(tmp_path)
    again.load()
    assert again.keys()[-1]["kid"] == kid, "a restart keeps the key, so tokens survive it"
    public = dev.jwks()["keys"][0]
    assert "d" not in public and public["kid"] == kid and public["alg"] == "ES256"


async def test_minted_token_verifies_and_carries_the_claims(tmp_path: Path) -> None:
    dev = DevIssuer(tmp_path)
    token = dev.mint(URL, "alice", scope="hpgc:execute", ttl=60)
    header, payload = split_jwt(token)  # type: ignore[misc]
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256"
    assert payload["exp"] - payload["iat"] == 60 and payload["preferred_username"] == "alice"
    _, claims = await local_verifier(dev).verify(token)
    assert claims["sub"] == "alice" and claims["aud"] == "hpgc"


async def test_rotation_keeps_old_tokens_valid_for_a_while(tmp_path: Path) -> None:
    dev = DevIssuer(tmp_path)
    verifier = local_verifier(dev)
    first = dev.mint(URL, "alice")
    await verifier.verify(first)
    other = DevIssuer(tmp_path)  # another process (hpgc token) rotates: the server sees it through the file
    other.rotate()
    await verifier.verify(other.mint(URL, "alice"))
    await verifier.verify(first)
    other.rotate()
    other.rotate()
    await verifier.verify(other.mint(URL, "alice"))  # a new kid: the keys are read again
    with pytest.raises(InvalidToken):
        await verifier.verify(first)  # retired past KEEP_OLD_KEYS
    assert len(dev.jwks()["keys"]) == 3


async def test_rsa_algorithm_and_switching_algorithm_rotates(tmp_path: Path) -> None:
    DevIssuer(tmp_path).load()
    dev = DevIssuer(tmp_path, "RS256")
    dev.load()
    assert dev.keys()[-1]["alg"] == "RS256" and dev.keys()[-1]["kty"] == "RSA"
    await local_verifier(dev).verify(dev.mint(URL, "bob"))


def test_another_data_dir_is_another_issuer(tmp_path: Path) -> None:
    a, b = DevIssuer(tmp_path / "a"), DevIssuer(tmp_path / "b")
    assert a.keys()[-1]["kid"] != b.keys()[-1]["kid"]


def test_cli_token_uses_the_recorded_issuer(tmp_path: Path) -> None:
    from hpgc.config import Settings

    settings = Settings(data_dir=tmp_path, appkgs_dir=REPO / "appkgs")
    token, warning = cli_token(settings, "carol", "hpgc:execute", 120, None)
    assert warning is None and split_jwt(token)[1]["iss"] == dev_issuer_url(settings) == URL  # type: ignore[index]
    DevIssuer(tmp_path).record_issuer("http://127.0.0.1:4567/auth")
    token, _ = cli_token(settings, "carol", "hpgc:execute", 120, None)
    assert split_jwt(token)[1]["iss"] == "http://127.0.0.1:4567/auth"  # type: ignore[index]
    configured = Settings(data_dir=tmp_path, auth=AuthSettings(issuers=[IssuerSettings(issuer="https://x.org")]))
    _, warning = cli_token(configured, "carol", "hpgc:execute", 120, None)
    assert warning and "refuse" in warning


def test_issuer_url_follows_base_url_and_host(tmp_path: Path) -> None:
    from hpgc.config import Settings

    assert dev_issuer_url(Settings(base_url="https://hpc.example.org/ogc/")) == "https://hpc.example.org/ogc/auth"
    assert dev_issuer_url(Settings(host="0.0.0.0", port=9000)) == "http://127.0.0.1:9000/auth"
    assert dev_issuer_url(Settings(host="::1", port=9000)) == "http://[::1]:9000/auth"


def test_key_file_is_json_with_private_keys(tmp_path: Path) -> None:
    dev = DevIssuer(tmp_path)
    dev.load()
    assert "d" in json.loads(dev.key_file.read_text())["keys"][0]


def test_dev_issuer_listens_before_it_prints_its_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A client that reads the printed URL may connect at once: the socket must already accept connections
    (it was only bound, and a connection in that moment was refused: the first request of a test failed)."""
    import socket

    from hpgc.auth import dev_issuer as api_auth
    from hpgc.config import Settings

    seen: list[str] = []

    def run_app(app: object, sock: socket.socket, **kwargs: object) -> None:
        seen.append(capsys.readouterr().out)  # the URL is out before the server runs
        with socket.create_connection(sock.getsockname()[:2], timeout=5):
            pass  # refused unless the socket listens
        sock.close()

    monkeypatch.setattr(api_auth.web, "run_app", run_app)
    assert api_auth.run_dev_issuer(Settings(data_dir=tmp_path, appkgs_dir=REPO / "appkgs"), "127.0.0.1", 0) == 0
    assert seen and seen[0].startswith("hpgc development issuer at http://127.0.0.1:")
