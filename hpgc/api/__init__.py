"""The HTTP layer: routes, middlewares, content negotiation, OpenAPI. No business logic lives here."""
