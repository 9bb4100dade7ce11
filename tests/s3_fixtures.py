"""A real S3-protocol server on loopback for object-store mirrors: moto's server.

Fixtures
    moto_s3      session-scoped moto server on 127.0.0.1 (a free port) in a process of its own,
                 as a real store is: in a thread of the test process it would share the GIL
                 with the code under test and slow both.  `.env` holds the AWS_* variables
                 that point boto3 (and a subprocess) at it, dummy credentials
    s3_env       function-scoped: os.environ pointed at moto_s3, a private mirror cache folder
    s3_url       function-scoped: s3://<a new bucket>/mirror, inside s3_env

moto implements If-Match / If-None-Match on PutObject but does not serialize concurrent
conditional writes; tests of many writers must not count on its arbitration.
"""
from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid

import pytest


class MotoS3:
    def __init__(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.endpoint = f"http://127.0.0.1:{port}"
        self._wait_until_up(port)
        self.env = {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "testing",
                    "AWS_SECRET_ACCESS_KEY": "testing-secret", "AWS_DEFAULT_REGION": "us-east-1",
                    "AWS_EC2_METADATA_DISABLED": "true"}

    def _wait_until_up(self, port: int, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto's server exited ({self.process.returncode})")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("moto's server did not start")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def client(self):
        import boto3
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing-secret")

    def new_bucket(self) -> str:
        name = f"mirror-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", ())]


@pytest.fixture(scope="session")
def moto_s3():
    server = MotoS3()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_env(moto_s3, monkeypatch, tmp_path):
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in moto_s3.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("COMETX_MIRROR_CACHE", str(tmp_path / "cache"))
    return moto_s3


@pytest.fixture
def s3_url(s3_env) -> str:
    return f"s3://{s3_env.new_bucket()}/mirror"
