"""Comet's REST v2 read endpoints, one method each, over the retrying client."""
from __future__ import annotations

from typing import Any, Callable, Iterator

from ...net.comet_auth import CometCredentials
from ...net.http import HttpClient, HttpError, NotJsonAnswer, RetryableBody
from ...store.objects import ObjectError, ObjectStore
from .. import SourceError
from . import shapes


def store_body(objects: ObjectStore, expected_size: int | None = None) -> Callable[[Iterator[bytes]], tuple[str, int]]:
    """A body consumer that streams a download into the store; a body of the wrong
    length is a transport fault, so it asks the client to fetch it again."""
    def consume(chunks: Iterator[bytes]) -> tuple[str, int]:
        try:
            return objects.put_stream(chunks, expected_size=expected_size)
        except ObjectError as e:
            raise RetryableBody(str(e)) from None
    return consume


def _flag(value: bool) -> str:
    return "True" if value else "False"   # Comet reads Python-style booleans


class CometReader:
    def __init__(self, creds: CometCredentials, pool_size: int = 16):
        self.creds = creds
        self.http = HttpClient(creds.rest_url, {"Authorization": creds.api_key},
                               pool_size=pool_size, redact=(creds.api_key,))

    @property
    def requests(self) -> int:
        return self.http.sent

    def get(self, endpoint: str, **params) -> Any:
        try:
            body = self.http.get_json(endpoint, params=params)
        except HttpError as e:
            raise self._explain(e) from None
        wrong = shapes.problem(endpoint, body)     # every JSON read passes here
        if wrong:
            raise shapes.not_comet(self.creds.shown_url, endpoint, wrong)
        return body

    def get_streamed(self, endpoint: str, consume: Callable[[Iterator[bytes]], Any], **params) -> Any:
        """`get` for an answer too large to hold parsed: `consume` reads its body in chunks (and
        checks its shape, see metric_answer) and returns the result."""
        try:
            return self.http.stream_json(endpoint, consume, params=params)
        except HttpError as e:
            raise self._explain(e) from None

    def _explain(self, e: HttpError) -> Exception:
        if isinstance(e, NotJsonAnswer):
            return shapes.not_comet(self.creds.shown_url, e.path, f"HTTP {e.status}, {e.content_type or 'not JSON'}")
        if e.status is None:
            return SourceError(f"cannot reach the Comet server at {self.creds.shown_url}: {e}")
        if e.status in (401, 403):
            return SourceError(f"the Comet server at {self.creds.shown_url} rejected the API key "
                               f"(HTTP {e.status})")
        return e

    # -- listings ----------------------------------------------------------
    def check_key(self) -> dict:
        return self.get("account-details")

    def workspaces(self) -> list[str]:
        return self.get("workspaces").get("workspaceNames", [])

    def projects(self, workspace: str) -> list[dict]:
        return self.get("projects", workspaceName=workspace).get("projects", [])

    def project(self, workspace: str, project: str) -> dict | None:
        try:
            return self.get("project", workspaceName=workspace, projectName=project)
        except HttpError as e:
            if e.status in (400, 404):
                return None
            raise

    def project_notes(self, project_id: str) -> dict:
        return self.get("project/notes", projectId=project_id)

    def experiments(self, workspace: str, project: str, archived: bool) -> list[dict]:
        return self.get("experiments", workspaceName=workspace, projectName=project,
                        archived=_flag(archived)).get("experiments", [])

    def experiment_metadata(self, key: str) -> dict | None:
        try:
            return self.get("experiment/metadata", experimentKey=key)
        except HttpError as e:
            if e.status in (400, 404):
                return None
            raise

    # -- one experiment ----------------------------------------------------
    def experiment_json(self, endpoint: str, key: str, **params) -> Any:
        return self.get(endpoint, experimentKey=key, **params)

    def experiment_bytes(self, endpoint: str, key: str) -> bytes:
        try:
            return self.http.get_bytes(endpoint, params={"experimentKey": key})
        except HttpError as e:
            raise self._explain(e) from None

    def stream_asset(self, consume: Callable[[Iterator[bytes]], Any], asset_id: str,
                     experiment_key: str | None = None, artifact_version_id: str | None = None) -> Any:
        params = {"assetId": asset_id, "allow301": "False"}
        if experiment_key:
            params["experimentKey"] = experiment_key
        if artifact_version_id:
            params["artifactVersionId"] = artifact_version_id
        try:
            return self.http.stream("experiment/asset/get-asset", consume, params=params)
        except HttpError as e:
            raise self._explain(e) from None

    def stream(self, endpoint: str, consume: Callable[[Iterator[bytes]], Any], **params) -> Any:
        try:
            return self.http.stream(endpoint, consume, params=params)
        except HttpError as e:
            raise self._explain(e) from None
