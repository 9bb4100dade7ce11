"""The store's bytes in an S3-compatible bucket: `s3://BUCKET/PREFIX`.

The same keys as a local mirror, under PREFIX.  Endpoint, region and
credentials come the way the AWS tools find them (AWS_ENDPOINT_URL,
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws/config), and
never appear in a message.

What object storage changes:
  * a PUT is atomic, so there is no tmp/ in the bucket (uploads are staged in
    the local cache); large files go up as multipart uploads and come down as
    a stream, 16 MiB at a time, never whole in memory;
  * a ref moves by a conditional PUT (If-Match: <etag>, or If-None-Match: * for
    a new ref), so writers on many machines race safely without a lock server;
  * the reflog cannot be appended to: each line is an object of its own under
    logs/reflog.jsonl.d/, named by time, and read back in name order.
"""
from __future__ import annotations

import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO, Iterator
from urllib.parse import urlparse

from ..errors import ExpectedError
from .backend import Entry, NotFound

PART = 16 << 20
MISSING_CODES = {"NoSuchKey", "404", "NotFound"}
CONFLICT_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


class StorageError(ExpectedError):
    """The bucket cannot be reached or refused a request."""


class S3Backend:
    remote = True

    def __init__(self, bucket: str, prefix: str):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.location = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.requests = 0                      # every HTTP request sent (benchmarks report it)
        self._count_lock = threading.Lock()
        self.client = _client()
        self.client.meta.events.register("before-send.s3", self._count)
        from boto3.s3.transfer import TransferConfig
        self._transfer = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART,
                                        max_concurrency=4, use_threads=True)

    @classmethod
    def from_url(cls, url: str) -> "S3Backend":
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise StorageError(f"bad mirror location {url!r}: use s3://BUCKET/PREFIX")
        return cls(parsed.netloc, parsed.path)

    def _count(self, **_) -> None:
        with self._count_lock:
            self.requests += 1

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _rel(self, full: str) -> str:
        return full[len(self.prefix) + 1:] if self.prefix else full

    def local_path(self, key: str):
        raise StorageError(f"{self.location} is not on a local disk")

    # -- reading -----------------------------------------------------------
    def stat(self, key: str) -> Entry | None:
        try:
            r = self._call(self.client.head_object, Bucket=self.bucket, Key=self._key(key))
        except NotFound:
            return None
        return Entry(key, r["ContentLength"], r["LastModified"].timestamp())

    def read(self, key: str) -> bytes:
        body = self._call(self.client.get_object, Bucket=self.bucket, Key=self._key(key))["Body"]
        with body:
            return body.read()

    def read_head(self, key: str, n: int) -> tuple[bytes, int]:
        try:
            r = self._call(self.client.get_object, Bucket=self.bucket, Key=self._key(key),
                           Range=f"bytes=0-{n - 1}")
        except StorageError as e:
            if "InvalidRange" in str(e):       # an empty object has no byte 0
                return b"", 0
            raise
        with r["Body"] as body:
            data = body.read()
        total = r.get("ContentRange", "").rpartition("/")[2]
        return data, int(total) if total.isdigit() else r["ContentLength"]

    def reader(self, key: str) -> BinaryIO:
        return self._call(self.client.get_object, Bucket=self.bucket, Key=self._key(key))["Body"]

    def list(self, prefix: str) -> Iterator[Entry]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key(prefix))
        try:
            for page in pages:
                for item in page.get("Contents", ()):
                    yield Entry(self._rel(item["Key"]), item["Size"], item["LastModified"].timestamp())
        except Exception as e:      # botocore raises while paging
            raise _storage_error(self.location, e) from None

    # -- writing -----------------------------------------------------------
    def put_file(self, key: str, path: str | os.PathLike) -> None:
        try:
            self.client.upload_file(os.fspath(path), self.bucket, self._key(key), Config=self._transfer)
        except Exception as e:
            raise _storage_error(self.location, e) from None
        finally:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def put_bytes(self, key: str, data: bytes, if_absent: bool = False) -> bool:
        extra = {"IfNoneMatch": "*"} if if_absent else {}
        try:
            self._call(self.client.put_object, Bucket=self.bucket, Key=self._key(key), Body=data, **extra)
        except _Conflict:
            return False
        return True

    def delete(self, key: str) -> None:
        try:
            self._call(self.client.delete_object, Bucket=self.bucket, Key=self._key(key))
        except NotFound:
            pass

    def move(self, key: str, dest: str) -> bool:
        try:
            self.client.copy({"Bucket": self.bucket, "Key": self._key(key)}, self.bucket, self._key(dest),
                             Config=self._transfer)
        except Exception as e:
            if _code(e) in MISSING_CODES:
                return False
            raise _storage_error(self.location, e) from None
        self.delete(key)
        return True

    def touch(self, key: str) -> None:
        # Rewriting an object to freshen its time costs a copy; a concurrent gc is kept
        # away by the lock instead (store/remote_lock.py), so this is nothing.
        return None

    # -- refs: compare-and-swap by conditional PUT ---------------------------
    def load(self, key: str) -> tuple[bytes | None, str | None]:
        try:
            r = self._call(self.client.get_object, Bucket=self.bucket, Key=self._key(key))
        except NotFound:
            return None, None
        with r["Body"] as body:
            return body.read(), r["ETag"]

    def swap(self, key: str, data: bytes, version: str | None) -> bool:
        cond = {"IfMatch": version} if version else {"IfNoneMatch": "*"}
        try:
            self._call(self.client.put_object, Bucket=self.bucket, Key=self._key(key), Body=data, **cond)
        except (_Conflict, NotFound):
            return False
        return True

    # -- the reflog: one object per line -------------------------------------
    def append(self, key: str, line: bytes) -> None:
        name = f"{key}.d/{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"
        self.put_bytes(name, line, if_absent=True)

    def lines(self, key: str) -> Iterator[bytes]:
        keys = [e.key for e in self.list(f"{key}.d/")]
        with ThreadPoolExecutor(8) as pool:
            for data in pool.map(self._read_or_empty, keys):
                yield data if data.endswith(b"\n") else data + b"\n"

    def _read_or_empty(self, key: str) -> bytes:
        try:
            return self.read(key)
        except NotFound:
            return b""

    # -- errors ----------------------------------------------------------------
    def _call(self, fn, **kwargs):
        try:
            return fn(**kwargs)
        except Exception as e:
            code = _code(e)
            if code in MISSING_CODES:
                raise NotFound(kwargs.get("Key", "")) from None
            if code in CONFLICT_CODES:
                raise _Conflict() from None
            raise _storage_error(self.location, e) from None


class _Conflict(Exception):
    pass


def _code(e: Exception) -> str:
    response = getattr(e, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _storage_error(location: str, e: Exception) -> StorageError:
    text = " ".join(str(e).split()) or type(e).__name__
    return StorageError(f"object storage {location}: {text}")


def _client():
    import boto3
    from botocore.config import Config
    session = boto3.session.Session()
    region = session.region_name or "us-east-1"
    config = Config(max_pool_connections=32, retries={"mode": "standard", "max_attempts": 5})
    client = session.client("s3", region_name=region, config=config)
    if "amazonaws.com" not in client.meta.endpoint_url:
        # A self-hosted endpoint (MinIO, Ceph, moto...) rarely has a DNS name per bucket.
        client = session.client("s3", region_name=region,
                                config=config.merge(Config(s3={"addressing_style": "path"})))
    return client
