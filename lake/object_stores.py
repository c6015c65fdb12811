"""Which object stores the lake speaks, and how each one's client is made from that store's own
standard environment variables (docs/deploy.md, "The lake on object storage").

    s3://bucket/prefix      AWS S3, or MinIO, Ceph, moto... at AWS_ENDPOINT_URL (tested on moto)
    az://container/prefix   Azure Blob Storage, or Azurite (tested on Azurite)

Both go through the same `lake.objects.ObjectLake`; only the PyArrow file system differs (listings,
small JSON objects, uploads, downloads), and Polars (the Parquet reads and writes) finds the same
store from the same variables. `gs://` is refused: no GCS server could be run here to test it
(`REFUSED`), and GCS speaks the S3 protocol (its XML API with HMAC keys), through `s3://`.

Variables read, as each store's own tools read them:

- s3: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`... read by
  PyArrow's `S3FileSystem` (`FileSystem.from_uri`) and by Polars themselves.
- az: `AZURE_STORAGE_CONNECTION_STRING` (its `AccountName`, `AccountKey`, `BlobEndpoint`,
  `DefaultEndpointsProtocol`, `EndpointSuffix`; or `UseDevelopmentStorage=true`: Azurite's
  defaults), else `AZURE_STORAGE_ACCOUNT_NAME` and `AZURE_STORAGE_ACCOUNT_KEY` (no key: Azure's
  default credential, a managed or workload identity), and `AZURE_STORAGE_ENDPOINT` for a blob
  endpoint other than `https://<account>.blob.core.windows.net` (Azurite:
  `http://127.0.0.1:10000/devstoreaccount1`). PyArrow's `AzureFileSystem` is given them here;
  Polars (object_store) reads `AZURE_STORAGE_ACCOUNT_NAME`, `_ACCOUNT_KEY`, `_ENDPOINT` and
  `AZURE_ALLOW_HTTP` from the environment, and does not read a connection string: `azure_filesystem`
  sets those four from it, where the environment does not set them already.
"""

import os
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.fs as pafs
import pyarrow.parquet as pq

# Azurite's well-known development account (public, the same in every Azurite:
# https://learn.microsoft.com/azure/storage/common/storage-use-azurite).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURITE_ENDPOINT = f"http://127.0.0.1:10000/{AZURITE_ACCOUNT}"

# What to check when the store refuses or cannot be reached, per scheme.
FIX = {
    "s3": "check the object store (its endpoint, bucket and credentials: AWS_* variables)",
    "az": "check the object store (its endpoint, container and credentials: AZURE_STORAGE_* variables)",
}
# Schemes refused with their reason and what to write instead.
REFUSED = {
    "gs": "gs:// (Google Cloud Storage) is not supported: it could not be tested here (no GCS emulator "
          "installable); reach GCS through its S3-compatible XML API instead: s3://bucket/prefix with "
          "AWS_ENDPOINT_URL=https://storage.googleapis.com and an HMAC key as AWS_ACCESS_KEY_ID / "
          "AWS_SECRET_ACCESS_KEY (docs/deploy.md), or use s3:// or az://",
}


class StoreConfigError(ValueError):
    """The environment does not say how to reach the store; the message names the variables."""


@dataclass(frozen=True)
class AzureAccount:
    """An Azure storage account as the environment names it."""

    name: str
    key: str | None
    endpoint: str | None  # the blob endpoint URL; None: https://<name>.blob.core.windows.net


def parse_connection_string(text: str) -> dict[str, str]:
    """`Key=Value;Key=Value;...` (values may hold `=`, as base64 keys do) as a dict."""
    pairs = [part.split("=", 1) for part in text.split(";") if part.strip()]
    if any(len(p) != 2 for p in pairs):
        raise StoreConfigError("AZURE_STORAGE_CONNECTION_STRING: write `Key=Value` pairs separated by `;` "
                               "(as the Azure portal gives it, e.g. DefaultEndpointsProtocol=https;AccountName=...;"
                               "AccountKey=...;EndpointSuffix=core.windows.net)")
    return {k.strip(): v.strip() for k, v in pairs}


