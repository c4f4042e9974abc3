"""Stage 2, `wit crawl`: sources, filters, matching, balance, download."""
