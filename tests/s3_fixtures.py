"""A real S3-protocol server on loopback for object-store mirrors: moto's server.

Fixtures
    moto_s3      session-scoped ThreadedMotoServer on 127.0.0.1 (a free port); `.env` holds the
                 AWS_* variables that point boto3 (and a subprocess) at it, dummy credentials
    s3_env       function-scoped: os.environ pointed at moto_s3, a private mirror cache folder
    s3_url       function-scoped: s3://<a new bucket>/mirror, inside s3_env

moto implements If-Match / If-None-Match on PutObject but does not serialize concurrent
conditional writes; tests of many writers must not count on its arbitration.
"""
from __future__ import annotations

import uuid

import pytest


class MotoS3:
    def __init__(self):
        import logging
        from moto.server import ThreadedMotoServer
        logging.getLogger("werkzeug").setLevel(logging.ERROR)   # one line per request otherwise
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self.env = {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "testing",
                    "AWS_SECRET_ACCESS_KEY": "testing-secret", "AWS_DEFAULT_REGION": "us-east-1",
                    "AWS_EC2_METADATA_DISABLED": "true"}

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
        server.server.stop()


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
