"""Make sure an image is in a cluster's image cache: look for it, else pull it with the container
runtime's own pull on the login node (compute nodes are often offline); or delete one hpgc pulled."""

from __future__ import annotations

import shlex

from hpgc.models.run import Container


def pull_image_command(runtime: str, cache: str, container: Container) -> str:
    """`container.image` and its candidates are file names in the cache (checked by the caller)."""
    q = shlex.quote
    cache = cache.rstrip("/")
    cached = " || ".join(f"test -e {q(cache + '/' + n)}" for n in container.candidates())
    if not container.source:
        return cached
    # pull to a temporary name first: a half-pulled image must never look cached; `ln` (not `mv -f`) never
    # replaces a file that appeared meanwhile
    target = q(f"{cache}/{container.image}")
    partial = q(f"{cache}/.{container.image}.partial")
    return (f"{cached} || {{ {q(runtime)} -s pull --force {partial} {q(container.source)} && "
            f"{{ ln {partial} {target} 2>/dev/null || test -e {target}; }} && rm -f {partial}; }}")


def remove_image_command(cache: str, image: str) -> str:
    """`image` is a file name in the cache (checked by the caller), the name hpgc pulled it under."""
    return f"rm -f -- {shlex.quote(cache.rstrip('/') + '/' + image)}"
