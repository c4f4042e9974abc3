"""Where a stage's files live: a local path or an fsspec URL (`s3://…`, `gs://…`, `memory://`).

Local paths take the plain `os` route (atomic writes: temp file beside the target, then rename,
as `atomic.py` always did). URLs go through fsspec; an object store has no rename, so a write goes
to a local temporary file that is uploaded with one put when complete: an object appears under its
final name whole or not at all, and "a file that exists is finished" holds on both.

Endpoints and credentials come from fsspec's and the cloud SDKs' usual places (environment,
`~/.aws`, `FSSPEC_S3='{"client_kwargs": {"endpoint_url": ...}}'`), which worker processes and
Ray workers inherit, so no client is passed around: every function takes a location and resolves
its filesystem itself. A location is a `Path` or `str` for local files and a `str` for URLs;
`join` keeps that type, so local callers keep their `Path`s.

An http(s) URL is read through fsspec's HTTP filesystem with a guarded session
(`net.http.guarded_session`): every hop, redirects included, is checked by an `AddressPolicy`,
the one a reader passes (`policy=`, the crawl's `--allow-private` / `--trusted-origins`) or, by
default, public addresses only. Other protocols (s3://, gs://, ...) reach the endpoint the user
configured, unguarded.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import glob as local_glob
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any, Union

import pyarrow as pa
import pyarrow.parquet as pq

from wit_builder.core import atomic
from wit_builder.core.options import WitError

if TYPE_CHECKING:
    from wit_builder.net.guard import AddressPolicy

Location = Union[str, Path]
CACHE_DIR_NAME = "witbuilder-store-cache"


def is_url(location: Location) -> bool:
    return "://" in str(location)


def join(base: Location, *parts: str) -> Location:
    """`base/part/...`, of the type of `base`: a Path stays a Path, a string (path or URL) stays
    a string."""
    if isinstance(base, Path):
        return base.joinpath(*parts)
    if is_url(base):
        return "/".join([base.rstrip("/"), *(str(part).strip("/") for part in parts)])
    return os.path.join(base, *parts)


def name(location: Location) -> str:
    """The last component of a location (`00001.tar`)."""
    return PurePosixPath(str(location).rstrip("/")).name


def filesystem(location: Location, policy: AddressPolicy | None = None) -> tuple[Any, str]:
    """(fsspec filesystem, path inside it) of a URL, with no stale listing cached: other
    processes write the same store, and a cached listing would hide their files. An http(s)
    URL gets a filesystem whose every connection `policy` checks (default: public addresses
    only); a WitError, before any connection, when the URL's own host is refused."""
    import fsspec

    options = http_options(location, policy)
    fs, path = fsspec.core.url_to_fs(str(location), **options)
    fs.invalidate_cache()
    return fs, path


def http_options(location: Location, policy: AddressPolicy | None) -> dict[str, Any]:
    """fsspec's storage options for `location`: the guarded session for http(s), none for
    other protocols; a WitError for a refused host and for http(s) inside a chained URL
    (`simplecache::https://...`), whose inner filesystem these options would not reach."""
    from wit_builder.net.guard import AddressPolicy, BlockedAddressError
    from wit_builder.net.http import guarded_session, is_http_url

    text = str(location)
    layers = re.sub(r"\[[^\]]*\]", "[]", text).split("::")  # an IPv6 host's "::" is no chain
    if len(layers) > 1 and any(is_http_url(layer) for layer in layers):
        raise WitError(f"'{text}': http(s) inside a chained fsspec URL is not supported; "
                       f"give the http(s) URL itself")
    if not is_http_url(text):
        return {}
    policy = policy or AddressPolicy()
    try:
        policy.check_url(text)
    except BlockedAddressError as error:
        raise blocked_error(text, error) from None
    except ValueError as error:
        raise WitError(f"'{text}': {error}") from None
    return {"get_client": functools.partial(guarded_session, policy)}


def blocked_error(location: Location, error: OSError) -> WitError:
    """The WitError of a read the address guard refused, saying what to do about it."""
    return WitError(f"'{location}': refused, {error} (only public addresses are read unless "
                    f"--allow-private, or --trusted-origins HOST:PORT for one server)")


def refused(location: Location, error: BaseException) -> WitError | None:
    """`blocked_error` when the address guard is behind `error` (fsspec reports a refused
    connection as a missing file), else None."""
    from wit_builder.net.http import blocked_address

    blocked = blocked_address(error)
    return blocked_error(location, blocked) if blocked is not None else None


def check_reachable(location: Location, what: str = "workdir") -> None:
    """A one-line WitError now, not a traceback mid-stage, when a URL's store cannot be used:
    no fsspec implementation for its protocol, no such bucket, no credentials or access."""
    if not is_url(location):
        return
    try:
        fs, path = filesystem(location)
        container = path.split("/", 1)[0]
        if not fs.exists(container):
            raise WitError(f"{what} '{location}': bucket '{container}' does not exist; "
                           f"create it first")
    except WitError:
        raise
    except ImportError as error:  # fsspec says which package the protocol needs
        raise WitError(f"{what} '{location}': {error}") from None
    except Exception as error:  # credentials, permissions, endpoint: the SDK's own message
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise WitError(f"{what} '{location}': cannot use the store "
                       f"({type(error).__name__}: {reason})") from None


