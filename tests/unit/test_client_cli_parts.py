"""The client's pieces without a server: -i parsing, --since, the progress line, completion scripts, and the
development issuer's device grants."""

from __future__ import annotations

import base64
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hpgc.auth.device import INTERVAL_S, DeviceGrants, cli_approve, normalize_code
from hpgc.cli import build_parser
from hpgc.client.api import package_request, since_interval
from hpgc.client.completion import script
from hpgc.client.errors import UsageError
from hpgc.client.inputs import parse_inputs
from hpgc.client.progress import ProgressDisplay, bar, line
from hpgc.client.uploads import INLINE_MAX, LocalFile, inline
from hpgc.models.ogc import ProcessDescription, StatusInfo

REPO = Path(__file__).resolve().parents[2]
DESC = ProcessDescription.model_validate({"id": "p", "inputs": {
    "n": {"schema": {"type": "integer"}}, "x": {"schema": {"type": "number"}},
    "flag": {"schema": {"type": "boolean"}}, "s": {"schema": {"type": "string"}},
    "list": {"schema": {"type": "array", "items": {"type": "integer"}}},
    "obj": {"schema": {"type": "object"}},
    "f": {"schema": {"type": "string", "contentEncoding": "binary", "contentMediaType": "image/tiff"}},
    "many": {"schema": {"type": "string"}, "maxOccurs": "unbounded"}}})


def test_inputs_are_typed_by_the_description() -> None:
    got = parse_inputs(["n=3", "x=2.5", "flag=yes", "s=007", "list=1, 2,3", "obj={\"a\": [1]}", "many=a",
                        "many=b", "f=https://example.org/a.tif"], DESC)
    assert got == {"n": 3, "x": 2.5, "flag": True, "s": "007", "list": [1, 2, 3], "obj": {"a": [1]},
                   "many": ["a", "b"], "f": {"href": "https://example.org/a.tif", "type": "image/tiff"}}


