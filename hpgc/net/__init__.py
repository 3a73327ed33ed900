"""Every HTTP request the server makes on a user's behalf (callbacks, `href` inputs, `executionUnit.href`) goes
through one guarded client: addresses checked where the connection is made, redirects re-checked, bytes
capped after decoding, transfers time-boxed, errors that tell the user nothing about the inside network.

A bottom layer, beside hpgc/models: it imports nothing of hpgc but models and errors."""

from hpgc.net.client import GuardedClient, OutboundError
from hpgc.net.settings import OutboundSettings

__all__ = ["GuardedClient", "OutboundError", "OutboundSettings"]
