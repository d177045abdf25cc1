"""Runtime data: manifests → batches. Corpus preparation lives in :mod:`speechllm.prepare`.

``dataset`` (cuts → a typed batch), ``datamodule`` (loaders, bucketing, rank sharding, resume),
``samplers``, ``shar`` (reading Shar shards), ``encoder_cache`` (reading cached encoder outputs),
``manifest`` (the check before training trusts a manifest). Import what you need, e.g.
``from speechllm.data.datamodule import SpeechDataModule``.
"""
