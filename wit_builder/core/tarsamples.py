"""WebDataset samples in and out of tar streams, defensively and deterministically.

Reading groups consecutive members by key (the WebDataset convention: the name up to the first dot
of its last component), skips members that are not regular files or whose paths are unsafe, and
stops cleanly at a truncated tar. Writing builds each sample's tar blocks in memory with fixed
metadata, so the same sample always gives the same bytes and a shard is a plain concatenation of
sample blocks (which lets shuffled runs be cut into shards by byte ranges, without re-parsing).
"""

from __future__ import annotations

import logging
import tarfile
from collections import Counter
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import BinaryIO

log = logging.getLogger(__name__)

BLOCK = 512
END_OF_ARCHIVE = b"\0" * (2 * BLOCK)


def is_safe_member_name(name: str) -> bool:
    """False for absolute paths, parent references and backslashes: never trusted as paths."""
    if not name or name.startswith(("/", "\\")) or "\\" in name or ":" in name.split("/")[0]:
        return False
    return ".." not in PurePosixPath(name).parts


def split_member_name(name: str) -> tuple[str, str]:
    """(key, extension) of a member: `dir/0001.seg.jpg` -> (`dir/0001`, `seg.jpg`)."""
    path = PurePosixPath(name)
    stem, _, extension = path.name.partition(".")
    key = str(path.parent / stem) if str(path.parent) != "." else stem
    return key, extension.lower()


class EndAwareTarInfo(tarfile.TarInfo):
    """Notes on its TarFile whether the archive ended with the end-of-archive zero block: tarfile
    takes a header cut short, or no header at all, for a normal end, which hides truncation."""

    @classmethod
    def fromtarfile(cls, tar: tarfile.TarFile) -> tarfile.TarInfo:
        try:
            return super().fromtarfile(tar)
        except tarfile.EOFHeaderError:
            tar.reached_end_marker = True
            raise


def read_samples(stream: BinaryIO, problems: Counter, source: str = "tar"
                 ) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {extension: bytes}) for every sample of the tar `stream`, in file order.

    Skipped members and a truncated end (an error, a member cut short, or no end-of-archive
    block) are counted in `problems`; the sample that was being read when the tar broke off is
    dropped (it may have lost members; the caller, comparing with the manifest, counts it
    missing), the ones before it are kept.
    """
    key, members = None, {}
    try:
        with tarfile.open(fileobj=stream, mode="r|*", tarinfo=EndAwareTarInfo) as tar:
            for info in tar:
                if not info.isfile():
                    problems["member_not_a_file"] += 1
                    continue
                if not is_safe_member_name(info.name):
                    log.warning("%s: member with unsafe path %r skipped", source, info.name)
                    problems["member_unsafe_path"] += 1
                    continue
                member_key, extension = split_member_name(info.name)
                data = tar.extractfile(info).read()
                if len(data) != info.size:
                    raise EOFError(f"member {info.name} cut short")
                if member_key != key:
                    if key is not None:
                        yield key, members
                    key, members = member_key, {}
                members[extension] = data
            if not getattr(tar, "reached_end_marker", False):
                raise EOFError("no end-of-archive block")
    except (tarfile.TarError, EOFError, OSError) as error:
        log.warning("%s: truncated or corrupt tar (%s); the samples before %s are kept",
                    source, error, key or "its first sample")
        problems["truncated_tar"] += 1
        return
    if key is not None:
        yield key, members


def ustar_template(mode: int = 0o444, owner: str = "wit") -> bytes:
    """The fields every member shares: regular file, mtime 0, uid/gid 0 named `owner`."""
    header = bytearray(BLOCK)
    header[100:108] = b"%07o\0" % mode
    header[108:116] = b"%07o\0" % 0                    # uid
    header[116:124] = b"%07o\0" % 0                    # gid
    header[136:148] = b"%011o\0" % 0                   # mtime
    header[148:156] = b" " * 8                         # checksum, summed as spaces
    header[156:157] = b"0"                             # regular file
    header[257:265] = b"ustar\x0000"
    header[265:265 + len(owner)] = owner.encode("ascii")   # uname
    header[297:297 + len(owner)] = owner.encode("ascii")   # gname
    return bytes(header)


TEMPLATE = ustar_template()
TEMPLATE_SUM = sum(TEMPLATE)
MAX_SIZE = 8 ** 11 - 1  # what the 11 octal digits of a ustar size field hold


def ustar_header(name: str, size: int) -> bytes:
    """The 512-byte ustar header of a regular file `name` of `size` bytes (as tarfile writes it).

    Built from one template rather than by tarfile (a TarInfo and per-field checks per member:
    seven times the CPU); the template is zero where name and size go, so the checksum only adds
    their bytes."""
    encoded = name.encode("utf-8")
    if len(encoded) > 100:
        raise ValueError(f"tar member name '{name}' is longer than 100 bytes")
    if not 0 <= size <= MAX_SIZE:
        raise ValueError(f"tar member '{name}' of {size} bytes does not fit a ustar header")
    size_field = b"%011o\0" % size
    header = bytearray(TEMPLATE)
    header[:len(encoded)] = encoded
    header[124:136] = size_field
    header[148:155] = b"%06o\0" % (TEMPLATE_SUM + sum(encoded) + sum(size_field))
    return bytes(header)


def gnu_header(name: str, size: int) -> bytes:
    """Headers for what ustar cannot hold (a name over 100 bytes, a huge size): tarfile's GNU
    extension records, with the same metadata."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid = size, 0, 0o444, 0, 0
    info.uname = info.gname = "wit"
    return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")


def sample_block(key: str, members: dict[str, bytes]) -> bytes:
    """The tar blocks of one sample: a member KEY.EXT per extension in sorted order (as
    webdataset's TarWriter writes them), each with fixed owner, mode and mtime, padded to a block.
    Names starting with '__' (webdataset's `__key__`, `__url__`) are not members."""
    parts = []
    for extension in sorted(name for name in members if not name.startswith("__")):
        data = members[extension]
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"sample {key}: '{extension}' is {type(data).__name__}, not bytes")
        name, size = f"{key}.{extension}", len(data)
        try:
            header = ustar_header(name, size)
        except ValueError:  # too long, too large, or not UTF-8 (a raw tar's surrogate escapes)
            header = gnu_header(name, size)
        parts += [header, data, bytes(-size % BLOCK)]
    return b"".join(parts)
