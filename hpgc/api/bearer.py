"""Bearer authentication on the HTTP side: the middleware, its challenges, the verifier's lifetime and the
OpenAPI security schemes. Checking a token is hpgc/auth/verifier.py; claims → Principal is hpgc/auth/identity.py."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

from hpgc.api.health import PUBLIC as HEALTH
from hpgc.api.keys import SETTINGS
from hpgc.api.links import SIGNER, is_signed_request, link_principal
from hpgc.api.openapi import OPENAPI_EXTENSIONS
from hpgc.api.principal import PRINCIPAL_KEY
from hpgc.api.problems import problem
from hpgc.api.resource_metadata import PATH as RESOURCE_METADATA
from hpgc.api.resource_metadata import add_resource_metadata
from hpgc.api.ui.sessions import csrf_refusal, current, signin_redirect
from hpgc.auth.dev_issuer import (
    DEV_PREFIX,
    DEV_WARNING,
    DevIssuer,
    Grant,
    dev_issuer_routes,
    dev_issuer_settings,
    dev_issuer_url,
)
from hpgc.auth.issuer import Issuer
from hpgc.auth.principal import AuthUnavailable, InsufficientScope, InvalidToken, UnmappedUser
from hpgc.auth.settings import AuthSettings
from hpgc.auth.verifier import TokenVerifier
from hpgc.config import Settings
from hpgc.logs import set_fields

log = logging.getLogger(__name__)
VERIFIER: web.AppKey[TokenVerifier] = web.AppKey("token_verifier")
DEV_ISSUER: web.AppKey[DevIssuer] = web.AppKey("dev_issuer")
DEV_GRANT: web.AppKey[Grant] = web.AppKey("dev_issuer_code_grant")  # its authorization_code grant, in-process
# Public routes are recognised by the route the router matched, never by the raw path, so that no spelling
# of a protected URL (dot segments, encodings) can pass for a public one.
PUBLIC_RESOURCES = frozenset({"/", "/conformance", "/api", "/api.html", RESOURCE_METADATA, *HEALTH})
PUBLIC_PREFIXES = ("/api.html/static", f"{DEV_PREFIX}/", "/ui/sign", "/ui/callback", "/ui/static/")
BEARER = re.compile(r"Bearer +([A-Za-z0-9\-._~+/]+=*) *", re.IGNORECASE)
QUERY_TOKEN_NAMES = ("access_token", "token", "bearer")


def _is_public(request: web.Request) -> bool:
    resource = request.match_info.route.resource
    if resource is None:  # no route matched (404/405): nothing public to protect, answer as protected
        return False
    canonical = resource.canonical
    return canonical in PUBLIC_RESOURCES or canonical.startswith(PUBLIC_PREFIXES)


def _quoted(text: str) -> str:
    # RFC 6750 §3: error_description is limited to printable ASCII without '"' and '\'
    return "".join(c if 0x20 <= ord(c) <= 0x7E and c not in '"\\' else "'" for c in text)


def challenge(realm: str, error: str | None = None, description: str | None = None,
              scope: str | None = None) -> str:
    parts = [f'realm="{_quoted(realm)}"']
    if error:
        parts.append(f'error="{error}"')
    if description:
        parts.append(f'error_description="{_quoted(description)}"')
    if scope:
        parts.append(f'scope="{_quoted(scope)}"')
    return "Bearer " + ", ".join(parts)


def unauthorized(settings: AuthSettings, description: str) -> web.Response:
    return problem(401, "Unauthorized", description, error="invalid_token",
                   headers={"WWW-Authenticate": challenge(settings.realm, "invalid_token", description)})


def forbidden_scope(settings: AuthSettings, exc: InsufficientScope) -> web.Response:
    scopes = {"execute": settings.execute_scopes, "deploy": settings.deploy_scopes,
              "admin": settings.admin_scopes}[exc.permission]
    scope = " ".join(scopes)
    return problem(403, exc.title, exc.detail, exc.type, error="insufficient_scope", scope=scope,
                   headers={"WWW-Authenticate": challenge(settings.realm, "insufficient_scope", exc.detail, scope)})


def _bearer(request: web.Request) -> str:
    header = request.headers.getall("Authorization", [])
    if not header:
        if any(name in request.query for name in QUERY_TOKEN_NAMES):
            raise InvalidToken("tokens in the query string are not accepted (they end up in logs and "
                               "browser history); send the header Authorization: Bearer <token>")
        raise InvalidToken("this resource needs a bearer token: send the header Authorization: Bearer <token>")
    if len(header) > 1:
        raise InvalidToken("send one Authorization header, not several")
    match = BEARER.fullmatch(header[0])
    if match is None:
        scheme = header[0].split(" ", 1)[0][:20]
        if scheme.lower() != "bearer":
            raise InvalidToken(f"the {scheme} authorization scheme is not accepted; send Authorization: "
                               "Bearer <token>")
        raise InvalidToken("the Authorization header is malformed; expected Bearer followed by one token")
    return match.group(1)


async def _principal_of(request: web.Request, token: str) -> None:
    request[PRINCIPAL_KEY] = await request.app[VERIFIER].principal(token)
    set_fields(user=request[PRINCIPAL_KEY].subject)  # until the request ends (request_id.py's bind)


@web.middleware
async def auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    settings = request.app[SETTINGS].auth
    if not settings.enabled:
        return await handler(request)  # principal() answers ANONYMOUS
    session = current(request)  # a browser's sign-in session stands for its bearer token
    if session is not None and (why := await csrf_refusal(request, session)) is not None:
        return problem(403, "Forbidden", f"refused as a cross-site request forgery: {why}", error="csrf")
    try:
        if SIGNER in request.app and is_signed_request(request):  # a signed result link needs no token
            reader = await link_principal(request)
            if isinstance(reader, web.Response):
                return reader
            request[PRINCIPAL_KEY] = reader
            set_fields(user=reader.subject)
        elif not _is_public(request):
            await _principal_of(request, session.token if session is not None else _bearer(request))
        elif session is not None:  # a public page still says who is signed in
            with contextlib.suppress(InvalidToken, UnmappedUser, AuthUnavailable):
                await _principal_of(request, session.token)
        return await handler(request)
    except InvalidToken as exc:
        redirect = signin_redirect(request)
        if redirect is not None:
            return redirect
        return unauthorized(settings, exc.detail)
    except InsufficientScope as exc:  # also from handlers, e.g. require_deploy
        return forbidden_scope(settings, exc)
    except UnmappedUser as exc:
        log.info("refused a token on %s: %s", request.path, exc.detail)
        return problem(exc.status, exc.title, exc.detail, exc.type, error="unmapped_user")
    except AuthUnavailable as exc:
        log.warning("%s", exc.detail)
        return problem(exc.status, exc.title, exc.detail, headers={"Retry-After": "10"})


# wiring -----------------------------------------------------------------------------------------------
def setup_auth(app: web.Application, settings: Settings) -> None:
    """Routes, the verifier's lifetime and the OpenAPI security schemes; call once from create_app."""
    auth = settings.auth
    if not auth.enabled:
        log.warning("authentication is DISABLED: every caller is an administrator (auth.enabled = false)")
        return
    dev_url = dev_issuer_url(settings)
    dev = DevIssuer(settings.data_dir, auth.dev_issuer.algorithm) if auth.dev_issuer_active else None
    if dev is not None:
        app[DEV_ISSUER] = dev
        app[DEV_GRANT] = dev_issuer_routes(app, dev, dev_url)
    add_resource_metadata(app, [i.issuer for i in auth.issuers] + ([dev_url] if dev is not None else []),
                          [*auth.execute_scopes[:1], *auth.deploy_scopes[:1], *auth.admin_scopes[:1]])

    async def verifier(app: web.Application) -> AsyncIterator[None]:
        session: aiohttp.ClientSession | None = None

        def client() -> aiohttp.ClientSession:
            nonlocal session
            if session is None:
                session = aiohttp.ClientSession()
            return session

        issuers = [Issuer(i, client) for i in auth.issuers]
        if dev is not None:
            await asyncio.to_thread(dev.load)
            await asyncio.to_thread(dev.record_issuer, dev_url)
            log.warning(DEV_WARNING, dev_url, dev.key_file)
            issuers.append(Issuer(dev_issuer_settings(settings, dev_url), client, dev.jwks))
        app[VERIFIER] = TokenVerifier(auth, issuers)
        warm = asyncio.create_task(app[VERIFIER].warm_up())
        yield
        warm.cancel()
        if session is not None:
            await session.close()

    app.cleanup_ctx.append(verifier)
    app.setdefault(OPENAPI_EXTENSIONS, []).append(openapi_security)


