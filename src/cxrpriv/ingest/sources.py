"""Where the input files come from: a local folder or an S3 prefix, listed lazily and read by path.

A source lists :class:`SourceFile` entries (a path relative to the source root, the size and a cheap
fingerprint that changes when the file does: mtime for folders, the ETag for S3) in a deterministic order,
one directory or listing page at a time, so processing starts before the listing ends. Files are read
whole by relative path; worker processes each open their own S3 client (boto3 clients must not cross a
fork). S3 uses the standard AWS credential chain; ``endpoint_url`` points at S3-compatible stores.

A folder lists every entry under it exactly once: regular files (and symbolic links to regular files inside
the folder) to be read; everything else as an entry with a ``problem``, which the stage rejects with that
reason without reading it: symbolic link loops, dangling links, links that point outside the folder (unless
``allow_external_links``), links to folders (never followed, so nothing is listed twice or forever), FIFOs,
sockets and devices (reading one could block or never end), and folders that cannot be listed. Reads check
again that the resolved path is a regular file inside the folder (a link may change after the listing).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol


@dataclass(frozen=True)
class SourceFile:
    path: str  # relative to the source root, '/'-separated
    size: int
    fingerprint: str
    problem: str | None = None  # listed, but not a file to read: the reason it is rejected with


class Source(Protocol):
    uri: str

    def list(self) -> Iterator[SourceFile]: ...

    def read(self, path: str) -> bytes: ...


class SourceError(RuntimeError):
    """The source as a whole cannot be used (missing folder, unreachable bucket)."""


class OutsideSourceError(OSError):
    """A path that resolves outside the source folder, or to something other than a regular file."""


_SPECIAL: tuple[tuple[Callable[[int], bool], str], ...] = (
    (stat.S_ISFIFO, "FIFO"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _SPECIAL if test(mode)), "special file")


class FolderSource:
    """Every entry under a folder, hidden ones included: nothing is silently skipped (see the module doc)."""

    def __init__(self, root: Path, allow_external_links: bool = False) -> None:
        self.root = Path(root)
        self.uri = str(self.root)
        self.allow_external_links = allow_external_links
        if not self.root.is_dir():
            raise SourceError(f"source folder {self.root} does not exist")
        self._real_root = os.path.realpath(self.root)

    def _inside(self, real: str) -> bool:
        return real == self._real_root or real.startswith(self._real_root.rstrip(os.sep) + os.sep)

    def list(self) -> Iterator[SourceFile]:
        # Sorted names: the same tree always lists in the same order, a folder's files before its subfolders.
        yield from self._list(self.root, "")

    def _list(self, directory: Path, prefix: str) -> Iterator[SourceFile]:
        try:
            with os.scandir(directory) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError as exc:
            yield SourceFile(
                prefix.rstrip("/") or ".", 0, "", f"folder cannot be listed ({type(exc).__name__})"
            )
            return
        folders = []
        for entry in entries:
            rel = prefix + entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(entry)
                    continue
                yield self._entry(Path(entry.path), rel)
            except OSError as exc:  # vanished or unreadable while listing
                yield SourceFile(rel, 0, "", f"cannot be examined ({type(exc).__name__})")
        for entry in folders:
            yield from self._list(Path(entry.path), prefix + entry.name + "/")

    def _entry(self, full: Path, rel: str) -> SourceFile:
        own = full.lstat()
        fingerprint = f"{own.st_size}:{own.st_mtime_ns}"
        if stat.S_ISLNK(own.st_mode):
            try:
                target = full.stat()
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    return SourceFile(rel, 0, fingerprint, "symbolic link loop")
                return SourceFile(rel, 0, fingerprint, "dangling symbolic link (no such target)")
            if not self.allow_external_links and not self._inside(os.path.realpath(full)):
                return SourceFile(rel, 0, fingerprint, "symbolic link pointing outside the source folder")
            if stat.S_ISDIR(target.st_mode):
                return SourceFile(rel, 0, fingerprint, "symbolic link to a folder (not followed)")
            if not stat.S_ISREG(target.st_mode):
                return SourceFile(rel, 0, fingerprint, f"symbolic link to a {_kind(target.st_mode)}")
            return SourceFile(rel, target.st_size, f"{target.st_size}:{target.st_mtime_ns}")
        if not stat.S_ISREG(own.st_mode):
            return SourceFile(rel, 0, fingerprint, f"not a regular file ({_kind(own.st_mode)})")
        return SourceFile(rel, own.st_size, fingerprint)

    def read(self, path: str) -> bytes:
        full = self.root / PurePosixPath(path)
        real = os.path.realpath(full)
        if not self.allow_external_links and not self._inside(real):
            raise OutsideSourceError("resolves outside the source folder")
        # O_NONBLOCK: opening a FIFO put there since the listing must not wait for a writer.
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OutsideSourceError("not a regular file")
            return fh.read()


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
