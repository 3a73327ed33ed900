"""The client commands' argparse definitions, and the commands that need no server session (login,
logout, completion). hpgc/cli.py calls `add_client_commands` once."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
from typing import Any

from hpgc.client import commands as c
from hpgc.client import tokens
from hpgc.client.completion import script
from hpgc.client.errors import EXIT_OK, ClientError
from hpgc.client.http import normalize
from hpgc.client.login import DEFAULT_CLIENT_ID, DEFAULT_SCOPE, device_login

CLIENT_COMMANDS = ("login", "logout", "processes", "describe", "deploy", "undeploy", "run", "jobs", "status",
                   "logs", "results", "dismiss", "rerun", "completion")


def _claims(token: str) -> dict[str, Any]:
    """A JWT's payload, unverified, only to greet the user by name; opaque tokens give {}."""
    try:
        part = token.split(".")[1]
        return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))
    except (IndexError, ValueError, TypeError):
        return {}


def cmd_login(args: argparse.Namespace) -> int:
    def show(grant: dict[str, Any]) -> None:
        where = grant.get("verification_uri_complete") or grant.get("verification_uri")
        print(f"To log in, open {where}\nand confirm the code: {grant['user_code']}", file=sys.stderr, flush=True)

    try:
        server = normalize(args.server)
        entry = asyncio.run(device_login(server, scope=args.scope, client_id=args.client_id, issuer=args.issuer,
                                         show=show))
    except ClientError as exc:
        print(f"hpgc: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    tokens.set_default_server(server)
    claims = _claims(entry["access_token"])
    who = claims.get("preferred_username") or claims.get("sub") or "?"
    c.out(args, {"server": server, "issuer": entry.get("issuer"), "user": who, "scope": entry.get("scope"),
                 "expires_at": entry.get("expires_at"), "refresh": "refresh_token" in entry},
          f"logged in to {server} as {who}" + (f" ({entry['scope']})" if entry.get("scope") else ""))
    return EXIT_OK


def cmd_logout(args: argparse.Namespace) -> int:
    try:
        server = normalize(args.server or os.environ.get("HPGC_URL") or tokens.default_server() or "")
    except ClientError:
        print("hpgc: which server? give its URL", file=sys.stderr)
        return 2
    removed = tokens.remove(server)
    c.out(args, {"server": server, "removed": removed},
          f"logged out of {server}" if removed else f"not logged in to {server}")
    return EXIT_OK


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help="the hpgc server (default: HPGC_URL, else the last `hpgc login`)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _job_runner(p: argparse.ArgumentParser) -> None:
    p.add_argument("-i", "--input", action="append", metavar="NAME=VALUE",
                   help="an input: name=value, name=1,2,3 (array), name=https://… or name=@local-file (file)")
    p.add_argument("--async", dest="async_", action="store_true", help="print the job id and return at once")
    p.add_argument("--wait", action="store_true", help="wait with a progress bar (the default)")
    p.add_argument("--download", metavar="DIR", help="download the result files into DIR")


def add_client_commands(sub: Any, root: argparse.ArgumentParser) -> None:
    """The client subcommands, on `hpgc`'s subparsers (`root` is given to `hpgc completion`)."""
    def add(name: str, handler: Any, help_text: str, server: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        if server:
            _common(p)
            p.set_defaults(func=c.run_command(handler))
        else:
            p.add_argument("--json", action="store_true", help="machine-readable output")
            p.set_defaults(func=handler)
        return p

    p = add("login", cmd_login, "log in to a server (OAuth2 device authorization grant)", server=False)
    p.add_argument("server", help="the server's URL, e.g. https://hpgc.example.org")
    p.add_argument("--scope", default=DEFAULT_SCOPE, help="scopes to ask for")
    p.add_argument("--client-id", default=os.environ.get("HPGC_CLIENT_ID", DEFAULT_CLIENT_ID),
                   help="OAuth2 client id registered at the issuer (default HPGC_CLIENT_ID or hpgc-cli)")
    p.add_argument("--issuer", help="the issuer's URL, when the server does not publish it")
    p = add("logout", cmd_logout, "forget the cached token of a server", server=False)
    p.add_argument("server", nargs="?", help="the server's URL (default: the last login)")
    add("processes", c.cmd_processes, "list the processes")
    add("describe", c.cmd_describe, "describe a process: inputs and outputs").add_argument("process")
    p = add("deploy", c.cmd_deploy, "deploy a CWL file or an OGC application package (JSON)")
    p.add_argument("file")
    p.add_argument("--replace", action="store_true", help="replace the deployed process of the same id")
    p.add_argument("--id", help="the process id (a CWL $graph's workflow, or to override the document's)")
    add("undeploy", c.cmd_undeploy, "remove a deployed process").add_argument("process")
    p = add("run", c.cmd_run, "execute a process and follow it to its end (or --async)")
    p.add_argument("process")
    _job_runner(p)
    p = add("jobs", c.cmd_jobs, "list your jobs, newest first")
    p.add_argument("--status", action="append", choices=["accepted", "running", "successful", "failed", "dismissed"])
    p.add_argument("--process", action="append", help="only jobs of this process")
    p.add_argument("--since", help="only jobs created in the last 30m, 2h, 1d, 1w (or since an ISO date)")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p = add("status", c.cmd_status, "a job's status (--watch: follow it with a progress bar)")
    p.add_argument("job")
    p.add_argument("--watch", action="store_true")
    p = add("logs", c.cmd_logs, "a job's stdout, stderr and events (--follow: until it ends)")
    p.add_argument("job")
    p.add_argument("--follow", "-f", action="store_true")
    p.add_argument("--tail", type=int, help="last N bytes of stdout and stderr (server default 64 KiB)")
    p = add("results", c.cmd_results, "a job's results (--download DIR: its files)")
    p.add_argument("job")
    p.add_argument("--download", metavar="DIR")
    add("dismiss", c.cmd_dismiss, "cancel a job, or remove a finished one's files").add_argument("job")
    p = add("rerun", c.cmd_rerun, "run a job's process again with its inputs (-i changes some)")
    p.add_argument("job")
    _job_runner(p)
    p = sub.add_parser("completion", help="print a shell completion script: bash, zsh or fish",
                       description="eval \"$(hpgc completion bash)\" (or put it in ~/.bashrc)")
    p.add_argument("shell", choices=["bash", "zsh", "fish"])
    p.set_defaults(func=lambda args: print(script(root, args.shell), end="") or EXIT_OK)
