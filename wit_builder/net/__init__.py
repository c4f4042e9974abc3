"""The network: the address guard (guard), the one guarded HTTP client and its statuses (http),
the capped body reader (body) and the robots opt-out table (optout)."""