def as_url(fs: Any, path: str) -> str:
    return fs.unstrip_protocol(path)


# ---- reading --------------------------------------------------------------------------------

def local_or_store(location: Location, local: Callable[[str], Any], method: str) -> Any:
    """`local(location)` for a local path, else the store filesystem's `method` on it."""
    if not is_url(location):
        return local(location)
    fs, path = filesystem(location)
    return getattr(fs, method)(path)


def exists(location: Location) -> bool:
    return local_or_store(location, os.path.exists, "exists")


def is_file(location: Location) -> bool:
    return local_or_store(location, os.path.isfile, "isfile")


def open(location: Location, mode: str = "rb",  # noqa: A001 - the store's `open`
         policy: AddressPolicy | None = None) -> IO:
    """A file object to read (or, for local files, write) `location`; for atomic writes use
    `atomic_path`. `policy` guards an http(s) URL (default: public addresses only)."""
    if not is_url(location):
        return builtins.open(location, mode)
    fs, path = filesystem(location, policy)
    try:
        return fs.open(path, mode)
    except OSError as error:
        raise refused(location, error) or error


def read_bytes(location: Location) -> bytes:
    with open(location, "rb") as handle:
        return handle.read()


def read_json(location: Location) -> Any:
    return json.loads(read_bytes(location))


def glob(pattern: Location) -> list[Location]:
    """Sorted locations matching a glob pattern (URLs keep their protocol)."""
    if not is_url(pattern):
        return [type(pattern)(path) for path in sorted(local_glob.glob(str(pattern)))]
    fs, path = filesystem(pattern)
    return sorted(as_url(fs, found) for found in fs.glob(path))


def list_files(folder: Location) -> list[str]:
    """Names of the files directly in `folder`, sorted, hidden ones (a write in progress) left
    out; [] when it does not exist."""
    if not is_url(folder):
        names = [entry.name for entry in os.scandir(folder) if entry.is_file()] \
            if os.path.isdir(folder) else []
    else:
        fs, path = filesystem(folder)
        names = [name(entry["name"]) for entry in fs.ls(path, detail=True)
                 if entry["type"] == "file"] if fs.exists(path) else []
    return sorted(name for name in names if not name.startswith("."))


def expand(spec: str, wanted: Callable[[str], bool], what: str,
           policy: AddressPolicy | None = None) -> list[str]:
    """The files of a URL spec: one file, a folder (its visible files whose name is `wanted`) or
    a glob, sorted; a WitError naming `what` and the spec when nothing usable is found, or when
    the address guard (`policy`, for an http(s) spec) refused it."""
    try:
        fs, path = filesystem(spec, policy)
    except WitError as error:
        raise WitError(f"{what}: {error}") from None
    try:
        if any(char in path for char in "*?["):
            found = [as_url(fs, match) for match in fs.glob(path)]
        elif fs.isdir(path):
            found = [as_url(fs, entry) for entry in fs.ls(path, detail=False)
                     if not name(entry).startswith(".") and wanted(name(entry))
                     and fs.isfile(entry)]
        elif fs.isfile(path):
            found = [spec]
        else:
            found = None
    except OSError as error:
        blocked = refused(spec, error)
        if blocked is not None:
            raise WitError(f"{what}: {blocked}") from None
        raise
    if found is None:
        blocked = refused(spec, guard_verdict(fs, path))
        if blocked is not None:
            raise WitError(f"{what}: {blocked}") from None
        raise WitError(f"{what}: '{spec}' does not exist")
    if not found:
        raise WitError(f"{what}: '{spec}' matches no file")
    return sorted(found)


def guard_verdict(fs: Any, path: str) -> BaseException | None:
    """The error behind fsspec's "no such file" for an http(s) path (fsspec's isdir and isfile
    swallow it), so that a refusal is not reported as a missing file; None elsewhere."""
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    if not {"http", "https"} & set(protocols):
        return None
    try:
        fs.info(path)
    except Exception as error:  # noqa: BLE001 - only inspected for the guard's refusal
        return error
    return None


def pyarrow_source(location: Location, policy: AddressPolicy | None = None) -> tuple[str, Any]:
    """(path, pyarrow filesystem or None) for pyarrow's readers: never pyarrow's own S3 client,
    whose configuration differs from fsspec's, nor its own HTTP client."""
    if not is_url(location):
        return str(location), None
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    fs, path = filesystem(location, policy)
    return path, PyFileSystem(FSSpecHandler(fs))


def read_parquet(location: Location, columns: list[str] | None = None,
                 schema: pa.Schema | None = None, policy: AddressPolicy | None = None
                 ) -> pa.Table:
    path, fs = pyarrow_source(location, policy)
    return pq.read_table(path, columns=columns, schema=schema, filesystem=fs)


