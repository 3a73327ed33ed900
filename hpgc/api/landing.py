"""The public façade: landing page, conformance, the OpenAPI document and Swagger UI."""

from __future__ import annotations

import json
from pathlib import Path

import swagger_ui_bundle
from aiohttp import web

from hpgc.api.keys import SETTINGS
from hpgc.api.openapi import openapi_document
from hpgc.api.render import HTML, JSON, base_url, respond, self_links
from hpgc.models.ogc import CONF_PART1, REL_OGC, ConfClasses, LandingPage, Link

OPENAPI_JSON = "application/vnd.oai.openapi+json;version=3.0"
CONFORMANCE = [
    f"{CONF_PART1}/{name}"
    for name in ("core", "ogc-process-description", "json", "html", "oas30", "job-list", "dismiss", "callback")
]
SWAGGER_DIR = Path(swagger_ui_bundle.swagger_ui_path)
routes = web.RouteTableDef()


@routes.get("/")
async def landing(request: web.Request) -> web.Response:
    base = base_url(request)
    settings = request.app[SETTINGS]
    page = LandingPage(
        title=settings.title,
        description="OGC API - Processes on a Slurm supercomputer: run container and CWL workflows "
        "through a standard web API.",
        links=[
            *self_links(request, "/", "landing page"),
            Link(href=f"{base}/api", rel="service-desc", type=OPENAPI_JSON, title="the API definition"),
            Link(href=f"{base}/api.html", rel="service-doc", type=HTML, title="the API documentation"),
            Link(href=f"{base}/conformance", rel=f"{REL_OGC}/conformance", type=JSON,
                 title="conformance classes"),
            Link(href=f"{base}/processes", rel=f"{REL_OGC}/processes", type=JSON, title="processes"),
            Link(href=f"{base}/jobs", rel=f"{REL_OGC}/job-list", type=JSON, title="jobs"),
        ],
    )
    return respond(request, page.wire(), "landing.html")


def conformance_classes(app: web.Application) -> list[str]:
    return [*CONFORMANCE, *app.get(EXTRA_CONFORMANCE, [])]


EXTRA_CONFORMANCE: web.AppKey[list[str]] = web.AppKey("extra_conformance")


@routes.get("/conformance")
async def conformance(request: web.Request) -> web.Response:
    return respond(request, ConfClasses(conformsTo=conformance_classes(request.app)).wire(), "conformance.html")


@routes.get("/api")
async def api(request: web.Request) -> web.Response:
    if request.query.get("f") == "html":
        raise web.HTTPFound("/api.html")
    doc = openapi_document(request.app, base_url(request))
    return web.Response(text=json.dumps(doc), headers={"Content-Type": f"{OPENAPI_JSON}; charset=utf-8"})


SWAGGER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} — API</title>
<link rel="stylesheet" href="api.html/static/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="api.html/static/swagger-ui-bundle.js"></script>
<script src="api.html/static/swagger-ui-standalone-preset.js"></script>
<script src="api.html/static/hpgc-swagger.js"></script>
</body></html>
"""

# Relative URLs: behind a proxy that mounts hpgc under a path prefix they still point at hpgc.
SWAGGER_INIT = """window.onload = function () {
  var here = window.location.href.replace(/api\\.html.*$/, "");
  window.ui = SwaggerUIBundle({
    url: here + "api", dom_id: "#swagger-ui", deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout", persistAuthorization: true,
    oauth2RedirectUrl: here + "api.html/static/oauth2-redirect.html"
  });
  var clientId = %s;
  if (clientId) { window.ui.initOAuth({clientId: clientId, usePkceWithAuthorizationCodeGrant: true}); }
};
"""


@routes.get("/api.html")
async def api_html(request: web.Request) -> web.Response:
    return web.Response(text=SWAGGER_PAGE.format(title=request.app[SETTINGS].title), content_type=HTML)


@routes.get("/api.html/static/hpgc-swagger.js")
async def swagger_init(request: web.Request) -> web.Response:
    client_id = request.app[SETTINGS].auth.swagger_client_id
    return web.Response(text=SWAGGER_INIT % json.dumps(client_id), content_type="application/javascript")


routes.static("/api.html/static", SWAGGER_DIR)
