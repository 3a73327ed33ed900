"""The local backend: jobs as subprocesses on this machine, the embedded default (backend.py)."""
