"""test_netguard's tripwire (no connection but to loopback, names through its test resolver) and
loopback servers, for every test of the network package."""

from test_netguard import servers, tripwire

__all__ = ["servers", "tripwire"]
