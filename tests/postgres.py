"""A real PostgreSQL server for tests: Debian's `postgresql` package, started on 127.0.0.1 and a
free port in a temporary directory, stopped (and its directory removed) at teardown.

    def test_x(postgres_server):            # the session's server (tests/conftest.py loads this plugin)
        env = postgres_server.dagster_env   # DAGSTER_PG_HOST/PORT/DB/USER/PASSWORD of deploy/dagster.yaml

The binaries are Debian's (`/usr/lib/postgresql/<version>/bin`); when missing, a root user with
apt-get installs `postgresql` (as tests/test_report.py installs Chromium), anyone else skips
saying so. `initdb` refuses to run as root: as root the cluster belongs to the `postgres` user
(the package creates it; `nobody` otherwise) and every server command runs as that user
(`runuser`). The data directory is on tmpfs where there is one, with `fsync` off: a test server,
its data thrown away. Password authentication (scram-sha-256) over TCP only, no Unix socket in a
shared directory.
"""

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest

from tests.servers import free_port, install_debian_package, stop_session

DEBIAN_BIN = Path("/usr/lib/postgresql")
START_TIMEOUT_S = 30
DATABASE = "dagster"
USER = "inferledger"


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    database: str
    data_dir: Path

    @property
    def dagster_env(self) -> dict[str, str]:
        """The variables deploy/dagster.yaml reads its Postgres connection from."""
        return {"DAGSTER_PG_HOST": self.host, "DAGSTER_PG_PORT": str(self.port), "DAGSTER_PG_DB": self.database,
                "DAGSTER_PG_USER": self.user, "DAGSTER_PG_PASSWORD": self.password}

    def connect(self, database: str | None = None):
        return psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                                dbname=database or self.database, connect_timeout=5)


def _bin_dir() -> Path | None:
    """The newest Debian PostgreSQL's bin directory that has `initdb` and `postgres`."""
    found = sorted((d / "bin" for d in DEBIAN_BIN.glob("*") if d.name.isdigit()), key=lambda p: int(p.parent.name))
    found = [b for b in found if (b / "initdb").exists() and (b / "postgres").exists()]
    return found[-1] if found else None


def postgres_binaries() -> Path:
    """Debian's PostgreSQL binaries, installed with apt-get when missing and allowed; else skip."""
    if (found := _bin_dir()) is not None:
        return found
    install_debian_package("postgresql")  # or skip, saying why
    if (found := _bin_dir()) is None:
        pytest.skip(f"apt-get installed postgresql but no {DEBIAN_BIN}/<version>/bin/initdb was found")
    return found


def _as_server_user() -> tuple[list[str], int | None]:
    """The command prefix that runs a server command as an unprivileged user, and that user's id
    (None: the current, unprivileged, user)."""
    if os.geteuid() != 0:
        return [], None
    if not shutil.which("runuser"):
        pytest.skip("running as root without `runuser` (util-linux): initdb refuses root, and there is no way "
                    "here to run it as another user")
    for name in ("postgres", "nobody"):
        try:
            return ["runuser", "-u", name, "--"], pwd.getpwnam(name).pw_uid
        except KeyError:
            continue
    pytest.skip("running as root and neither the `postgres` nor the `nobody` user exists to own the cluster")


@contextmanager
def start_postgres(database: str = DATABASE) -> Iterator[PostgresServer]:
    """Start a server, create `database` owned by the test user, yield it; stop it and remove its
    directory on exit."""
    bin_dir = postgres_binaries()
    prefix, uid = _as_server_user()
    shm = Path("/dev/shm")
    base = Path(tempfile.mkdtemp(prefix="inferledger-pg-", dir=shm if os.access(shm, os.W_OK) else None))
    data, log = base / "data", base / "postgres.log"
    password = secrets.token_hex(16)
    pwfile = base / "pwfile"
    pwfile.write_text(password + "\n")
    proc = None
    try:
        if uid is not None:
            os.chown(base, uid, -1)
            os.chown(pwfile, uid, -1)
        base.chmod(0o700)
        init = subprocess.run([*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={pwfile}",
                               "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync"],
                              capture_output=True, text=True, timeout=120, check=False)
        if init.returncode != 0:
            pytest.fail(f"initdb failed ({' '.join(prefix) or 'current user'}): {init.stderr.strip()[-1500:]}")
        port = free_port()
        with open(log, "wb") as out:
            # A session of its own: teardown stops the server and its children, nothing else.
            proc = subprocess.Popen(
                [*prefix, str(bin_dir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port),
                 "-k", "", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                 "-c", "max_connections=200"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        server = PostgresServer("127.0.0.1", port, USER, password, database, data)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                con = server.connect("postgres")
                break
            except psycopg2.OperationalError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"PostgreSQL did not start within {START_TIMEOUT_S} s:\n"
                                f"{log.read_text(errors='replace')[-3000:]}")
                time.sleep(0.2)
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{database}"')
        con.close()
        yield server
    finally:
        if proc is not None:
            stop_session(proc, signal.SIGINT)  # PostgreSQL's "fast shutdown"; SIGKILL if it does not come down
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the test session (per xdist worker)."""
    with start_postgres() as server:
        yield server
