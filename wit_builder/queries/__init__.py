"""Query list builder: unigrams, bigrams (PMI), titles and WordNet synsets from a Wikipedia dump."""
