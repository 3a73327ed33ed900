"""The SSH pool against asyncssh's server side on 127.0.0.1: host keys, reconnect, channel limit, timeouts."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest

from hpgc.backends.slurm.check import check_cluster
from hpgc.backends.slurm.config import ClusterSettings
from hpgc.backends.slurm.ssh import HostKeyError, SSHClient, SSHError, SSHPool, for_any_login_shell
from tests.unit.slurm_fake import FakeSSHServer, install_fake_slurm


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[FakeSSHServer]:
    bin_dir, state = install_fake_slurm(tmp_path / "slurm")
    s = FakeSSHServer(tmp_path, {"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKESLURM_STATE": str(state)})
    await s.start()
    yield s
    s.hang = False
    await s.stop()


def _settings(s: FakeSSHServer, **kw: object) -> ClusterSettings:
    base: dict[str, object] = {"host": "127.0.0.1", "port": s.port, "known_hosts": s.known_hosts,
                               "user": "alice", "key_file": s.client_key_file,
                               "work_root": str(s.root / "work"), "connect_timeout_s": 3}
    return ClusterSettings(**{**base, **kw})


def _client(s: FakeSSHServer, **kw: object) -> SSHClient:
    settings = _settings(s, **kw)
    return SSHClient("fake", settings, "alice", settings.key_file)


async def test_run_and_one_connection_for_many_commands(server: FakeSSHServer) -> None:
    c = _client(server)
    results = await asyncio.gather(*(c.run(f"echo {i}; echo err{i} >&2; exit {i % 3}") for i in range(20)))
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(20)]
    assert [r.exit_status for r in results] == [i % 3 for i in range(20)]
    assert results[4].stderr == "err4\n"
    assert c.connects == 1
    r = await c.run("cat", input=b"x" * 300000)
    assert len(r.stdout) == 300000
    await c.close()


async def test_channel_limit_keeps_one_channel_for_sftp(server: FakeSSHServer) -> None:
    c = _client(server, max_channels=4)
    await c.connect()
    server.hang = True  # commands arrive and stay open
    runs = asyncio.gather(*(c.run(f"echo {i}") for i in range(12)))
    await server.wait_sessions(3)
    # every run reached the channel limit in the loop's first turn, long before three sessions opened: the
    # other nine wait for a channel, none is on its way to the server
    assert c.round_trips == 3 and server.sessions == 3
    server.hang = False
    assert [r.stdout for r in await runs] == [f"{i}\n" for i in range(12)]
    assert server.max_sessions_seen == 3
    await c.close()


async def test_host_key_mismatch_is_refused(server: FakeSSHServer) -> None:
    server.write_known_hosts(asyncssh.generate_private_key("ssh-ed25519"))
    c = _client(server)
    with pytest.raises(HostKeyError, match="does not match"):
        await c.run("true")
    await c.close()


async def test_unknown_host_is_refused(server: FakeSSHServer, tmp_path: Path) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyError):
        await _client(server, known_hosts=empty).run("true")
    with pytest.raises(SSHError, match="does not exist"):
        await _client(server, known_hosts=tmp_path / "missing").run("true")


async def test_wrong_key_is_refused(server: FakeSSHServer, tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(other))
    with pytest.raises(SSHError, match="refused our key"):
        await _client(server, key_file=other).run("true")


async def test_reconnect_after_sshd_restart(server: FakeSSHServer) -> None:
    c = _client(server)
    assert (await c.run("echo a")).stdout == "a\n"
    await server.stop()
    with pytest.raises(SSHError):
        await c.run("echo b")
    await server.start()  # same port, same host key
    r = await c.run("echo c")  # waits out the backoff of the failed attempt itself, then reconnects
    assert r.stdout == "c\n" and c.connects == 2
    async with c.sftp() as sftp:
        assert await sftp.exists(str(server.root))
    await c.close()


async def test_connection_dropped_mid_command_is_retried(server: FakeSSHServer) -> None:
    c = _client(server)
    await c.run("true")
    server.hang = True
    task = asyncio.create_task(c.run("echo again"))
    await server.wait_sessions(1)  # the command is running on the server
    for conn in server._conns:  # sshd restarted under a running command
        conn.abort()
    server.hang = False
    r = await asyncio.wait_for(task, 20)
    assert r.stdout == "again\n" and c.connects == 2
    await c.close()


async def test_command_timeout(server: FakeSSHServer) -> None:
    c = _client(server, command_timeout_s=0.3)
    server.hang = True
    with pytest.raises(SSHError, match=r"did not finish within 0\.3 s"):  # the configured timeout fired
        await asyncio.wait_for(c.run("true"), 20)
    server.hang = False
    assert (await c.run("echo ok")).stdout == "ok\n"
    await c.close()


async def test_unreachable_port_backs_off(server: FakeSSHServer) -> None:
    await server.stop()
    c = _client(server)
    for _ in range(3):
        with pytest.raises(SSHError, match="cannot connect"):
            await c.run("true")
    assert c._backoff == 2.0  # 0.5, then doubled after each failed attempt


async def test_pool_per_identity(server: FakeSSHServer, tmp_path: Path) -> None:
    settings = _settings(server, user_keys={"bob": server.client_key_file})
    pool = SSHPool({"fake": settings})
    assert pool.client("fake") is pool.client("fake", "alice")
    assert pool.client("fake", "bob") is not pool.client("fake")
    assert pool.client("fake", "bob").login == "bob"
    assert (await pool.client("fake", "bob").run("echo hi")).stdout == "hi\n"
    await pool.close()


async def test_check_report(server: FakeSSHServer, tmp_path: Path) -> None:
    fake_bin = tmp_path / "slurm" / "bin"
    (fake_bin / "sinfo").write_text("#!/bin/sh\necho 'debug up 2'\n")
    (fake_bin / "sinfo").chmod(0o755)
    (fake_bin / "scontrol").write_text("#!/bin/sh\necho 'MaxArraySize            = 1001'\n")
    (fake_bin / "scontrol").chmod(0o755)
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.sif").write_text("")
    report = await check_cluster("fake", _settings(server, partition="debug", image_cache=str(images),
                                                   container_runtime="apptainer"))
    items = {i.name: i for i in report.items}
    assert items["ssh"].ok and items["work root"].ok and items["image cache"].ok and items["sacct"].ok
    assert items["sbatch"].ok and items["sbatch"].detail == "Slurm 24.11.5"
    assert "1 images" in items["image cache"].detail
    assert items["partition"].ok
    assert items["array size"].ok and "MaxArraySize 1001" in items["array size"].detail
    small = await check_cluster("fake", _settings(server, max_array_size=5000))
    assert not next(i for i in small.items if i.name == "array size").ok  # a warning: sweeps then fail to submit
    assert not items["container runtime"].ok  # no apptainer on this machine
    assert not report.ok and "FAIL" in report.text()
    server.write_known_hosts(asyncssh.generate_private_key("ssh-ed25519"))
    bad = await check_cluster("fake", _settings(server))
    assert not bad.ok and "does not match" in bad.text()



async def test_cli_check(server: FakeSSHServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hpgc.cli import main

    cfg = tmp_path / "hpgc.toml"
    cfg.write_text(f"""[clusters.fake]
