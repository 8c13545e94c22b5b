"""uattr: one self-supervised speech encoder, several utterance-level attribute embeddings."""

__version__ = "0.1.0"
