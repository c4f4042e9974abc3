"""Robots opt-outs: the one table of the directives that keep an image out of the dataset, and the
parser of `X-Robots-Tag` headers that both downloaders apply (the native one reads the header
itself; img2dataset is handed the same list and the same user agent token).

Imports nothing from the network stack, so any stage may read the table.
"""

from __future__ import annotations

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


def opted_out(header_values: list[str], agent: str,
              disallowed: tuple[str, ...] = HEADER_OPT_OUTS) -> bool:
    """True when an X-Robots-Tag value gives one of the `disallowed` directives to everyone or
    to `agent`.

    Values look like 'noai', 'noindex, noimageai' or 'otherbot: noai' (scoped to one agent)."""
    if not disallowed:
        return False
    for value in header_values:
        scope = None
        for part in value.split(","):
            part = part.strip().lower()
            if ":" in part:
                scope, part = (piece.strip() for piece in part.split(":", 1))
            if part in disallowed and scope in (None, "*", agent):
                return True
    return False


def opt_out_message(header_values: list[str]) -> str:
    """The manifest's `error` for an opted-out image."""
    return f"X-Robots-Tag: {'; '.join(header_values)}"[:300]
