"""Whisper's own decoder as an anchor (``speechllm whisper-baseline``) on a tiny random Whisper with a
tokenizer: transcription in each clip's language and the ``translate`` task into English (the
demo's Whisper base rows), per language and direction, the evaluation-only nl/cs included; an
English-only checkpoint refuses both before any audio is read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers.tiny_models import tiny_whisper_with_tokenizer_dir
from lhotse import load_manifest

from speechllm.baselines.whisper_decoder import (
    WhisperDecoderBaseline,
    WhisperRun,
    evaluate_whisper,
    evaluate_whisper_runs,
)
from speechllm.cli import main
from speechllm.errors import UsageError
from speechllm.rundir import read_hypotheses

LANGUAGES = ("es", "es", "nl", "nl", "cs", "cs")
TRANSLATION = "one two three"


@pytest.fixture(scope="module")
def multilingual(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_whisper_with_tokenizer_dir(tmp_path_factory.mktemp("whisper"))


@pytest.fixture
def manifest(tones_dir: Path, tmp_path: Path) -> Path:
    """Six tone clips relabelled as es/nl/cs speech with an English translation."""
    cuts = load_manifest(tones_dir / "tones_cuts_test.jsonl.gz").subset(first=len(LANGUAGES)).to_eager()
    for cut, language in zip(cuts, LANGUAGES):
        cut.supervisions[0].language = language
        cut.supervisions[0].custom = {"translation": TRANSLATION, "tgt_lang": "en"}
    path = tmp_path / "es_nl_cs.jsonl.gz"
    cuts.to_file(path)
    return path


def _decoder_prompts(baseline: WhisperDecoderBaseline) -> list[list[int]]:
    """Record the decoder's input ids at each call (the first call: Whisper's task prompt)."""
    seen: list[list[int]] = []

    def record(module, args, kwargs) -> None:
        ids = kwargs.get("input_ids") if kwargs.get("input_ids") is not None else args[0]
        seen.append(ids[0].tolist())

    baseline.model.model.decoder.register_forward_pre_hook(record, with_kwargs=True)
    return seen


def test_translate_and_transcribe_prompt_the_decoder_with_the_language_and_task(multilingual: Path) -> None:
    baseline = WhisperDecoderBaseline(str(multilingual), max_new_tokens=3)
    seen = _decoder_prompts(baseline)
    token = baseline.tokenizer.convert_tokens_to_ids
    clip = 0.1 * torch.randn(8000)
    for language, task in (("nl", "translate"), ("es", "transcribe")):
        seen.clear()
        (text,) = baseline.transcribe([clip], language, task)
        assert isinstance(text, str)
        expected = ["<|startoftranscript|>", f"<|{language}|>", f"<|{task}|>", "<|notimestamps|>"]
        assert seen[0] == [token(t) for t in expected], seen[0]


def test_the_translate_task_scores_each_direction_against_the_english_reference(
    multilingual: Path, manifest: Path, tmp_path: Path
) -> None:
    metrics = evaluate_whisper(manifest, tmp_path / "st", path=str(multilingual), max_new_tokens=4, task="st")
    for pair in ("es-en", "nl-en", "cs-en"):
        assert metrics[f"num_sentences_st_{pair}"] == 2 and f"st_bleu_{pair}" in metrics
        rows = read_hypotheses(tmp_path / "st" / f"bleu_st_{pair}.tsv")
        assert {row["reference"] for row in rows.values()} == {TRANSLATION}
    run = json.loads((tmp_path / "st" / "run.json").read_text())
    assert run["tasks"] == ["st"] and run["whisper_model"] == str(multilingual)
    asr = evaluate_whisper(manifest, tmp_path / "asr", path=str(multilingual), max_new_tokens=4)
    assert {k for k in asr if k.startswith("num_sentences_asr_")} == {
        f"num_sentences_asr_{code}" for code in ("es", "nl", "cs")
    }


def test_the_cli_translates_and_an_english_only_checkpoint_refuses_it(
    multilingual: Path, manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["whisper-baseline", "--manifest", str(manifest), "--task", "st", "--max-new-tokens", "3"]
    assert main([*argv, "--model", str(multilingual), "--out", str(tmp_path / "run")]) in (0, None)
    assert "st_bleu_nl-en" in capsys.readouterr().out
    english = tiny_whisper_with_tokenizer_dir(tmp_path, multilingual=False)
    with pytest.raises(UsageError, match="English-only: it cannot translate 'es'"):
        evaluate_whisper(manifest, tmp_path / "refused", path=str(english), max_new_tokens=3, task="st")
    assert not (tmp_path / "refused").exists()


def test_the_anchor_decodes_at_the_precision_asked_and_records_it(
    multilingual: Path, manifest: Path, tmp_path: Path
) -> None:
    """``bf16`` runs the decoder's matrix products in bf16 (autocast); ``32`` in float32 throughout; the
    run directory says which, so an anchor's numbers carry their precision."""
    dtypes: list[torch.dtype] = []
    for precision in ("bf16", "32"):
        baseline = WhisperDecoderBaseline(str(multilingual), max_new_tokens=2, precision=precision)
        dtypes.clear()
        baseline.model.proj_out.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
        baseline.transcribe([0.1 * torch.randn(8000)], "es")
        assert set(dtypes) == {torch.bfloat16 if precision == "bf16" else torch.float32}, precision
    evaluate_whisper(manifest, tmp_path / "run", path=str(multilingual), max_new_tokens=2, precision="32")
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["precision"]["precision"] == "32"


