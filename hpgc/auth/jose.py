"""The one door to authlib's JOSE code.

authlib 1.x marks `authlib.jose` deprecated in favour of joserfc (same author; authlib 2.0 drops it, hence
the `<2` pin). Importing it through here keeps that warning out of every log and keeps the move to
joserfc to this file and the others of hpgc/auth/.
"""

from __future__ import annotations

import warnings

import authlib.deprecate  # noqa: F401  (it installs an "always" filter that must come before ours)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.jose import JsonWebKey, JsonWebToken, Key
    from authlib.jose.errors import (
        BadSignatureError,
        DecodeError,
        ExpiredTokenError,
        InvalidClaimError,
        InvalidTokenError,
        JoseError,
        MissingClaimError,
        UnsupportedAlgorithmError,
    )

__all__ = [
    "BadSignatureError",
    "DecodeError",
    "ExpiredTokenError",
    "InvalidClaimError",
    "InvalidTokenError",
    "JoseError",
    "JsonWebKey",
    "JsonWebToken",
    "Key",
    "MissingClaimError",
    "UnsupportedAlgorithmError",
]
