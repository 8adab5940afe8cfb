"""Where model artifacts live: a filesystem by default, any S3-compatible store optionally.

Both implement ``ArtifactStore``; the registry and the chunked download only use
``put``, ``size`` and ``read`` (by byte range, so a gateway's resume costs nothing).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Protocol


class ArtifactStore(Protocol):
    def put(self, key: str, source: Path) -> str:
        """Store the file under ``key``; returns a URI for humans and logs."""
        ...

    def size(self, key: str) -> int: ...

    def read(self, key: str, offset: int, length: int) -> bytes: ...

    def exists(self, key: str) -> bool: ...


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"bad artifact key {key!r}")
    return key


class FilesystemArtifactStore:
    """Artifacts as files under ``root``; written to a temporary name, fsynced and renamed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def put(self, key: str, source: Path) -> str:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp")
        with source.open("rb") as src, tmp.open("wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
        return dest.resolve().as_uri()

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def read(self, key: str, offset: int, length: int) -> bytes:
        with self._path(key).open("rb") as fh:
            fh.seek(offset)
            return fh.read(length)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()


class S3ArtifactStore:
    """Artifacts in an S3-compatible bucket (AWS, MinIO, Ceph RGW), through a boto3-style client.

    ``client`` is e.g. ``boto3.client("s3", endpoint_url=...)``; nothing here imports boto3.
    Not exercised against a real S3 in this repository's tests (a fake client stands in).
    """

    def __init__(self, client: Any, bucket: str, prefix: str = "models/") -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = prefix

    def _key(self, key: str) -> str:
        return self.prefix + _check_key(key)

    def put(self, key: str, source: Path) -> str:
        with source.open("rb") as fh:
            self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=fh)
        return f"s3://{self.bucket}/{self._key(key)}"

    def size(self, key: str) -> int:
        return int(self._client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"])

    def read(self, key: str, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        reply = self._client.get_object(Bucket=self.bucket, Key=self._key(key),
                                        Range=f"bytes={offset}-{offset + length - 1}")
        data: bytes = reply["Body"].read()
        return data

    def exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:  # botocore's ClientError; any 404-like answer means absent
            status = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if status in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True
