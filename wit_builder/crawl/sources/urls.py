"""The crawl's canonical URLs: net/urls.py's, the one form every stage compares URLs in."""

from wit_builder.net.urls import canonical_url, remove_dot_segments

__all__ = ["canonical_url", "remove_dot_segments"]
