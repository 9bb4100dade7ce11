"""Progress of a fetch or a push, on stderr: a live line on a terminal, plain lines otherwise.

The library reports events (see FetchOptions.progress / PushOptions.progress):
    "project"     a project begins; `total` is how many experiments it lists, when known
    "plan"        `total` experiments are about to be pushed
    "experiment", "run"   one experiment is done; `bytes` it downloaded, when known
    anything else with a `label` (artifacts, models, panels, entities) counts as one item
Progress keeps the counts and shows them: experiments done / total and bytes.  When stderr
is not a terminal (a log file, CI), one line per project and a status line every few seconds
(COMETX_MIRROR_PROGRESS_SECONDS, 5 by default) keep a long run from looking hung; a run that
ends within those first seconds prints only its summary, so short runs keep a clean log.
"""
from __future__ import annotations

import os
import sys
import threading
import time

import click

EXPERIMENT_EVENTS = {"experiment", "run"}
QUIET_EVENTS = {"note", "error", "plan", "project"}
DEFAULT_SECONDS = 5.0


def _megabytes(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


class Counts:
    def __init__(self):
        self.done = 0
        self.total = 0           # 0 while no source told how many there are
        self.items = 0
        self.bytes = 0

    def line(self) -> str:
        done = f"{self.done:,}/{self.total:,}" if self.total >= self.done and self.total else f"{self.done:,}"
        text = f"{done} experiments, {_megabytes(self.bytes)}"
        return text + (f", {self.items:,} other items" if self.items else "")


class Progress:
    """One fetch or push's progress; `event` is the callback handed to the library."""

    def __init__(self, enabled: bool, verb: str = "fetch", live: bool = True, seconds: float = DEFAULT_SECONDS):
        self.enabled = enabled
        self.verb = verb
        self.live = live
        self.seconds = seconds
        self.counts = Counts()
        self._lock = threading.Lock()
        self._bar = None
        self._task = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._last_line = self._started = 0.0
        self._label = ""

    @classmethod
    def for_command(cls, verb: str, quiet: bool) -> "Progress":
        """Quiet: nothing.  A terminal: a live line.  Otherwise: plain lines now and then."""
        try:
            seconds = float(os.environ.get("COMETX_MIRROR_PROGRESS_SECONDS", DEFAULT_SECONDS))
        except ValueError:
            seconds = DEFAULT_SECONDS
        return cls(enabled=not quiet, verb=verb, live=sys.stderr.isatty(), seconds=max(0.0, seconds))

    def __enter__(self) -> "Progress":
        if not self.enabled:
            return self
        if self.live:
            from rich.progress import Progress as Bar, SpinnerColumn, TextColumn, TimeElapsedColumn
            self._bar = Bar(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                            transient=True)
            self._bar.__enter__()
            self._task = self._bar.add_task(f"{self.verb}: starting")
        else:
            self._started = self._last_line = time.monotonic()
            self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def event(self, kind: str, **info) -> None:
        if not self.enabled:
            return
        with self._lock:
            c = self.counts
            if kind in ("project", "plan"):
                c.total += int(info.get("total") or 0)
            elif kind in EXPERIMENT_EVENTS:
                c.done += 1
            elif kind not in QUIET_EVENTS and info.get("label"):
                c.items += 1
            c.bytes += int(info.get("bytes") or 0)
            self._label = str(info.get("label") or self._label)
            if self._bar is not None:
                self._bar.update(self._task, description=f"{self.verb}: {c.line()} - {self._label}")
                return
            if time.monotonic() - self._started < self.seconds:
                return                # the first seconds stay quiet
            if kind == "project":
                total = info.get("total")
                count = f" ({total:,} experiments)" if isinstance(total, int) else ""
                self._say(f"{self.verb}: project {info.get('label', '')}{count}; so far {c.line()}")
            elif time.monotonic() - self._last_line >= self.seconds:
                self._say(f"{self.verb}: {c.line()}")

    def _tick(self) -> None:
        # a status line even while nothing finishes (one big asset), so a log shows it is alive
        while not self._stop.wait(max(self.seconds, 0.2)):
            with self._lock:
                if time.monotonic() - self._last_line >= self.seconds:
                    self._say(f"{self.verb}: {self.counts.line()}")

    def _say(self, line: str) -> None:
        self._last_line = time.monotonic()
        click.echo(line, err=True)
