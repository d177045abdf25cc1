"""Evaluate a trained model on test manifests: greedy decoding → scores → a run directory.

:func:`evaluate` decodes every cut of one or more lhotse manifests with
:meth:`SpeechLLM.generate <speechllm.model.SpeechLLM.generate>` (greedy, the fixed evaluation
instruction: the same prompt layout as training, without paraphrase sampling), groups the
sentences by ASR language or ST direction, scores them and writes a run directory
(:mod:`speechllm.rundir`, ``docs/evaluation.md``) that ``speechllm report`` reads:

- ``run.json``: ``sfm``, ``llm``, ``adapter`` (derived from the model config, see
  :func:`speechllm.evaluation.scoring.run_names`), ``tasks``, the manifests, decoding settings
  and the model config;
- ``hyps_asr_<lang>.tsv``: per-sentence WER in percent;
- ``hyps_st_<src>-<tgt>.tsv``: per-sentence COMET × 100, with the source transcript (only when a
  COMET model is given: the report reads these files as Table 3's COMET columns);
- ``bleu_st_<src>-<tgt>.tsv``: per-sentence BLEU (always for ST; the report ignores these files);
- ``metrics.json``: ``asr_wer_<lang>`` (corpus WER), ``asr_mean_sentence_wer_<lang>`` (mean of the
  TSV's scores), ``st_bleu_<pair>``, ``st_chrf_<pair>`` (corpus, sacrebleu) and ``st_comet_<pair>``
  (mean of the TSV's scores), plus ``num_sentences_<task>_<group>``;
- ``compression.json``: mean encoder frames and adapter outputs per utterance (Table 1);
- the evaluation checks (``docs/evaluation-checks.md``): ``normalizer`` and
  ``asr_wer_<normalizer>_<lang>``, ``speed_<task>`` (RTFx), ``num_<kind>_<group>`` degenerate-output
  counts, ``listening_check_<task>``.

An ASR and an ST evaluation of the same model may share one directory: the second adds its files
and metrics to the first's (their SFM, LLM and adapter must agree).

Modules: :mod:`~speechllm.evaluation.decoding` (batches → sentences),
:mod:`~speechllm.evaluation.scoring` (sentences → scores → run directory), shared with the
Lightning callbacks (:mod:`speechllm.lightning.metric_callbacks`) and the Whisper baseline, and
:mod:`~speechllm.evaluation.runner` (:func:`evaluate`), with :mod:`~speechllm.evaluation.speed`
(RTFx), :mod:`~speechllm.evaluation.listening` (the listening check) and
:mod:`~speechllm.evaluation.distributed` (several devices).
"""

from speechllm.evaluation.runner import evaluate

__all__ = ["evaluate"]