@pytest.mark.parametrize(("pair", "message"), [
    ("n=three", "input 'n': 'three' is not an integer"), ("flag=maybe", "is not a boolean"),
    ("obj=[1", "expected a JSON object"),
    ("f=/etc/passwd", r"input 'f' is a file: give an http\(s\), s3:// or file:/// URL"),
    ("noequals", "expected name=value"), ("f=@/no/such/file", "cannot read /no/such/file"),
])
def test_bad_inputs_are_usage_errors(pair: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_inputs([pair], DESC)


def test_a_single_input_given_twice_is_refused() -> None:
    with pytest.raises(UsageError, match="input 'n' takes one value; it was given twice"):
        parse_inputs(["n=1", "n=2"], DESC)


def test_a_local_file_is_uploaded_or_inline_where_the_server_has_no_uploads(tmp_path: Path) -> None:
    small = tmp_path / "a.tif"
    small.write_bytes(b"II*\x00data")
    local = parse_inputs([f"f=@{small}"], DESC)["f"]
    assert local == LocalFile("f", small, "image/tiff")  # uploaded when the request is sent
    assert inline(local, "no uploads") == {"value": base64.b64encode(b"II*\x00data").decode(),
                                           "encoding": "base64", "mediaType": "image/tiff"}
    big = tmp_path / "big.tif"
    with big.open("wb") as f:
        f.truncate(INLINE_MAX + 1)
    with pytest.raises(UsageError, match="MiB and no uploads; local files are sent inline up to 10 MiB"):
        inline(parse_inputs([f"f=@{big}"], DESC)["f"], "no uploads")


def test_at_file_of_a_literal_input_is_its_content(tmp_path: Path) -> None:
    (tmp_path / "n.txt").write_text("42\n")
    assert parse_inputs([f"n=@{tmp_path / 'n.txt'}"], DESC) == {"n": 42}


def test_since_durations_and_dates() -> None:
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    assert since_interval("1d", now) == "2026-03-09T12:00:00Z/.."
    assert since_interval("90m", now) == "2026-03-10T10:30:00Z/.."
    assert since_interval("2026-01-02", now) == "2026-01-02T00:00:00Z/.."
    with pytest.raises(UsageError, match="--since 'yesterday'"):
        since_interval("yesterday", now)


def test_deploy_bodies_pick_their_media_type_and_workflow(tmp_path: Path) -> None:
    body, media, w = package_request(REPO / "appkgs/dnbr/dnbr.cwl", None)
    assert (media, w) == ("application/cwl+yaml", "dnbr") and body == (REPO / "appkgs/dnbr/dnbr.cwl").read_bytes()
    _, media, w = package_request(REPO / "appkgs/BandMath/package.json", None)
    assert (media, w) == ("application/ogcapppkg+json", None)
    (tmp_path / "x.txt").write_text("just text")
    with pytest.raises(UsageError, match="neither a CWL document nor an OGC application package"):
        package_request(tmp_path / "x.txt", None)


def status(**kw) -> StatusInfo:
    base = {"jobID": "j", "status": "running", "created": "2026-03-10T12:00:00Z", "started": "2026-03-10T12:00:00Z"}
    return StatusInfo.model_validate({**base, **kw})


def test_the_progress_line() -> None:
    now = datetime(2026, 3, 10, 12, 1, 5, tzinfo=UTC)
    assert bar(50, 10) == "[#####.....]"
    assert line(status(progress=40, message="slept  2\nof 5"), True, now) == \
        "[##########..............]   40%  running     1:05  slept 2 of 5"
    assert line(status(status="accepted"), False, now) == "   -  accepted    1:05"


class Capture:
    def __init__(self) -> None:
        self.text = ""

    def write(self, s: str) -> None:
        self.text += s

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def test_progress_without_a_tty_prints_one_line_per_change() -> None:
    out = Capture()
    display = ProgressDisplay(out)  # type: ignore[arg-type]
    for p in (10, 10, 20):
        display.update(status(progress=p, finished=None))
    display.close()
    assert [ln.split()[0] for ln in out.text.splitlines()] == ["10%", "20%"]
    assert "\r" not in out.text


def test_completion_scripts_list_every_command_and_bash_accepts_its_own() -> None:
    parser = build_parser()
    text = script(parser, "bash")
    for name in ("serve", "login", "run", "logs", "device-approve", "completion"):
        assert f"{name}) opts=" in text
    check = subprocess.run(["bash", "-c", text + '\nCOMP_WORDS=(hpgc lo); COMP_CWORD=1; _hpgc; echo "${COMPREPLY[@]}"'],
                           capture_output=True, text=True, check=True)
    assert check.stdout.split() == ["login", "logout", "logs"]
    assert "complete -c hpgc -n __fish_use_subcommand -a run" in script(parser, "fish")
    assert script(parser, "zsh").startswith("# hpgc completion for zsh")


def test_device_grants_pending_slow_down_approved_once(tmp_path: Path) -> None:
    grants = DeviceGrants(tmp_path)
    started = grants.start("hpgc:execute", "cli", now=1000.0)
    assert started is not None
    device_code, user_code = started
    assert grants.poll(device_code, now=1001.0) == ("authorization_pending", None)
    assert grants.poll(device_code, now=1001.0 + INTERVAL_S / 4) == ("slow_down", None)
    assert grants.poll(device_code + "x", now=1010.0) == ("invalid_grant", None)
    grants.decide(user_code.lower()[:4] + "-" + user_code[4:], "alice", None, now=1015.0)
    outcome, grant = grants.poll(device_code, now=1020.0)
    assert outcome == "approved" and grant is not None and (grant["user"], grant["scope"]) == ("alice", "hpgc:execute")
    assert grants.poll(device_code, now=1021.0) == ("invalid_grant", None), "a grant is used once"


def test_device_grants_denied_and_expired(tmp_path: Path) -> None:
    grants = DeviceGrants(tmp_path)
    denied, code = grants.start("s", "c") or ("", "")
    grants.decide(code, None)
    assert grants.poll(denied)[0] == "access_denied"
    old, _ = grants.start("s", "c", now=1.0) or ("", "")
    assert grants.poll(old)[0] == "expired_token"


def test_device_approve_command(tmp_path: Path) -> None:
    grants = DeviceGrants(tmp_path)
    _, code = grants.start("hpgc:execute", "hpgc-cli") or ("", "")
    rc, text = cli_approve(tmp_path, None, None, None, False, True)
    assert rc == 0 and text.startswith(f"{code[:4]}-{code[4:]}  hpgc:execute  (client hpgc-cli,")
    assert cli_approve(tmp_path, code, None, None, False, False) == (2, "give --user NAME (the token's subject) or "
                                                                        "--deny")
    assert cli_approve(tmp_path, "BBBB-BBBB", "a", None, False, False)[0] == 2
    assert cli_approve(tmp_path, code, "bob", "hpgc:admin", False, False) == \
        (0, f"approved {code[:4]}-{code[4:]} for bob (hpgc:admin)")
    assert normalize_code("wdjb mjht") == "WDJBMJHT" and normalize_code("AEIO-UAEI") is None
