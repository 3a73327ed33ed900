"""The client commands of `hpgc`: login, logout, processes, describe, deploy, undeploy, run, jobs, status,
logs, results, dismiss, rerun, completion. `add_client_commands` puts them on hpgc/cli.py's parser.

Every command: `--url` (else HPGC_URL, else the server of the last `hpgc login`), `--json` for scripts,
errors as one line on stderr, exit codes 0 ok, 1 job failed, 2 usage, 3 auth, 4 server unreachable."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from hpgc.client import tokens
from hpgc.client.api import AsyncClient, AsyncJob
from hpgc.client.errors import EXIT_JOB_FAILED, EXIT_OK, ClientError, UsageError
from hpgc.client.inputs import parse_inputs
from hpgc.client.progress import ProgressDisplay
from hpgc.client.tables import jobs_table, results_text, table
from hpgc.client.uploads import with_uploads
from hpgc.models.ogc import StatusInfo

Handler = Callable[[AsyncClient, argparse.Namespace], Awaitable[int]]


def out(args: argparse.Namespace, value: Any, text: str | Callable[[], str]) -> None:
    """`value` as JSON with --json, else the human text."""
    if args.json:
        print(json.dumps(value, indent=2, default=str))
    else:
        print(text() if callable(text) else text)


def server_url(args: argparse.Namespace) -> str:
    url = getattr(args, "url", None) or os.environ.get("HPGC_URL") or tokens.default_server()
    if not url:
        raise UsageError("which server? give --url URL, set HPGC_URL, or run hpgc login URL first")
    return url


def run_command(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """An argparse func that runs `handler` with a client and turns the client's errors into exit codes."""

    def func(args: argparse.Namespace) -> int:
        async def main() -> int:
            async with AsyncClient(server_url(args)) as client:
                return await handler(client, args)

        try:
            return asyncio.run(main())
        except ClientError as exc:
            print(f"hpgc: {exc}", file=sys.stderr)
            return exc.exit_code
        except KeyboardInterrupt:
            print("hpgc: interrupted (the job, if any, goes on: hpgc dismiss JOB stops it)", file=sys.stderr)
            return 130

    return func


# processes ----------------------------------------------------------------------------------------------
async def cmd_processes(client: AsyncClient, args: argparse.Namespace) -> int:
    procs = await client.processes()
    out(args, [p.wire() for p in procs],
        lambda: table(["PROCESS", "VERSION", "TITLE"], [(p.id, p.version, p.title or "") for p in procs]))
    return EXIT_OK


async def cmd_describe(client: AsyncClient, args: argparse.Namespace) -> int:
    desc = await client.describe(args.process)

    def text() -> str:
        lines = [f"{desc.id} {desc.version}" + (f": {desc.title}" if desc.title else "")]
        if desc.description:
            lines.append(desc.description)
        for head, items in (("inputs", desc.inputs), ("outputs", desc.outputs)):
            lines.append(f"{head}:")
            for name, item in items.items():
                schema = item.schema_
                kind = schema.get("type") or ("file" if schema.get("contentMediaType") else "any")
                occurs = ""
                if head == "inputs":
                    most = getattr(item, "maxOccurs", None)
                    occurs = f" [{item.minOccurs}..{'n' if most == 'unbounded' else most or 1}]"  # type: ignore[attr-defined]
                lines.append(f"  {name}: {kind}{occurs}" + (f"  {item.title}" if item.title else ""))
        return "\n".join(lines)

    out(args, desc.wire(), text)
    return EXIT_OK


async def cmd_deploy(client: AsyncClient, args: argparse.Namespace) -> int:
    pid = await client.deploy(args.file, replace=args.replace, process_id=args.id)
    out(args, {"id": pid, "replaced": args.replace}, f"{'replaced' if args.replace else 'deployed'} {pid}")
    return EXIT_OK


async def cmd_undeploy(client: AsyncClient, args: argparse.Namespace) -> int:
    await client.undeploy(args.process)
    out(args, {"id": args.process, "undeployed": True}, f"undeployed {args.process}")
    return EXIT_OK


# running --------------------------------------------------------------------------------------------------
async def follow(client: AsyncClient, job_id: str, args: argparse.Namespace) -> StatusInfo:
    """Wait for a job's end, with the progress bar (stderr) unless --json."""
    display = None if args.json else ProgressDisplay(prefix=f"{job_id}  ")
    try:
        return await client.wait(job_id, progress=display.update if display else None, check=False)
    finally:
        if display:
            display.close()


