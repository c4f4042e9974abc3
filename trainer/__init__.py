"""The training side of witbuilder: a streaming CLIP trainer over WebDataset shards."""
