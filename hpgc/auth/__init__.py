"""Who is calling: bearer tokens of trusted issuers → Principal (subject, permissions, Unix account).

settings.py what an administrator configures; issuer.py and verifier.py check tokens (JWT against the
issuer's keys, opaque tokens by introspection); identity.py maps claims to a Principal (principal.py);
dev_issuer.py is the development issuer; jose.py the one door to authlib's JOSE code. The HTTP side
(middleware, challenges) is hpgc/api/bearer.py.
"""