async def finish(client: AsyncClient, status: StatusInfo, args: argparse.Namespace) -> int:
    """After a waited run: the results (or where they were downloaded), or why the job failed."""
    if status.status.value != "successful":
        doc = status.wire()
        out(args, doc, f"job {status.jobID} {status.status.value}: {' '.join((status.message or '').split())}\n"
                       f"(hpgc logs {status.jobID} shows its output)")
        return EXIT_JOB_FAILED
    if getattr(args, "download", None):
        files = await client.download(status.jobID, args.download)
        out(args, {"job": status.wire(), "files": {k: str(v) for k, v in files.items()}},
            lambda: "\n".join(str(p) for p in files.values()))
    else:
        doc = await client.results(status.jobID)
        out(args, {"job": status.wire(), "results": doc}, lambda: results_text(doc))
    return EXIT_OK


async def cmd_run(client: AsyncClient, args: argparse.Namespace) -> int:
    desc = await client.describe(args.process)
    inputs = await with_uploads(client.http, parse_inputs(args.input or [], desc))
    return await _started(client, await client.execute(args.process, inputs), args, "")


async def cmd_rerun(client: AsyncClient, args: argparse.Namespace) -> int:
    old = await client.status(args.job)
    desc = await client.describe(old.processID or "")
    job = await client.rerun(args.job, await with_uploads(client.http, parse_inputs(args.input or [], desc)))
    return await _started(client, job, args, f" (again {args.job})")


async def _started(client: AsyncClient, job: AsyncJob, args: argparse.Namespace, note: str) -> int:
    """A job just started: its status at once with --async, else followed to its end."""
    if args.async_:
        out(args, job.status.wire(), job.id)
        return EXIT_OK
    if not args.json:
        print(f"job {job.id}{note}", file=sys.stderr)
    return await finish(client, await follow(client, job.id, args), args)


# jobs -----------------------------------------------------------------------------------------------------
async def cmd_jobs(client: AsyncClient, args: argparse.Namespace) -> int:
    jobs = await client.jobs(status=args.status, process=args.process, since=args.since, limit=args.limit)
    out(args, [j.wire() for j in jobs], lambda: jobs_table(jobs))
    return EXIT_OK


async def cmd_status(client: AsyncClient, args: argparse.Namespace) -> int:
    status = await follow(client, args.job, args) if args.watch else await client.status(args.job)
    out(args, status.wire(), lambda: "\n".join(f"{k}: {v}" for k, v in status.wire().items() if k != "links"))
    return EXIT_JOB_FAILED if status.status.value == "failed" else EXIT_OK


def _new_text(before: str, now: str) -> str:
    """What the log gained since `before`; the server sends a tail, which may have moved past it."""
    if now.startswith(before):
        return now[len(before):]
    anchor = before[-4096:]
    at = now.rfind(anchor) if anchor else -1
    return now[at + len(anchor):] if at >= 0 else now


async def cmd_logs(client: AsyncClient, args: argparse.Namespace) -> int:
    seen = {"stdout": "", "stderr": "", "events": 0}
    while True:
        ended = (await client.status(args.job)).status.terminal if args.follow else True
        logs = await client.logs(args.job, tail=args.tail)
        new = {k: _new_text(str(seen[k]), logs.get(k) or "") for k in ("stdout", "stderr")}
        events = logs.get("events") or []
        fresh, seen["events"] = events[int(seen["events"]):], len(events)
        seen["stdout"], seen["stderr"] = logs.get("stdout") or "", logs.get("stderr") or ""
        if args.json:
            print(json.dumps({**new, "events": fresh}) if args.follow else json.dumps(logs, indent=2), flush=True)
        else:
            for event in fresh:
                print(event_line(event), flush=True)
            sys.stdout.write(new["stdout"])
            sys.stdout.flush()
            sys.stderr.write(new["stderr"])
        if ended:
            return EXIT_OK
        await asyncio.sleep(1.0)


def event_line(event: dict[str, Any]) -> str:
    from datetime import datetime

    ts = event.get("ts")
    when = datetime.fromtimestamp(ts).strftime("%H:%M:%S") if isinstance(ts, int | float) else "--:--:--"
    progress = f" {event['progress']}%" if event.get("progress") is not None else ""
    message = f" {event['message']}" if event.get("message") else ""
    return f"== {when} {event.get('status', '?')}{progress}{message}"


async def cmd_results(client: AsyncClient, args: argparse.Namespace) -> int:
    if args.download:
        files = await client.download(args.job, args.download)
        out(args, {k: str(v) for k, v in files.items()}, lambda: "\n".join(str(p) for p in files.values()))
    else:
        doc = await client.results(args.job)
        out(args, doc, lambda: results_text(doc))
    return EXIT_OK


async def cmd_dismiss(client: AsyncClient, args: argparse.Namespace) -> int:
    status = await client.dismiss(args.job)
    out(args, status.wire(), f"{status.jobID} {status.status.value}")
    return EXIT_OK

