"""Where the input files come from: a local folder or an S3 prefix, listed lazily and read by path.

A source lists :class:`SourceFile` entries (a path relative to the source root, the size and a cheap
fingerprint that changes when the file does: mtime for folders, the ETag for S3) in a deterministic order,
one directory or listing page at a time, so processing starts before the listing ends. Files are read
whole by relative path; worker processes each open their own S3 client (boto3 clients must not cross a
fork). S3 uses the standard AWS credential chain; ``endpoint_url`` points at S3-compatible stores.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol


@dataclass(frozen=True)
class SourceFile:
    path: str  # relative to the source root, '/'-separated
    size: int
    fingerprint: str


class Source(Protocol):
    uri: str

    def list(self) -> Iterator[SourceFile]: ...

    def read(self, path: str) -> bytes: ...


class SourceError(RuntimeError):
    """The source as a whole cannot be used (missing folder, unreachable bucket)."""


class FolderSource:
    """Every regular file under a folder (hidden ones included: nothing is silently skipped)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.uri = str(self.root)
        if not self.root.is_dir():
            raise SourceError(f"source folder {self.root} does not exist")

    def list(self) -> Iterator[SourceFile]:
        # os.walk with sorted names: the same tree always lists in the same order, directory by directory.
        for directory, dirs, files in os.walk(self.root):
            dirs.sort()
            for name in sorted(files):
                full = Path(directory) / name
                if full.is_symlink() and not full.exists():
                    continue  # a dangling link is not a file; the report could not name its content anyway
                stat = full.stat()
                rel = full.relative_to(self.root).as_posix()
                yield SourceFile(rel, stat.st_size, f"{stat.st_size}:{stat.st_mtime_ns}")

    def read(self, path: str) -> bytes:
        return (self.root / PurePosixPath(path)).read_bytes()


class S3Source:
    """Objects under ``s3://bucket/prefix``; keys ending in '/' (folder markers) are not files."""

    def __init__(self, uri: str, endpoint_url: str | None = None) -> None:
        if not uri.startswith("s3://"):
            raise SourceError(f"{uri}: not an s3:// URI")
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        if not bucket:
            raise SourceError(f"{uri}: no bucket name")
        self.uri = uri
        self.bucket = bucket
        self.prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url or None
        self._client: Any = None
        self._client_pid = -1

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_client"], state["_client_pid"] = None, -1
        return state

    @property
    def client(self) -> Any:
        if self._client is None or self._client_pid != os.getpid():
            import boto3
            from botocore.config import Config

            self._client = boto3.session.Session().client(
                "s3",
                endpoint_url=self.endpoint_url,
                config=Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=4),
            )
            self._client_pid = os.getpid()
        return self._client

    def list(self) -> Iterator[SourceFile]:
        from botocore.exceptions import BotoCoreError, ClientError

        paginator = self.client.get_paginator("list_objects_v2")
        try:
            # S3 returns keys in lexicographic order, page by page: deterministic and streamed.
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    if key.endswith("/"):
                        continue
                    yield SourceFile(
                        key[len(self.prefix) :], int(obj["Size"]), obj.get("ETag", "").strip('"')
                    )
        except (BotoCoreError, ClientError) as exc:
            raise SourceError(f"{self.uri}: listing failed ({type(exc).__name__}: {exc})") from exc

    def read(self, path: str) -> bytes:
        response = self.client.get_object(Bucket=self.bucket, Key=self.prefix + path)
        return response["Body"].read()


def open_source(uri: str | Path, endpoint_url: str | None = None) -> Source:
    text = str(uri)
    if text.startswith("s3://"):
        return S3Source(text, endpoint_url)
    return FolderSource(Path(text))


def read_uri(uri: str | Path, endpoint_url: str | None = None) -> bytes:
    """One whole file from a local path or ``s3://bucket/key`` (e.g. the labels table)."""
    text = str(uri)
    if text.startswith("s3://"):
        parent, _, name = text.rpartition("/")
        source = S3Source(parent, endpoint_url)
        return source.read(name)
    return Path(text).read_bytes()
