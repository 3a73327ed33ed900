"""Read a file of a job directory on the cluster, or its size, safely against what the job's owner may
have put there: only a regular file with one link, reached through real directories, each checked after
`cd` by its physical path (a folder swapped for a symlink meanwhile is caught). The read itself is
`dd iflag=nofollow,nonblock` of the name just checked, capped at the size seen: a symlink swapped in
afterwards is not followed, a FIFO does not block, a file that grows is not read past that size.
Exit FILE_MISSING when it does not exist, 3 (with a message on stderr) when it is refused."""

from __future__ import annotations

import shlex

from hpgc.backends.slurm.commands import fill

FILE_MISSING = 2
DD_BLOCK = 256 * 1024


def read_command(root: str, parts: list[str], *, offset: int = 0, length: int | None = None,
                 tail: int | None = None, size_only: bool = False, max_bytes: int | None = None) -> str:
    """Print the size of (`size_only`) or the bytes of ROOT/PARTS...: from `offset` (at most `length`), or
    the last `tail` bytes; refused past `max_bytes`."""
    q = shlex.quote
    for p in parts:
        if p in ("", ".", "..") or "/" in p or "\0" in p:
            raise ValueError(f"bad path component {p!r}")
    *folders, name = parts
    if size_only:
        action = 'printf "%s\\n" "$size"'
    else:
        if tail is not None:
            span = f'off=$((size > {int(tail)} ? size - {int(tail)} : 0)); n=$((size - off))'
        else:
            span = (f'off={int(offset)}; n=$((size > off ? size - off : 0))'
                    + (f'; [ "$n" -gt {int(length)} ] && n={int(length)}' if length is not None else ""))
        cap = (f'[ "$n" -gt {int(max_bytes)} ] && {{ echo "hpgc: $name is larger than {int(max_bytes)} bytes" >&2; '
               'exit 3; }') if max_bytes is not None else ":"
        action = (f"{span}\n{cap}\n"
                  f'exec dd if="./$name" iflag=nofollow,nonblock,skip_bytes,count_bytes skip="$off" count="$n" '
                  f"bs={DD_BLOCK} status=none")
    return fill("read_file.sh", FOLDERS=" ".join(q(f) for f in folders), NAME=q(name), ROOT=q(root),
                MISSING=FILE_MISSING, ACTION=action)
