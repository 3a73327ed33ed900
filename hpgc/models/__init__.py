"""Pydantic models of OGC API - Processes documents, application packages and run specs."""
