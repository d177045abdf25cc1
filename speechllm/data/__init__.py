"""Data: corpus recipes (manifests), the multitask dataset, the data module, Shar and the encoder cache.

Submodules import lazily heavy dependencies; import what you need, e.g.
``from speechllm.data.datamodule import SpeechDataModule``.
"""
