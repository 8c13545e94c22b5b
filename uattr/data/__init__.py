"""Data layer: Kaldi data dirs, audio, validation, data-dir operations, embedding tables, datasets.

Kept free of imports on purpose: ``uattr validate-data-dir`` and the shell tools must start fast, so each
submodule (``uattr.data.kaldi``, ``uattr.data.audio``, ...) is imported where it is used.
"""
