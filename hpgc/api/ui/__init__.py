"""The web interface: browser sign-in with server-side sessions, and the pages scientists use (docs/ui.md)."""
