"""Names that come from users and end up in paths, URLs, headers, file names and the operating system: one
rule each, here, shared by every layer that checks them.

A process id becomes a URL path segment, a `Location` header and a comment in a Slurm script; an image
reference becomes a file name in a cache shared by every user. A Unix user name is decided once, when a token
is mapped to an account (hpgc/auth/identity.py), and used much later by the Slurm backend in SSH logins, job directory
paths and #SBATCH lines: both check it with the rule here, so a name accepted at request time is never refused
when the job is submitted.
"""


from __future__ import annotations

import hashlib
import re

# letters, digits, `.`, `_`, `-`; 1-128 characters; the first one a letter, a digit or `_`, so that an id is
# never `.`, `..`, a hidden file name or something that reads as a command-line option
PROCESS_ID_RULE = "1-128 letters, digits, '.', '_' or '-', starting with a letter, a digit or '_'"
_PROCESS_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_SHOWN = 60  # how much of a refused name a message quotes


def is_process_id(value: object) -> bool:
    return isinstance(value, str) and _PROCESS_ID.fullmatch(value) is not None


def shown(value: object) -> str:
    """A user's name as a message quotes it: repr-escaped (no CR/LF or control character survives) and cut."""
    text = value if isinstance(value, str) else str(value)
    return repr(text[:_SHOWN]) + ("…" if len(text) > _SHOWN else "")


def process_id_problem(value: object) -> str | None:
    """Why `value` cannot be a process id (None: it can)."""
    if is_process_id(value):
        return None
    return f"process id {shown(value)} is not allowed: a process id is {PROCESS_ID_RULE}"


# Image references ------------------------------------------------------------------------------------
# hpgc only ever writes cache files named `<readable>-<16 hex>.sif`, the hex being the start of the SHA-256 of
# the whole normalised reference: two different references never share a file, and a name the site put in
# the cache (anything not of that shape) is never written by a deploy.
PULL_SCHEMES = ("docker", "oras", "library", "shub", "http", "https")
DIGEST_HEX = 16
_MANAGED = re.compile(rf".*-[0-9a-f]{{{DIGEST_HEX}}}\.sif")
_SITE_IMAGE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,199}\.sif")
# a Docker reference without a scheme: [host[:port]/]path[:tag][@digest], as `docker pull` accepts it
_DOCKER_REF = re.compile(
    r"[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class ImageNameError(ValueError):
    """An image reference or file name that hpgc will not use; the message says why."""


def is_site_image(name: str) -> bool:
    """A bare `.sif` file name the site puts in the image cache (deploys only read such files)."""
    return _SITE_IMAGE.fullmatch(name) is not None and not is_managed_image(name)


def is_managed_image(name: str) -> bool:
    """A file name of the shape hpgc pulls images into."""
    return _MANAGED.fullmatch(name) is not None


def normalise_reference(ref: str) -> str:
    """A pullable reference in one spelling (`python:3.11-slim` → `docker://python:3.11-slim`); raise
    ImageNameError for anything that is not one (local paths, `file:`, `docker-archive:`, odd characters)."""
    ref = ref.strip()
    scheme, sep, rest = ref.partition("://")
    if not sep:
        if not _DOCKER_REF.fullmatch(ref):
            raise ImageNameError(f"{shown(ref)} is not a pullable image reference")
        return f"docker://{ref}"
    scheme = scheme.lower()
    if scheme not in PULL_SCHEMES:
        raise ImageNameError(f"{shown(ref)}: images are pulled from {', '.join(s + '://' for s in PULL_SCHEMES)}"
                             " only")
    if not rest or any(c.isspace() or ord(c) < 32 for c in rest):
        raise ImageNameError(f"{shown(ref)} is not a pullable image reference")
    if scheme == "docker" and not _DOCKER_REF.fullmatch(rest):
        raise ImageNameError(f"{shown(ref)} is not a valid Docker image reference")
    return f"{scheme}://{rest}"


def image_cache_name(ref: str) -> str:
    """The cache file of a pullable reference: a readable part plus a digest of the whole normalised reference.
    docker://a/b_c → a_b_c-<16 hex>.sif, http://host/x/tool.sif → tool-<16 hex>.sif."""
    full = normalise_reference(ref)
    rest = full.split("://", 1)[1]
    if rest.split("?", 1)[0].endswith(".sif"):
        rest = rest.split("?", 1)[0].rsplit("/", 1)[-1][:-len(".sif")]
    readable = _UNSAFE.sub("_", rest).strip("._-")[:80] or "image"
    return f"{readable}-{hashlib.sha256(full.encode()).hexdigest()[:DIGEST_HEX]}.sif"


# Unix user names -------------------------------------------------------------------------------------
UNIX_USER_MAX = 32
# Linux useradd's default rule (lowercase, a letter or '_' first), with '.' as directory-backed sites use
# (jane.doe), and without useradd's trailing '$' of Samba machine accounts: '$' is a shell character that
# #SBATCH lines refuse. 32 is useradd's limit. Uppercase is refused: useradd refuses it, and tools that fold
# case (LDAP, e-mail) would make Alice and alice two hpgc users but one account.
UNIX_USER = re.compile(rf"[a-z_][a-z0-9_.-]{{0,{UNIX_USER_MAX - 1}}}")
UNIX_USER_RULE = (f"lowercase letters, digits, '_', '.' and '-', starting with a letter or '_', at most "
                  f"{UNIX_USER_MAX} characters")


def unix_user_error(name: object) -> str | None:
    """Why `name` cannot be a Unix/Slurm user name here (a sentence for the client), or None if it can."""
    if not isinstance(name, str) or not name:
        return "it is empty"
    if len(name) > UNIX_USER_MAX:
        return f"it is longer than {UNIX_USER_MAX} characters"
    if UNIX_USER.fullmatch(name) is None:
        return f"a Unix user name here has only {UNIX_USER_RULE}"
    return None
