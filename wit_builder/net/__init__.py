"""The network: the address guard and the capped body reader."""
