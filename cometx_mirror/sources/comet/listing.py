"""A project's experiments, page by page.

Comet's `GET experiments` takes `page` (from 1) and `size`; a project may hold up to
25,000 experiments, so the listing is read one page at a time and handed on as it
arrives, never held whole.  A server that ignores paging answers everything at once
(more rows than `size`), or the same rows again: keys already seen are dropped and a
page that brings nothing new ends the listing, so neither loops nor duplicates.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

PAGE_SIZE = 500


def _flag(value: bool) -> str:
    return "True" if value else "False"   # Comet reads Python-style booleans


def read_page(get: Callable[..., Any], workspace: str, project: str, archived: bool, page: int,
              size: int) -> list[dict]:
    """One page of the listing; `get(endpoint, **params)` is the reader's JSON GET."""
    return get("experiments", workspaceName=workspace, projectName=project, archived=_flag(archived),
               page=page, size=size).get("experiments", [])


def experiments(get: Callable[..., Any], workspace: str, project: str, archived: bool,
                first: list[dict] | None = None, size: int | None = None) -> Iterator[dict]:
    """Every experiment of the listing, page after page; `first` is page 1 when already read."""
    size = size or PAGE_SIZE
    seen: set[str] = set()
    page = 1
    rows = first if first is not None else read_page(get, workspace, project, archived, 1, size)
    while True:
        fresh = [e for e in rows if e.get("experimentKey") not in seen]
        for e in fresh:
            seen.add(e.get("experimentKey"))
            yield e
        if len(rows) != size or not fresh:
            return
        page += 1
        rows = read_page(get, workspace, project, archived, page, size)
