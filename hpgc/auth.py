"""Who is calling: bearer tokens → Principal. (Placeholder until OAuth2 lands: everyone is anonymous.)"""

from __future__ import annotations

from pydantic import BaseModel, Field


class AuthSettings(BaseModel):
    enabled: bool = Field(default=False, description="Require bearer tokens on protected routes.")


class Principal(BaseModel):
    subject: str
    name: str | None = None
    unix_user: str | None = None
    can_execute: bool = True
    can_deploy: bool = True
    is_admin: bool = False


ANONYMOUS = Principal(subject="anonymous", is_admin=True)
