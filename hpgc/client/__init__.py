"""A client of hpgc servers for people and scripts: `Client` (blocking) and `AsyncClient`, and the `hpgc`
client commands (hpgc/client/commands.py). A top layer: it uses hpgc.models and nothing of the server."""

from hpgc.client.api import AsyncClient, AsyncJob
from hpgc.client.errors import AuthError, ClientError, JobFailed, ProblemError, Unreachable, UsageError
from hpgc.client.sync import Client, Job

__all__ = ["AsyncClient", "AsyncJob", "AuthError", "Client", "ClientError", "Job", "JobFailed", "ProblemError",
           "Unreachable", "UsageError"]
