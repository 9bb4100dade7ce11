"""boto3 against obstore on the same S3 server: many small objects and one large one.

    pip install obstore        # not a dependency: only this comparison needs it
    python bench/bench_s3_clients.py [--small 1000] [--small-kb 4] [--large-mb 64] [--no-write]

Starts moto's S3 server on loopback (bench_store_s3.start_moto), then with each client: PUT
`--small` objects of `--small-kb` KiB one after another and then 8 at a time, GET them back the
same two ways, and PUT / GET one `--large-mb` MiB object (boto3: its managed multipart transfer;
obstore: its own). The server is the same for both, so the figures compare what each client adds
per request; a real store's latency would dominate both. Prints a table and writes it to the
"s3-clients" section of docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_store_s3 import start_moto  # noqa: E402
from bench.report import write_section  # noqa: E402

CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing-secret", "region_name": "us-east-1"}


class Boto3Client:
    name = "boto3"

    def __init__(self, endpoint: str, bucket: str):
        import boto3
        from boto3.s3.transfer import TransferConfig
        self.s3 = boto3.client("s3", endpoint_url=endpoint, **CREDS)
        self.bucket = bucket
        self.transfer = TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20)

    def put(self, key: str, data: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)

    def get(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def put_file(self, key: str, path: str) -> None:
        self.s3.upload_file(path, self.bucket, key, Config=self.transfer)

    def get_file(self, key: str, path: str) -> None:
        self.s3.download_file(self.bucket, key, path, Config=self.transfer)


class ObstoreClient:
    name = "obstore"

    def __init__(self, endpoint: str, bucket: str):
        from obstore.store import S3Store
        self.store = S3Store(bucket, endpoint=endpoint, access_key_id=CREDS["aws_access_key_id"],
                             secret_access_key=CREDS["aws_secret_access_key"], region=CREDS["region_name"],
                             client_options={"allow_http": True})

    def put(self, key: str, data: bytes) -> None:
        import obstore
        obstore.put(self.store, key, data)

    def get(self, key: str) -> bytes:
        import obstore
        return bytes(obstore.get(self.store, key).bytes())

    def put_file(self, key: str, path: str) -> None:
        import obstore
        with open(path, "rb") as f:
            obstore.put(self.store, key, f, chunk_size=8 << 20)

    def get_file(self, key: str, path: str) -> None:
        import obstore
        with open(path, "wb") as out:
            for chunk in obstore.get(self.store, key):
                out.write(chunk)


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def measure(client, n: int, size: int, large: str, work: Path) -> dict:
    blobs = [os.urandom(size) for _ in range(n)]
    keys = [f"small/{i:05d}" for i in range(n)]
    out = {}
    out["put serial"] = timed(lambda: [client.put(k, b) for k, b in zip(keys, blobs)])
    with cf.ThreadPoolExecutor(8) as pool:
        out["put 8 threads"] = timed(lambda: list(pool.map(client.put, [k + "p" for k in keys], blobs)))
        got = []
        out["get serial"] = timed(lambda: got.extend(client.get(k) for k in keys))
        assert got == blobs, "a small object came back different"
        out["get 8 threads"] = timed(lambda: list(pool.map(client.get, keys)))
    out["put large"] = timed(lambda: client.put_file("large", large))
    back = str(work / f"back-{client.name}")
    out["get large"] = timed(lambda: client.get_file("large", back))
    assert os.path.getsize(back) == os.path.getsize(large)
    os.unlink(back)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--small-kb", type=int, default=4)
    ap.add_argument("--large-mb", type=int, default=64)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    try:
        import obstore  # noqa: F401
    except ImportError:
        raise SystemExit("obstore is not installed (pip install obstore): this comparison needs it")
    import tempfile
    moto, endpoint = start_moto()
    work = Path(tempfile.mkdtemp(prefix="bench-s3-clients-"))
    large = str(work / "large.bin")
    with open(large, "wb") as f:
        for _ in range(args.large_mb):
            f.write(os.urandom(1 << 20))
    results = {}
    try:
        import boto3
        for cls in (Boto3Client, ObstoreClient):
            bucket = f"clients-{uuid.uuid4().hex[:8]}"
            boto3.client("s3", endpoint_url=endpoint, **CREDS).create_bucket(Bucket=bucket)
            results[cls.name] = measure(cls(endpoint, bucket), args.small, args.small_kb << 10, large, work)
    finally:
        moto.kill()
        moto.wait()
        for p in work.iterdir():
            p.unlink()
        work.rmdir()
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    small = f"{args.small:,} objects of {args.small_kb} KiB"
    lines = [f"`python bench/bench_s3_clients.py`: the same moto S3 server on loopback (its own process), "
             f"each client in turn; {small}, one object of {args.large_mb} MiB; load average {load} at the end.",
             "", "| operation | boto3 s | obstore s |", "|---|---:|---:|"]
    for op in results["boto3"]:
        what = f"{op} ({small})" if "large" not in op else f"{op} ({args.large_mb} MiB)"
        lines.append(f"| {what} | {results['boto3'][op]:.2f} | {results['obstore'][op]:.2f} |")
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("s3-clients", "S3 clients: boto3 and obstore (`bench/bench_s3_clients.py`)", text)


if __name__ == "__main__":
    main()
