"""How often to ask a job's status: soon after a change, less and less while nothing happens, and never
sooner than the server asks (Retry-After)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass


@dataclass
class Backoff:
    first: float = 0.25
    factor: float = 1.5
    most: float = 5.0
    delay: float = 0.25

    def observe(self, changed: bool, retry_after: str | None = None) -> float:
        """The next delay: back to `first` after a change, else ×factor up to `most`; at least Retry-After."""
        self.delay = self.first if changed else min(self.most, self.delay * self.factor)
        if retry_after is not None:
            # an HTTP date (rare from hpgc) is ignored: the backoff alone is polite enough
            with contextlib.suppress(ValueError):
                self.delay = max(self.delay, min(float(retry_after), 300.0))
        return self.delay
