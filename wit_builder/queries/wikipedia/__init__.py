"""Wikipedia dump reading (multistream bz2 in parallel) and wikitext to plain text."""
