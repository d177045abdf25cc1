"""Pre-alignment: the adapter trained against the LLM's own input embeddings before the LLM stage.

One concept, three layers, one folder: :mod:`~speechllm.prealign.head` (the head and its
objectives, a model component), :mod:`~speechllm.prealign.module` (the stage's LightningModule)
and :mod:`~speechllm.prealign.stage` (the stage itself, :func:`run_prealign`). Configured by the
``prealign:`` section (the stage) and ``model.prealign:`` (the head); ``--decoder prealign``
decodes the adapter alone through the head. See docs/training.md, "Pre-alignment".
"""
