"""Robots opt-outs: the one table of the directives that keep an image out of the dataset, and the
parser of `X-Robots-Tag` headers that both downloaders apply (the native one reads the header
itself; img2dataset is handed the same list and the same user agent token).

Imports nothing from the network stack, so any stage may read the table.
"""

from __future__ import annotations

import re

# directive -> where it keeps images out:
#   "header": in an image response's X-Robots-Tag (img2dataset's default list, so that both
#             downloaders refuse the same images out of the box);
#   "meta":   in a page's <meta name="robots">, for the images on that page (`none` is noindex +
#             nofollow; a page's `noindex` is about the page, not the images it shows).
OPT_OUTS = {
    "noai": ("header", "meta"),
    "noimageai": ("header", "meta"),
    "noindex": ("header",),
    "noimageindex": ("header", "meta"),
    "none": ("meta",),
}
# The downloaders' default, in this order (it is recorded in the raw shards' done markers).
HEADER_OPT_OUTS = tuple(name for name, where in OPT_OUTS.items() if "header" in where)
META_OPT_OUTS = frozenset(name for name, where in OPT_OUTS.items() if "meta" in where)


def user_agent_token(user_agent: str) -> str:
    """The product name robots directives address us by ('witbuilder/0.1 (...)' → 'witbuilder')."""
    return user_agent.split("/", 1)[0].split()[0].lower() if user_agent.strip() else ""


def header_directives(values: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The X-Robots-Tag directives to honour, from option values that may each hold a comma
    list ('noai,noindex'); empty items are dropped, so `['']` or `[]` disables the check."""
    directives = (part.strip().lower() for value in values for part in value.split(","))
    return tuple(dict.fromkeys(directive for directive in directives if directive))


# Directives that carry a value after a colon ('max-image-preview:large'): at the start of a
# header value they are directives, not a bot's name.
VALUED_DIRECTIVES = frozenset({"max-snippet", "max-image-preview", "max-video-preview",
                               "unavailable_after", "unavailable-after"})
SCOPE = re.compile(r"\s*([a-z0-9_.*-]+)\s*:(.*)", re.IGNORECASE | re.DOTALL)


def parse_header_value(value: str) -> tuple[str | None, tuple[str, ...]]:
    """(scope, directives) of one X-Robots-Tag value, as the de-facto specification (Google's)
    reads it: a scope is `botname:` at the start of the value ('otherbot: noai, noindex'), for the
    whole value; `name:value` items ('max-image-preview:large', 'unavailable_after: 25 Jun 2010')
    are directives, known by their name. Names and directives in lower case, `None`: everyone."""
    scope = None
    match = SCOPE.match(value)
    if match and match.group(1).lower() not in VALUED_DIRECTIVES:
        scope, value = match.group(1).lower(), match.group(2)
    directives = (part.split(":", 1)[0].strip().lower() for part in value.split(","))
    return scope, tuple(directive for directive in directives if directive)


def opted_out(header_values: list[str] | tuple[str, ...], agent: str,
              disallowed: tuple[str, ...] = HEADER_OPT_OUTS) -> bool:
    """True when an X-Robots-Tag value gives one of the `disallowed` directives to everyone or
    to `agent` (its user agent token, `user_agent_token`).

    Values look like 'noai', 'noindex, noimageai', 'max-image-preview:large, noimageai' or
    'otherbot: noai' (scoped to one agent): see `parse_header_value`."""
    if not disallowed:
        return False
    agent = agent.lower()
    for value in header_values:
        scope, directives = parse_header_value(value)
        if scope in (None, "*", agent) and any(name in disallowed for name in directives):
            return True
    return False


def opt_out_message(header_values: list[str]) -> str:
    """The manifest's `error` for an opted-out image."""
    return f"X-Robots-Tag: {'; '.join(header_values)}"[:300]
