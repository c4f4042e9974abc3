"""What the tests build for themselves: loopback servers (`servers`, `hostile_web`), data sets
(`shards_data`, `trainer_data`, `wiki_data`), real material fetched from PyPI (`realdata`) and the
sanitizer build (`sanitize_build`). The fixtures over them live in tests/conftest.py."""