def parquet_file(location: Location, policy: AddressPolicy | None = None) -> pq.ParquetFile:
    """A parquet file opened for its footer and row groups (read lazily)."""
    path, fs = pyarrow_source(location, policy)
    try:
        return pq.ParquetFile(path, filesystem=fs)
    except OSError as error:
        raise refused(location, error) or error


def sha256(location: Location) -> str:
    with open(location, "rb") as handle:
        return atomic.sha256_stream(handle)


# ---- writing --------------------------------------------------------------------------------

def makedirs(location: Location) -> None:
    """Create a local folder (and parents); object stores have no folders to create."""
    if not is_url(location):
        os.makedirs(location, exist_ok=True)


def remove(location: Location) -> None:
    """Delete one file; a missing one is not an error."""
    if not is_url(location):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(location)
        return
    fs, path = filesystem(location)
    with contextlib.suppress(FileNotFoundError):
        fs.rm_file(path)


def remove_tree(location: Location) -> None:
    """Delete a folder and everything under it, or a file; a missing one is not an error."""
    if not is_url(location):
        if os.path.isdir(location) and not os.path.islink(location):
            shutil.rmtree(location, ignore_errors=True)
        else:
            remove(location)
        return
    fs, path = filesystem(location)
    with contextlib.suppress(FileNotFoundError):
        if fs.exists(path):
            fs.rm(path, recursive=True)


@contextlib.contextmanager
def atomic_path(location: Location) -> Iterator[Path]:
    """A local temporary path to write; on success its content appears at `location` (rename
    locally, one upload to an object store), on error nothing does."""
    if not is_url(location):
        with atomic.atomic_path(location) as temporary:
            yield temporary
        return
    with scratch_file(location) as temporary:
        yield temporary
        put_file(temporary, location)


@contextlib.contextmanager
def scratch_file(location: Location) -> Iterator[Path]:
    """A local temporary file named after `location`, removed when the block ends."""
    handle, temporary = tempfile.mkstemp(prefix=".wit-", suffix=f"-{name(location)}")
    os.close(handle)
    try:
        yield Path(temporary)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def file_signature(location: Location | None) -> list | None:
    """[size, modification time] of a local file or a store object; None for no file."""
    if location is None:
        return None
    if not is_url(location):
        status = os.stat(location)
        return [status.st_size, status.st_mtime_ns]
    fs, path = filesystem(location)
    info = fs.info(path)
    modified = next((info[key] for key in ("mtime", "LastModified", "updated", "created", "ETag")
                     if info.get(key) is not None), None)
    return [info.get("size"), str(modified)]


def put_file(local: Location, location: Location) -> None:
    """Copy a finished local file to `location` (atomically: rename or one upload)."""
    if not is_url(location):
        with atomic.atomic_path(location) as temporary:
            shutil.copyfile(local, temporary)
        return
    fs, path = filesystem(location)
    fs.put_file(str(local), path)


def write_bytes(location: Location, data: bytes) -> None:
    with atomic_path(location) as temporary:
        temporary.write_bytes(data)


def write_text(location: Location, text: str) -> None:
    write_bytes(location, text.encode("utf-8"))


def write_json(location: Location, value: Any) -> None:
    write_text(location, atomic.json_text(value))


def write_parquet(location: Location, table: pa.Table, compression: str = "zstd",
                  row_group_size: int | None = None) -> None:
    """A pyarrow Table, atomically (deterministic bytes: no creation timestamps)."""
    with atomic_path(location) as temporary:
        pq.write_table(table, temporary, compression=compression, row_group_size=row_group_size)


# ---- local copies ---------------------------------------------------------------------------

def local_copy(location: Location, cache_dir: Location | None = None) -> Path:
    """A local path holding the file at `location`: the path itself when local, else a copy in a
    per-machine cache, downloaded once and keyed by the object's ETag (or size and time), so
    every worker process of a node shares one copy and a changed object is fetched again."""
    if not is_url(location):
        return Path(location)
    fs, path = filesystem(location)
    info = fs.info(path)
    stamp = info.get("LastModified") or info.get("mtime")
    version = next((str(info[key]) for key in ("ETag", "etag", "md5Hash", "generation")
                    if info.get(key)), f"{info.get('size')}-{stamp}")
    key = hashlib.sha256(f"{location}\n{version}".encode("utf-8")).hexdigest()[:20]
    folder = Path(cache_dir or Path(tempfile.gettempdir()) / f"{CACHE_DIR_NAME}-{os.getuid()}")
    copy = folder / key / name(location)
    if not copy.exists():
        with atomic.atomic_path(copy) as temporary:
            fs.get_file(path, str(temporary))
    return copy


@contextlib.contextmanager
def local_file(location: Location) -> Iterator[Path]:
    """A local path holding the file at `location` for the duration of the block: the path
    itself when local, else a temporary download removed at the end (unlike `local_copy`,
    for files read once, such as spill files, that a cache would only fill the disk with)."""
    if not is_url(location):
        yield Path(location)
        return
    fs, path = filesystem(location)
    with scratch_file(location) as temporary:
        fs.get_file(path, str(temporary))
        yield temporary
