"""The embedded synthetic web: a Wikipedia dump, pageviews, WordNet, a website (also as WARC and as
a URL-caption pool) and held-out zero-shot sets, all generated deterministically from a seed."""
