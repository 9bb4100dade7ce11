"""Progress on a terminal (rich), nothing otherwise."""
from __future__ import annotations

import threading


class Progress:
    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._lock = threading.Lock()
        self._bar = None
        self._task = None
        self._done = 0
        self._bytes = 0

    def __enter__(self) -> "Progress":
        if self.enabled:
            from rich.progress import Progress as Bar, SpinnerColumn, TextColumn, TimeElapsedColumn
            self._bar = Bar(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                            transient=True)
            self._bar.__enter__()
            self._task = self._bar.add_task("starting")
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def event(self, kind: str, **info) -> None:
        if self._bar is None:
            return
        with self._lock:
            self._done += 1
            self._bytes += info.get("bytes") or 0
            self._bar.update(self._task, description=f"{self._done} {kind}s, {self._bytes / 1e6:.1f} MB "
                                                      f"- {info.get('label', '')}")
