"""Documents an attacker sends to a deploy: shared by the parser's unit tests, the attacks on the real server
and bench/bench_deploy_isolation.py, so that each measures the same thing."""

from __future__ import annotations

ECHO_TOOL = """cwlVersion: v1.2
class: CommandLineTool
id: {id}
baseCommand: echo
inputs:
  msg: {{type: string, inputBinding: {{position: 1}}}}
outputs: {{}}
"""


def echo_tool(pid: str, extra: str = "") -> str:
    """A valid CWL tool named `pid`, with `extra` YAML lines appended."""
    return ECHO_TOOL.format(id=pid) + extra


def alias_bomb(levels: int = 9) -> str:
    """The "billion laughs": each level nine aliases of the one before, 9^9 strings in ~520 bytes."""
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i in range(levels - 1):
        prev, cur = chr(97 + i), chr(98 + i)
        text += f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]\n"
    return text


def alias_bomb_tool(pid: str = "bomb") -> str:
    """The bomb inside a tool whose command line uses its last level, so a parser that expands it must."""
    return alias_bomb() + echo_tool(pid).replace("baseCommand: echo", "baseCommand: [echo, *i]")
