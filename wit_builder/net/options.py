"""The options of every stage that sends requests to the open web (the crawl, the opt-out
recheck): who we say we are and where the address guard lets us go, declared once."""

from __future__ import annotations

from dataclasses import dataclass

from wit_builder.core.options import option
from wit_builder.net.guard import AddressPolicy
from wit_builder.net.http import DEFAULT_USER_AGENT


@dataclass
class NetworkOptions:
    allow_private: bool = option(False, "turn the address guard off: let every request reach "
                                        "private, loopback, link-local and metadata addresses "
                                        "(logged once per run); prefer --trusted-origins")
    trusted_origins: list[str] = option([], "host:port origins exempt from the address guard "
                                            "(a known mirror on a private network)",
                                        metavar="HOST:PORT")
    user_agent: str = option(DEFAULT_USER_AGENT, "User-Agent of every request")

    def address_policy(self) -> AddressPolicy:
        """The address guard of every request the stage sends."""
        return AddressPolicy(self.allow_private, tuple(self.trusted_origins))
