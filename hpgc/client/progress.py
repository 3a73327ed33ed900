"""A job's progress in a terminal: one bar redrawn in place on a TTY, one plain line per change otherwise."""

from __future__ import annotations

import shutil
import sys
import time
from datetime import UTC, datetime
from typing import TextIO

from hpgc.models.ogc import StatusInfo

BAR = 24


def elapsed(status: StatusInfo, now: datetime | None = None) -> str:
    """Time since the job started (or was created), as m:ss or h:mm:ss; its end when it ended."""
    start = status.started or status.created
    if start is None:
        return "-"
    end = status.finished if status.status.terminal and status.finished else now or datetime.now(UTC)
    seconds = max(0, int((end - start).total_seconds()))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def bar(percent: int | None, width: int = BAR) -> str:
    if percent is None:
        return "[" + " " * width + "]"
    filled = round(width * max(0, min(100, percent)) / 100)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def line(status: StatusInfo, with_bar: bool, now: datetime | None = None) -> str:
    percent = f"{status.progress:3d}%" if status.progress is not None else "   -"
    parts = [bar(status.progress)] if with_bar else []
    parts += [percent, f"{status.status.value:<10}", elapsed(status, now)]
    if status.message:
        parts.append(" ".join(status.message.split()))
    return "  ".join(parts)


class ProgressDisplay:
    """Give it every statusInfo seen (`update`), then `close()`. On a TTY the line is redrawn in place and
    cut to the terminal's width; elsewhere (a log, a pipe) each change is a line of its own, without a bar."""

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None, prefix: str = "") -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.prefix = prefix
        self._drawn = False
        self._last = ""
        self._started = time.monotonic()

    def update(self, status: StatusInfo) -> None:
        text = self.prefix + line(status, self.tty)
        if self.tty:
            width = shutil.get_terminal_size((100, 20)).columns - 1
            self.stream.write("\r\x1b[K" + text[:width])
            self._drawn = True
        elif text != self._last:
            self.stream.write(text + "\n")
        self._last = text
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
