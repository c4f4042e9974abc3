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


def member_block(name: str, data: bytes) -> bytes:
    """One tar member (header, data, padding) with fixed owner, mode and mtime."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o444
    info.uid = info.gid = 0
    info.uname = info.gname = "wit"
    header = info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")
    return header + data + b"\0" * (-len(data) % BLOCK)


def sample_block(key: str, members: dict[str, bytes]) -> bytes:
    """The tar blocks of one sample, members in extension order."""
    return b"".join(member_block(f"{key}.{extension}", members[extension])
                    for extension in sorted(members))
