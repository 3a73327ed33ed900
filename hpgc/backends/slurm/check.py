"""`hpgc check [CLUSTER]`: is everything hpgc needs on a cluster there? One line per item, with a reason."""

from __future__ import annotations

import asyncio
import shlex
from dataclasses import dataclass, field

from hpgc.backends.slurm.certs import CertIssuer
from hpgc.backends.slurm.commands.versions import VERSION_COMMAND, dialect
from hpgc.backends.slurm.config import ClusterSettings
from hpgc.backends.slurm.ssh import SSHClient, SSHError


@dataclass
class CheckItem:
    name: str
    ok: bool
    detail: str
    optional: bool = False  # a failure is a warning: hpgc works without it, with less


@dataclass
class CheckReport:
    cluster: str
    items: list[CheckItem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(i.ok or i.optional for i in self.items)

    def text(self) -> str:
        lines = [f"cluster {self.cluster}:"]
        for i in self.items:
            mark = "ok  " if i.ok else ("warn" if i.optional else "FAIL")
            lines.append(f"  [{mark}] {i.name}: {i.detail}")
        lines.append(f"  => {'ready' if self.ok else 'NOT ready'}")
        return "\n".join(lines)


async def _version(client: SSHClient) -> CheckItem:
    """The Slurm version, which decides the command dialect (commands/versions.py); an untested one is a warning."""
    try:
        r = await client.run(VERSION_COMMAND, retry=False)
    except SSHError as exc:
        return CheckItem("sbatch", False, str(exc))
    d = dialect(r.stdout)
    if not r.ok or d.version is None:
        return CheckItem("sbatch", False, f"sbatch --version said: {(r.stderr or r.stdout).strip()[-200:]}")
    return CheckItem("sbatch", d.tested, d.describe(), optional=True)


async def _item(client: SSHClient, name: str, command: str, describe: str, optional: bool = False) -> CheckItem:
    try:
        r = await client.run(command, retry=False)
    except SSHError as exc:
        return CheckItem(name, False, str(exc), optional)
    out = (r.stdout.strip() or r.stderr.strip()).splitlines()
    first = out[0] if out else ""
    if r.ok:
        return CheckItem(name, True, f"{describe}: {first}" if first else describe, optional)
    return CheckItem(name, False, f"exit {r.exit_status}: {(r.stderr or r.stdout).strip()[-300:]}", optional)


async def check_cluster(name: str, settings: ClusterSettings, unix_user: str | None = None) -> CheckReport:
    report = CheckReport(name)
    login, key = settings.key_for(unix_user)
    issuer = CertIssuer(name, settings.certificates) if settings.uses_certificate(login) else None
    client = SSHClient(name, settings, login, key, issuer)
    q = shlex.quote
    try:
        try:
            r = await client.run("echo ok", retry=False)
        except SSHError as exc:  # a certificate that cannot be made too (CertificateError)
            report.items.append(CheckItem("ssh", False, str(exc)))
            return report
        how = (f"with a certificate for {login} signed by {issuer.ca_fingerprint()}, valid "
               f"{settings.certificates.validity_minutes:g} min" if issuer and settings.certificates else
               f"with the key {key}" if key else "with the SSH agent's keys")
        report.items.append(CheckItem(
            "ssh", r.ok, f"logged in as {login}@{settings.host}:{settings.port} {how}; host key matches "
            f"{settings.known_hosts}"))
        user_dir = f"{settings.work_root}/{login}"
        checks = [
            _version(client),
            _item(client, "sacct", "sacct --parsable2 --noheader -X -S now-1hours --format=JobID >/dev/null "
                  "&& echo accounting answers", "accounting"),
            _item(client, "squeue", "squeue --noheader --me --format=%i | wc -l", "jobs queued by this user"),
            _item(client, "work root", f"mkdir -p {q(user_dir)} && t=$(mktemp -p {q(user_dir)} .hpgc-check.XXXXXX)"
                  f" && rm -f \"$t\" && echo {q(user_dir)} writable", "shared work root"),
            _item(client, "cwltool", f"command -v {q(settings.cwltool)} && {q(settings.cwltool)} --version "
                  "| tail -n 1", "CWL runner on the login node", optional=True),
        ]
        # a sweep is one job array of up to max_array_size tasks: more than the cluster's MaxArraySize is refused
        checks.append(_item(client, "array size", "m=$(scontrol show config | sed -n 's/^MaxArraySize *= *//p') && "
                            f"echo \"MaxArraySize $m\" && [ \"$m\" -ge {int(settings.max_array_size)} ] || "
                            f"{{ echo \"MaxArraySize $m is below max_array_size = {int(settings.max_array_size)}\" "
                            ">&2; exit 1; }", f"sweeps up to {settings.max_array_size} tasks are one array",
                            optional=True))
        if settings.partition:
            checks.append(_item(client, "partition", f"sinfo --noheader -p {q(settings.partition)} -o '%P %a %D' "
                                f"| grep .", "partition"))
        if settings.container_runtime:
            rt = q(settings.container_runtime)
            checks.append(_item(client, "container runtime", f"command -v {rt} && {rt} --version", "found"))
        if settings.image_cache:
            checks.append(_item(client, "image cache", f"test -d {q(settings.image_cache)} && "
                                f"echo $(ls -1 {q(settings.image_cache)} | grep -c '\\.sif$') images",
                                settings.image_cache))
        report.items += await asyncio.gather(*checks)
        return report
    finally:
        await client.close()