def azure_account(environ: "MutableMapping[str, str]") -> AzureAccount:
    """The account of AZURE_STORAGE_CONNECTION_STRING, else of AZURE_STORAGE_ACCOUNT_NAME / _KEY /
    _ENDPOINT."""
    text = environ.get("AZURE_STORAGE_CONNECTION_STRING")
    if text:
        cs = parse_connection_string(text)
        if cs.get("UseDevelopmentStorage", "").lower() == "true":
            return AzureAccount(AZURITE_ACCOUNT, AZURITE_KEY, cs.get("DevelopmentStorageProxyUri") or AZURITE_ENDPOINT)
        if not cs.get("AccountName"):
            raise StoreConfigError("AZURE_STORAGE_CONNECTION_STRING names no AccountName: copy the whole string "
                                   "from the storage account's access keys")
        endpoint = cs.get("BlobEndpoint")
        if not endpoint and "EndpointSuffix" in cs:
            endpoint = (f"{cs.get('DefaultEndpointsProtocol', 'https')}://{cs['AccountName']}.blob."
                        f"{cs['EndpointSuffix']}")
        return AzureAccount(cs["AccountName"], cs.get("AccountKey"), endpoint)
    name = environ.get("AZURE_STORAGE_ACCOUNT_NAME")
    if not name:
        raise StoreConfigError("the lake is on Azure Blob Storage (az://) but neither AZURE_STORAGE_CONNECTION_STRING "
                               "nor AZURE_STORAGE_ACCOUNT_NAME is set: set one (with AZURE_STORAGE_ACCOUNT_KEY, "
                               "unless the machine has a managed identity) in every process's environment")
    return AzureAccount(name, environ.get("AZURE_STORAGE_ACCOUNT_KEY") or None,
                        environ.get("AZURE_STORAGE_ENDPOINT") or None)


def _blob_authority(account: AzureAccount) -> tuple[str, str] | None:
    """(scheme, authority) of the blob endpoint for PyArrow: `.<suffix>` for the account's own host
    (`https://acc.blob.core.windows.net`), `host:port` for a path-style one
    (`http://127.0.0.1:10000/acc`, Azurite); None for Azure's default."""
    if account.endpoint is None:
        return None
    url = urlsplit(account.endpoint)
    path = url.path.strip("/")
    if url.scheme not in ("http", "https") or not url.netloc:
        raise StoreConfigError(f"blob endpoint {account.endpoint}: write an http(s) URL, e.g. "
                               f"https://{account.name}.blob.core.windows.net or {AZURITE_ENDPOINT}")
    if path == account.name:
        return url.scheme, url.netloc
    if not path and url.netloc.startswith(f"{account.name}."):
        return url.scheme, url.netloc[len(account.name):]
    raise StoreConfigError(f"blob endpoint {account.endpoint} is not account {account.name}'s: write "
                           f"https://{account.name}.<host> or <scheme>://<host:port>/{account.name}")


def azure_filesystem(environ: "MutableMapping[str, str] | None" = None) -> pafs.AzureFileSystem:
    """PyArrow's AzureFileSystem on the environment's account; the variables Polars reads set from
    a connection string where the environment lacks them (an operator's own values win)."""
    environ = os.environ if environ is None else environ
    account = azure_account(environ)
    options: dict[str, str] = {"account_name": account.name}
    if account.key:
        options["account_key"] = account.key
    if (endpoint := _blob_authority(account)) is not None:
        scheme, authority = endpoint
        options.update(blob_storage_scheme=scheme, blob_storage_authority=authority,
                       dfs_storage_scheme=scheme, dfs_storage_authority=authority.replace(".blob.", ".dfs.", 1))
    derived = {"AZURE_STORAGE_ACCOUNT_NAME": account.name, "AZURE_STORAGE_ACCOUNT_KEY": account.key,
               "AZURE_STORAGE_ENDPOINT": account.endpoint,
               "AZURE_ALLOW_HTTP": "true" if (account.endpoint or "").startswith("http://") else None}
    for var, value in derived.items():
        if value is not None:
            environ.setdefault(var, value)
    return pafs.AzureFileSystem(**options)


def filesystem(root: str, environ: "MutableMapping[str, str] | None" = None) -> pafs.FileSystem:
    """The PyArrow file system of the lake at `root` (`s3://...` or `az://...`)."""
    scheme = root.split("://", 1)[0]
    if scheme in REFUSED:
        raise StoreConfigError(f"lake {root}: {REFUSED[scheme]}")
    if scheme == "az":
        return azure_filesystem(environ)
    if scheme == "s3":
        return pafs.FileSystem.from_uri(root)[0]
    raise StoreConfigError(f"lake {root}: no object store speaks {scheme}:// here; use s3:// or az://")


def parquet_metadata(path: "Path | str") -> pq.FileMetaData:
    """A Parquet file's footer, the file local or on a store. PyArrow's own URIs (`s3://`, a path)
    as PyArrow opens them; `az://` (a name PyArrow's `from_uri` does not know: it says `abfs://`)
    through the environment's AzureFileSystem."""
    text = str(path)
    if text.startswith("az://"):
        with azure_filesystem().open_input_file(text.removeprefix("az://")) as f:
            return pq.ParquetFile(f).metadata
    return pq.ParquetFile(path).metadata
