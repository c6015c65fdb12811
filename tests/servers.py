"""Servers the tests start on 127.0.0.1 and stop in their teardown (no network beyond the machine).

`s3_store()`: moto in server mode (the `moto[server]` dev dependency), which speaks the S3 HTTP
protocol as AWS, MinIO or Ceph do; a bucket of its own per use. The environment it gives
(`S3Store.env`) is the standard AWS one every client here reads (PyArrow's S3FileSystem, Polars,
boto3): a process started with it (a Celery worker, the CLI) finds the same store.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs
import pytest

START_TIMEOUT_S = 30


def stop_session(proc: subprocess.Popen, first: int = signal.SIGTERM, wait_s: float = 15) -> None:
    """Stop a process started in a session of its own (`start_new_session=True`) and every process
    of that session, nothing else: `first` (SIGTERM; PostgreSQL's fast shutdown is SIGINT), then
    SIGKILL if it is not down within `wait_s`."""
    for sig, wait in ((first, wait_s), (signal.SIGKILL, 5)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def install_debian_package(package: str) -> None:
    """`apt-get install` a Debian package a test needs and the machine lacks (the test machine is
    root), `apt-get update` first if the install fails; skip the test, saying why, when that
    cannot be done here."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(f"{package} missing and cannot be installed here (needs root and apt-get): "
                    f"apt-get install -y {package}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", package]
    if subprocess.run(install, env=env, capture_output=True, timeout=900, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600, check=False)
        proc = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900, check=False)
        if proc.returncode != 0:
            pytest.skip(f"apt-get install -y {package} failed: {proc.stderr.strip()[-500:]}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class S3Store:
    endpoint: str  # http://127.0.0.1:PORT
    bucket: str

    @property
    def env(self) -> dict[str, str]:
        """The AWS variables that point every client at this server (plain HTTP, test credentials)."""
        return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": self.endpoint, "AWS_ALLOW_HTTP": "true",
                "AWS_EC2_METADATA_DISABLED": "true"}

    def uri(self, prefix: str = "lake") -> str:
        return f"s3://{self.bucket}/{prefix}"

    def fs(self) -> pafs.S3FileSystem:
        return s3_filesystem(self.endpoint)

    def keys(self, prefix: str = "") -> list[str]:
        """Every key of the bucket under `prefix` (relative to the bucket), sorted."""
        infos = self.fs().get_file_info(pafs.FileSelector(f"{self.bucket}/{prefix}".rstrip("/"), recursive=True,
                                                          allow_not_found=True))
        return sorted(i.path.removeprefix(f"{self.bucket}/") for i in infos if i.type == pafs.FileType.File)


def s3_filesystem(endpoint: str) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(access_key="testing", secret_key="testing", region="us-east-1",
                             endpoint_override=endpoint, allow_bucket_creation=True)


@contextmanager
def moto_server(log: "Path | None" = None, cpus: str | None = None) -> Iterator[str]:
    """A moto S3 server (`python -m moto.server`, its own process and session) on 127.0.0.1 at
    a free port; its endpoint. Stopped on exit. `log`: a file its request log (one line per HTTP
    request: method, path and query, status) is appended to; `cpus`: pinned to these CPUs
    (`taskset -c`, e.g. `1`)."""
    port = free_port()
    cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115 (closed below)
    proc = subprocess.Popen((["taskset", "-c", cpus] if cpus else []) + cmd, stdout=out, stderr=out,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start on 127.0.0.1:{port} (exit {proc.poll()}); "
                                       "install the dev dependencies: pip install -e .[dev]") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_session(proc, wait_s=30)
        if log is not None:
            out.close()


def new_bucket(endpoint: str) -> S3Store:
    store = S3Store(endpoint, f"inferledger-{uuid.uuid4().hex[:12]}")
    store.fs().create_dir(store.bucket)
    return store


@contextmanager
def s3_store() -> Iterator[S3Store]:
    """A moto server with one new bucket, and this process's environment pointing at it
    (restored on exit)."""
    with moto_server() as endpoint:
        store = new_bucket(endpoint)
        saved = {k: os.environ.get(k) for k in store.env}
        os.environ.update(store.env)
        try:
            yield store
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
