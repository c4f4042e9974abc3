"""Line lists the user hands a stage (takedown lists, blocklists): one item a line, plain or
gzip (told by its magic bytes, whatever the name), `#` comments and blank lines ignored."""

from __future__ import annotations

import gzip
import zlib

from wit_builder.core import store
from wit_builder.core.options import WitError


def read_list_lines(path: str, kind: str) -> list[tuple[int, str]]:
    """(line number, stripped text) of every line of the `kind` list at `path` that is not blank
    or a `#` comment; a WitError naming the file when it cannot be read as UTF-8 text."""
    try:
        data = store.read_bytes(path)
    except (OSError, ValueError) as error:
        raise WitError(f"{kind} '{path}' cannot be read: "
                       f"{getattr(error, 'strerror', None) or error}") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise WitError(f"{kind} '{path}' is a damaged gzip file: {error}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise WitError(f"{kind} '{path}' is not UTF-8 text") from None
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.lstrip().startswith("#")]