def test_runs_that_share_clips_encode_each_clip_once_and_match_separate_runs(
    multilingual: Path, manifest: Path, tmp_path: Path
) -> None:
    """Transcribing and translating the same six clips in one call runs the encoder on six clips, not
    twelve, and writes the same run directories as two separate calls."""
    encoded: list[int] = []
    original = WhisperDecoderBaseline.encode

    def counting(self, clips):
        encoded.append(len(clips))
        return original(self, clips)

    runs = [WhisperRun("asr", (manifest,), tmp_path / "asr"), WhisperRun("st", (manifest,), tmp_path / "st")]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(WhisperDecoderBaseline, "encode", counting)
        together = evaluate_whisper_runs(runs, str(multilingual), max_new_tokens=3, precision="32")
    assert sum(encoded) == len(LANGUAGES)
    alone = [
        evaluate_whisper(
            manifest,
            tmp_path / f"alone_{task}",
            path=str(multilingual),
            max_new_tokens=3,
            task=task,
            precision="32",
        )
        for task in ("asr", "st")
    ]
    assert together == alone
    for task, name in (("asr", "hyps_asr_nl.tsv"), ("st", "bleu_st_nl-en.tsv")):
        assert read_hypotheses(tmp_path / task / name) == read_hypotheses(tmp_path / f"alone_{task}" / name)


def test_the_cli_writes_one_run_directory_per_run_and_refuses_mixed_forms(
    multilingual: Path, manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["whisper-baseline", "--model", str(multilingual), "--max-new-tokens", "2"]
    runs = [
        "--run",
        "asr",
        str(manifest),
        str(tmp_path / "a"),
        "--run",
        "st",
        str(manifest),
        str(tmp_path / "b"),
    ]
    assert main([*argv, *runs]) in (0, None)
    assert json.loads((tmp_path / "a" / "run.json").read_text())["tasks"] == ["asr"]
    assert json.loads((tmp_path / "b" / "run.json").read_text())["tasks"] == ["st"]
    capsys.readouterr()
    assert main([*argv, *runs[:4], "--manifest", str(manifest), "--out", str(tmp_path / "c")]) == 2
    assert "not both" in capsys.readouterr().err
    assert main([*argv, "--run", "mt", str(manifest), str(tmp_path / "d")]) == 2
    assert "unknown task 'mt'" in capsys.readouterr().err
    assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()
