"""Azurite, Microsoft's Azure Storage emulator, serving Blob Storage on 127.0.0.1 for the lake on
`az://` (tests/test_lake_azure.py): its own process, in memory, no telemetry.

Azurite is an npm package (`azurite`, pinned below). It is installed once per machine into a cache
folder (`$XDG_CACHE_HOME/inferledger/azurite-<version>`, else `~/.cache/...`; `INFERLEDGER_AZURITE_DIR`
overrides) with `npm install --prefix`, into a temporary folder renamed into place when complete,
under a lock (two pytest workers install it once); later runs start it in about two seconds. Without
node and npm, or when the install fails (no registry), the test skips saying why.
"""

import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from lake.object_stores import AZURITE_ACCOUNT, AZURITE_KEY
from tests.servers import START_TIMEOUT_S, free_port

AZURITE_VERSION = "3.37.0"
INSTALL_TIMEOUT_S = 300  # about 70 s here; a registry out of reach fails sooner (the fetch options)


def azurite_dir() -> Path:
    if os.environ.get("INFERLEDGER_AZURITE_DIR"):
        return Path(os.environ["INFERLEDGER_AZURITE_DIR"])
    cache = Path(os.environ["XDG_CACHE_HOME"]) if os.environ.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return cache / "inferledger" / f"azurite-{AZURITE_VERSION}"


def azurite_blob() -> Path:
    """The `azurite-blob` launcher, installed first if missing (or the test skipped, saying why)."""
    home = azurite_dir()
    launcher = home / "node_modules" / ".bin" / "azurite-blob"
    if launcher.exists():
        return launcher
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Azurite needs node and npm (Debian: apt-get install nodejs npm); the az:// lake is untested here")
    home.parent.mkdir(parents=True, exist_ok=True)
    with open(home.parent / f".azurite-{AZURITE_VERSION}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be installing it
        if launcher.exists():
            return launcher
        tmp = Path(tempfile.mkdtemp(prefix=".azurite-", dir=home.parent))
        try:
            npm = ["npm", "install", "--prefix", str(tmp), f"azurite@{AZURITE_VERSION}", "--no-audit", "--no-fund",
                   "--loglevel=error", "--fetch-retries=2", "--fetch-timeout=60000"]
            done = subprocess.run(npm, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False)
            if done.returncode != 0 or not (tmp / "node_modules" / ".bin" / "azurite-blob").exists():
                pytest.skip(f"npm could not install azurite@{AZURITE_VERSION} (exit {done.returncode}): "
                            f"{done.stderr.strip()[-500:]}")
            tmp.rename(home)
        except subprocess.TimeoutExpired:
            pytest.skip(f"npm install azurite@{AZURITE_VERSION} took over {INSTALL_TIMEOUT_S} s")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return launcher


@dataclass(frozen=True)
class AzureStore:
    endpoint: str  # http://127.0.0.1:PORT/devstoreaccount1 (path-style, as Azurite serves)
    container: str

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
                f"BlobEndpoint={self.endpoint};")

    @property
    def env(self) -> dict[str, str]:
        """The one standard Azure variable that points every client at this account."""
        return {"AZURE_STORAGE_CONNECTION_STRING": self.connection_string}

    def uri(self, prefix: str = "lake") -> str:
        return f"az://{self.container}/{prefix}"

    def fs(self) -> pafs.AzureFileSystem:
        authority = self.endpoint.removeprefix("http://").split("/", 1)[0]
        return pafs.AzureFileSystem(account_name=AZURITE_ACCOUNT, account_key=AZURITE_KEY, blob_storage_scheme="http",
                                    blob_storage_authority=authority, dfs_storage_scheme="http",
                                    dfs_storage_authority=authority)

    def keys(self, prefix: str = "") -> list[str]:
        """Every blob of the container under `prefix` (relative to the container), sorted."""
        infos = self.fs().get_file_info(pafs.FileSelector(f"{self.container}/{prefix}".rstrip("/"), recursive=True,
                                                          allow_not_found=True))
        return sorted(i.path.removeprefix(f"{self.container}/") for i in infos if i.type == pafs.FileType.File)


def new_container(endpoint: str) -> AzureStore:
    store = AzureStore(endpoint, f"inferledger-{uuid.uuid4().hex[:12]}")
    store.fs().create_dir(store.container)
    return store


@contextmanager
def azurite_server() -> Iterator[str]:
    """Azurite's blob service on 127.0.0.1 at a free port, in memory; its blob endpoint. Stopped
    on exit."""
    launcher, port = azurite_blob(), free_port()
    with tempfile.TemporaryDirectory(prefix="azurite-") as work:
        log = Path(work) / "azurite.log"
        with open(log, "w") as out:
            proc = subprocess.Popen([str(launcher), "--blobHost", "127.0.0.1", "--blobPort", str(port),
                                     "--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck",
                                     "--loose", "--silent"],
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=work)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while "successfully listens" not in log.read_text():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Azurite did not start on 127.0.0.1:{port} (exit {proc.poll()}): "
                                       f"{log.read_text()[-1000:]}")
                time.sleep(0.1)
            yield f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
