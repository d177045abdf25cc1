"""The demo's real-speech evaluation in every language (recipes/demo): the sets stage 1 cuts from
the evaluation-only corpora (Asterisk en/es/fr/it, Fish Fillets nl/cs), and the report's table per
language and test set, each cell a system's score with its clip count."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers.paths import REPO
from helpers.recipe_modules import recipe_module
from lhotse import CutSet, MonoCut, Recording, SupervisionSegment

from speechllm.rundir import RunInfo, write_metrics, write_run_info

DEMO = REPO / "recipes" / "demo"


def _demo_module(name: str):
    return recipe_module("demo", name)


def _cut(directory: Path, cut_id: str, language: str, translation: str | None) -> MonoCut:
    wav = directory / f"{cut_id}.wav"
    sf.write(wav, np.zeros(1600, dtype=np.float32), 16000)
    recording = Recording.from_file(str(wav), recording_id=cut_id)
    custom = {"split": "eval_only", **({"translation": translation, "tgt_lang": "en"} if translation else {})}
    sup = SupervisionSegment(
        cut_id, cut_id, 0.0, recording.duration, text="words", language=language, custom=custom
    )
    return MonoCut(cut_id, 0.0, recording.duration, 0, recording=recording, supervisions=[sup])


def _corpus(path: Path, cuts: list[MonoCut]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    CutSet.from_cuts(cuts).to_file(path)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """Asterisk-like prompts (6 per language; es/fr/it: 4 with an English parallel) and
    Fillets-like lines (nl/cs: 5 each with their subtitle, 1 without)."""
    audio = tmp_path / "audio"
    audio.mkdir()
    prompts = [_cut(audio, f"realspeech-en-p{i}", "en", None) for i in range(6)]
    for lang in ("es", "fr", "it"):
        prompts += [
            _cut(audio, f"realspeech-{lang}-p{i}", lang, "words" if i < 4 else None) for i in range(6)
        ]
    _corpus(tmp_path / "data" / "realspeech" / "realspeech_cuts_test.jsonl.gz", prompts)
    lines = [
        _cut(audio, f"fillets-{lang}-l{i}", lang, "the subtitle" if i < 5 else None)
        for lang in ("nl", "cs")
        for i in range(6)
    ]
    _corpus(tmp_path / "data" / "fillets" / "fillets_cuts_test.jsonl.gz", lines)
    return tmp_path / "data"


def test_stage_1_cuts_real_sets_per_language_from_the_evaluation_only_corpora(data_dir: Path) -> None:
    sets = _demo_module("subsets").real_sets(data_dir, num_en=5, num_other=3, seed=0)
    languages = {name: [c.supervisions[0].language for c in cuts] for name, cuts in sets.items()}
    assert languages["real_en"] == ["en"] * 5
    assert languages["real_asr"] == ["es"] * 3 + ["fr"] * 3 + ["it"] * 3
    assert languages["real_st"] == languages["real_asr"] + ["nl"] * 3 + ["cs"] * 3
    # the es/fr/it ASR and ST sets are the same clips, each with an English parallel
    assert [c.id for c in sets["real_st"][:9]] == [c.id for c in sets["real_asr"]]
    assert all(c.supervisions[0].custom["tgt_lang"] == "en" for c in sets["real_st"])
    # drawn with the seed: the same clips every run, more asked than there are: all of them
    again = _demo_module("subsets").real_sets(data_dir, num_en=5, num_other=3, seed=0)
    assert [c.id for c in again["real_st"]] == [c.id for c in sets["real_st"]]
    every = _demo_module("subsets").real_sets(data_dir, num_en=50, num_other=50, seed=0)
    assert len(every["real_asr"]) == 12 and len(every["real_st"]) == 22


def test_a_corpus_without_one_language_is_named(data_dir: Path) -> None:
    path = data_dir / "fillets" / "fillets_cuts_test.jsonl.gz"
    kept = [c for c in CutSet.from_file(path) if c.supervisions[0].language != "cs"]
    _corpus(path, kept)
    with pytest.raises(SystemExit, match="fillets_cuts_test.jsonl.gz has no cs clip"):
        _demo_module("subsets").real_sets(data_dir, num_en=5, num_other=3, seed=0)


def _run_dir(out: Path, system: str, test_set: str, task: str, scores: dict[str, tuple[float, int]]) -> None:
    """A scored run directory as evaluate / whisper-baseline write it: ``{label: (score, clips)}``."""
    run_dir = out / "eval" / system / test_set
    run_dir.mkdir(parents=True)
    write_run_info(run_dir, RunInfo("whisper", "llama", "conv", [task], {}))
    metric = "asr_wer" if task == "asr" else "st_bleu"
    write_metrics(
        run_dir,
        {
            **{f"{metric}_{label}": score for label, (score, _) in scores.items()},
            **{f"num_sentences_{task}_{label}": float(n) for label, (_, n) in scores.items()},
        },
    )


@pytest.fixture
def demo_out(tmp_path: Path) -> Path:
    """What stages 2, 4 and 5 leave under OUT/eval on the real-speech sets (made-up scores)."""
    out = tmp_path / "out"
    _run_dir(out, "asr_conv", "real_en", "asr", {"en": (70.0, 45)})
    _run_dir(out, "asr_conv_alone", "real_en", "asr", {"en": (66.0, 45)})
    _run_dir(out, "asr_conv_untrained", "real_en", "asr", {"en": (300.0, 20)})
    _run_dir(out, "whisper", "real_en", "asr", {"en": (7.0, 45)})
    _run_dir(out, "whisper_base", "real_en", "asr", {"en": (8.0, 45)})
    esfrit = {lang: (50.0 + i, 20) for i, lang in enumerate(("es", "fr", "it"))}
    _run_dir(out, "whisper_base", "real_asr", "asr", esfrit)
    _run_dir(out, "st_alone", "real_asr", "asr", {k: (v + 30, n) for k, (v, n) in esfrit.items()})
    _run_dir(out, "st_untrained", "real_asr", "asr", {"es": (400.0, 7), "fr": (380.0, 7), "it": (390.0, 6)})
    pairs = {f"{lang}-en": (10.0 + i, 20) for i, lang in enumerate(("es", "fr", "it", "nl", "cs"))}
    _run_dir(out, "whisper_base", "real_st", "st", pairs)
    _run_dir(out, "st", "real_st", "st", {k: (1.0, n) for k, (_, n) in pairs.items()})
    _run_dir(out, "st_untrained", "real_st", "st", {k: (0.1, 4) for k in pairs})
    ceiling = {"llm": "smollm2", "real_st": {k: {"sentences": 20, "bleu": 0.5, "sample": []} for k in pairs}}
    (out / "eval" / "text_ceiling.json").write_text(json.dumps(ceiling))
    return out


def test_the_report_has_a_row_per_language_with_each_system_and_its_clips(demo_out: Path) -> None:
    rows = _demo_module("language_table").language_rows(demo_out, "conv")
    by_key = {(r["set"], r["task"], r["language"]): r for r in rows}
    assert set(by_key) == {
        ("real_en", "asr", "en"),
        *{("real_asr", "asr", lang) for lang in ("es", "fr", "it")},
        *{("real_st", "st", f"{lang}-en") for lang in ("es", "fr", "it", "nl", "cs")},
    }
    english = by_key[("real_en", "asr", "en")]
    assert english["scores"] == {
        "trained model": 70.0,
        "adapter alone": 66.0,
        "Whisper tiny.en": 7.0,
        "Whisper base": 8.0,
        "untrained": 300.0,
    }
    assert english["num_clips"] == 45 and english["clips"]["untrained"] == 20
    spanish = by_key[("real_asr", "asr", "es")]  # the ST model's adapter is the es/fr/it recognizer
    assert spanish["scores"] == {"adapter alone": 80.0, "Whisper base": 50.0, "untrained": 400.0}
    dutch = by_key[("real_st", "st", "nl-en")]
    assert dutch["scores"] == {
        "trained model": 1.0,
        "Whisper base": 13.0,
        "untrained": 0.1,
        "LLM from gold text": 0.5,
    }
    assert dutch["num_clips"] == 20 and dutch["clips"]["untrained"] == 4


def test_report_writes_the_language_table_plot_and_summary(demo_out: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(DEMO / "report.py"), str(demo_out), "--adapters", "conv"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = (demo_out / "report.md").read_text()
    table = [line for line in report.splitlines() if line.startswith("| real (")]
    assert len(table) == 1 + 3 + 5
    assert (
        "| real (Asterisk prompts) | ASR, WER % | en | 45 | 70.0 | 66.0 | 7.0 | 8.0 | 300.0 (20) | – |"
        in table
    )
    nl = next(line for line in table if "| nl-en |" in line)
    assert nl.endswith("| 20 | 1.0 | – | – | 13.0 | 0.1 (4) | 0.5 |")
    summary = json.loads((demo_out / "summary.json").read_text())
    assert len(summary["languages"]) == 9
    assert "real ST BLEU (cs-en/es-en/fr-en/it-en/nl-en): trained model 1.0/1.0/1.0/1.0/1.0" in result.stdout
    if importlib.util.find_spec("matplotlib") is not None:
        assert (demo_out / "languages.png").is_file() and "languages.png" in report
