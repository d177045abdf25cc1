"""Corpus recipes and writers: data on disk → lhotse manifests, encoder caches and Shar shards.

One module per corpus with a ``prepare_<corpus>`` function (``covost2``, ``synthetic``,
``realspeech``, ``tones``, your own tables and kaldi directories in ``manifest``), the helpers
they share in ``common``, the synthetic corpus's sentences in ``text_sources``, and the writers
of the encoder-output cache (``cache``) and of Shar shards (``shar``). Each recipe and writer is a
``speechllm prepare`` subcommand.
"""