def openapi_security(app: web.Application, doc: dict[str, Any]) -> None:
    """bearer JWT always; OAuth2 flows when an issuer's discovery offers them (Swagger UI's Authorize)."""
    auth = app[SETTINGS].auth
    schemes = doc["components"].setdefault("securitySchemes", {})
    schemes["bearerAuth"] = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                             "description": "An access token of a trusted issuer, in Authorization: Bearer."}
    requirement: list[dict[str, list[str]]] = [{"bearerAuth": []}]
    verifier = app.get(VERIFIER)
    meaning = {"read and execute": auth.execute_scopes, "deploy, replace, undeploy": auth.deploy_scopes,
               "every user's jobs": auth.admin_scopes}
    scopes = {values[0]: text for text, values in meaning.items() if values}
    for issuer in (verifier.issuers.values() if verifier else []):
        meta = issuer.metadata or {}
        if not isinstance(meta.get("authorization_endpoint"), str):
            continue
        flows: dict[str, Any] = {}
        if isinstance(meta.get("token_endpoint"), str):
            flows["authorizationCode"] = {"authorizationUrl": meta["authorization_endpoint"],
                                          "tokenUrl": meta["token_endpoint"], "scopes": scopes}
        if "token" in (meta.get("response_types_supported") or []):
            flows["implicit"] = {"authorizationUrl": meta["authorization_endpoint"], "scopes": scopes}
        if flows:
            schemes["oauth2"] = {"type": "oauth2", "description": f"Sign in at {issuer.id}", "flows": flows}
            requirement.append({"oauth2": list(scopes)[:1]})
            break
    doc["security"] = requirement
    for item in doc["paths"].values():
        for op in item.values():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            if op.get("security") == []:
                continue
            op["responses"].setdefault("401", _problem_ref("missing, invalid or expired bearer token"))
            op["responses"].setdefault("403", _problem_ref("the token lacks a permission (insufficient_scope), "
                                                           "or its user has no Unix account here"))
    doc["paths"][RESOURCE_METADATA] = {"get": _public_op(
        "Protected resource metadata (RFC 9728): the issuers this server trusts", "resourceMetadata",
        "Authentication", {"200": _json_answer("issuers and scopes")})}
    tags = ["Authentication"]
    if app.get(DEV_ISSUER) is not None:
        tag = "Development issuer"
        oauth_error = _json_answer("an OAuth 2.0 error (RFC 6749 §5.2)")
        form = {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}}}
        doc["paths"][f"{DEV_PREFIX}/.well-known/openid-configuration"] = {"get": _public_op(
            "Development issuer: OpenID discovery", "devIssuerDiscovery", tag,
            {"200": _json_answer("OpenID Provider Metadata")})}
        doc["paths"][f"{DEV_PREFIX}/jwks"] = {"get": _public_op(
            "Development issuer: signing keys", "devIssuerJwks", tag, {"200": _json_answer("JSON Web Key Set")})}
        doc["paths"][f"{DEV_PREFIX}/device"] = {
            "post": {**_public_op("Development issuer: start a device login (RFC 8628)", "devIssuerDevice", tag,
                                  {"200": _json_answer("device and user codes"), "429": oauth_error}),
                     "requestBody": form},
            "get": _public_op("Development issuer: how to approve a device login", "devIssuerDevicePage", tag,
                              {"200": {"description": "a page", "content": {"text/html": {"schema": {
                                  "type": "string"}}}}},
                              [{"name": "user_code", "in": "query", "schema": {"type": "string"}}])}
        page = {"description": "a page", "content": {"text/html": {"schema": {"type": "string"}}}}
        signin = {"200": page, "303": {"description": "back to the client's redirect_uri with a code"},
                  "400": page, "403": {**page, "description": "not from this machine (the page works only there)"}}
        oauth = [{"name": n, "in": "query", "schema": {"type": "string"}} for n in (
            "response_type", "client_id", "redirect_uri", "state", "code_challenge", "code_challenge_method")]
        doc["paths"][f"{DEV_PREFIX}/authorize"] = {
            "get": _public_op("Development issuer: the browser sign-in page (authorization code with PKCE)",
                              "devIssuerAuthorizePage", tag, signin, oauth),
            "post": {**_public_op("Development issuer: sign in as a user name (this machine only)",
                                  "devIssuerAuthorize", tag, signin), "requestBody": form}}
        doc["paths"][f"{DEV_PREFIX}/token"] = {"post": {**_public_op(
            "Development issuer: the token of an approved device login", "devIssuerToken", tag,
            {"200": _json_answer("an access token"), "400": oauth_error}), "requestBody": form}}
        tags.append(tag)
    doc.setdefault("tags", []).extend({"name": name} for name in tags)


def _public_op(summary: str, operation_id: str, tag: str, responses: dict[str, Any],
               parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"summary": summary, "operationId": operation_id, "tags": [tag], "security": [],
            "parameters": parameters or [], "responses": responses}


def _json_answer(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"type": "object"}}}}


def _problem_ref(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