host = "127.0.0.1"
port = {server.port}
user = "alice"
key_file = "{server.client_key_file}"
known_hosts = "{server.known_hosts}"
work_root = "{tmp_path / 'work'}"
""")
    # In a thread: the CLI runs its own event loop, this one serves SSH meanwhile.
    assert await asyncio.to_thread(main, ["check", "--config", str(cfg), "fake"]) == 0
    out = capsys.readouterr().out
    assert "cluster fake:" in out and "[ok  ] ssh" in out and "=> ready" in out
    assert await asyncio.to_thread(main, ["check", "--config", str(cfg), "nope"]) == 2
    assert await asyncio.to_thread(main, ["check", "--config", str(cfg), "--user", "mallory"]) == 2
    server.write_known_hosts(asyncssh.generate_private_key("ssh-ed25519"))
    assert await asyncio.to_thread(main, ["check", "--config", str(cfg)]) == 1
    assert "does not match" in capsys.readouterr().out


TRICKY_SCRIPT = """a='it'"'"'s $HOME `x` !1 "q" \\ ;|&<>*?'
printf '%s\\n' "$a"
set -- one 'two words'
echo "$#:$2"
"""


@pytest.mark.parametrize("shell", ["bash", "dash", "tcsh", "csh", "zsh", "fish"])
def test_scripts_reach_sh_unchanged_from_any_login_shell(shell: str) -> None:
    """sshd runs a command through the account's login shell; tcsh and fish do not speak sh."""
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    want = subprocess.run(["sh", "-c", TRICKY_SCRIPT], capture_output=True, text=True, check=True).stdout
    got = subprocess.run([shell, "-c", for_any_login_shell(TRICKY_SCRIPT)], capture_output=True, text=True)
    assert got.returncode == 0, got.stderr
    assert got.stdout == want == "it's $HOME `x` !1 \"q\" \\ ;|&<>*?\n2:two words\n"
