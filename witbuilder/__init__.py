"""witbuilder's Python API: load a model `wit train` made, embed images and texts, export it.

    import witbuilder
    loaded = witbuilder.load_model("runs/tiny")     # a run folder or a checkpoint file
    features = loaded.encode_image([image]) @ loaded.encode_text(["a red circle"]).T

`load_model` returns a `LoadedModel` (fields model, tokenizer, preprocess, config, step, path,
train_config; methods encode_image, encode_text); `export_open_clip` writes an open_clip model
folder, as `wit export` does.
"""

from trainer.api import LoadedModel, Preprocess, load_model
from trainer.export import export as export_open_clip
from trainer.zeroshot import read_templates

__all__ = ["LoadedModel", "Preprocess", "export_open_clip", "load_model", "read_templates"]
