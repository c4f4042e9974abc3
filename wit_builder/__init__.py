"""witbuilder: build a WIT-style image-text dataset from Wikipedia queries and the web."""
__version__ = "0.1.0"
