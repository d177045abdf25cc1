"""The model card (``README.md``) of an exported model: what it is, how to load it, how it scored.

The scores are those of the evaluated run directories (:mod:`speechllm.rundir`) found beside the
model: ``speechllm evaluate``'s default ``<model dir>/eval``, the training callbacks'
``<output_dir>/eval/<stage>_step<N>``, or any directory given. Nothing is re-evaluated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speechllm.io import atomic_write
from speechllm.rundir import RUN_INFO_FILE, RunInfo, read_metrics, read_run_info

CARD_FILE = "README.md"


@dataclass(frozen=True)
class EvaluatedRun:
    """One evaluated run directory: its ``run.json`` and ``metrics.json``."""

    directory: Path
    info: RunInfo
    metrics: dict[str, float]


def find_evaluations(places: Iterable[Path]) -> list[EvaluatedRun]:
    """Every evaluated run directory at, in ``eval/`` of, or one level below the ``eval/`` of each
    place, once each, sorted by path.

    Raises:
        RunDirError: a ``run.json`` or ``metrics.json`` found is malformed (naming it).
    """
    found: dict[Path, EvaluatedRun] = {}
    for place in places:
        candidates = [place, place / "eval", *sorted((place / "eval").glob("*"))]
        for directory in candidates:
            key = directory.resolve()
            if key not in found and (directory / RUN_INFO_FILE).is_file():
                found[key] = EvaluatedRun(directory, read_run_info(directory), read_metrics(directory))
    return sorted(found.values(), key=lambda run: str(run.directory))


@dataclass(frozen=True)
class ExportedFrom:
    """Where an export came from: its model directory, the LLM's original path and LoRA options
    (None: no LoRA), and the names of the trained tensors kept in ``trainable.safetensors``."""

    model_dir: Path
    llm_path: str
    lora: Mapping[str, Any] | None
    trained: Sequence[str]


def write_model_card(
    out: Path, config: Mapping[str, Any], runs: Sequence[EvaluatedRun], source: ExportedFrom
) -> Path:
    """Write ``out/README.md`` for an export of the model ``config`` (see :mod:`speechllm.export`)."""
    path = out / CARD_FILE
    with atomic_write(path) as tmp:
        tmp.write_text(model_card(config, runs, source), encoding="utf-8")
    return path


def model_card(config: Mapping[str, Any], runs: Sequence[EvaluatedRun], source: ExportedFrom) -> str:
    """The card's Markdown: front matter, components, loading, results."""
    encoder, adapter, llm = config["encoder"], config["adapter"], config["llm"]
    trained = source.trained
    merged = f"LoRA (r={source.lora.get('r', 8)}) merged into the weights" if source.lora else "no LoRA"
    groups = sorted({name.split(".")[0] for name in trained})
    lines = [
        "---",
        "library_name: speechllm",
        "tags: [speech, automatic-speech-recognition, speech-translation, speechllm]",
        "---",
        "",
        f"# speechllm: {encoder.get('name')} + {adapter.get('name')} adapter + LLM",
        "",
        f"Exported by `speechllm export` from `{source.model_dir}`.",
        "",
        "| part | what | file |",
        "|---|---|---|",
        f"| speech encoder | `{encoder.get('name')}` from `{encoder.get('path', '(default)')}`"
        f"{_options(encoder)} | `encoder.json` (not copied: load it by name) |",
        f"| adapter | `{adapter.get('name')}`{_options(adapter)} | `trainable.safetensors` |",
        f"| LLM | `{source.llm_path}`, {merged}{_options(llm)} | `llm/` (a transformers directory) |",
        "",
        f"Trained tensors in `trainable.safetensors`: {', '.join(groups) or 'none'}. "
        "The prompt around the audio is in `prompt.json`.",
        "",
        "## Loading",
        "",
        "```python",
        "from speechllm import SpeechLLM",
        "",
        'model = SpeechLLM.from_pretrained("THIS_DIR")  # encoder by name, llm/ and the adapter from here',
        'texts = model.generate(audio, audio_lens, task="asr", src_lang="en")',
        "```",
        "",
        "The LLM alone (no audio) loads with plain transformers:",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        'llm = AutoModelForCausalLM.from_pretrained("THIS_DIR/llm")',
        'tokenizer = AutoTokenizer.from_pretrained("THIS_DIR/llm")',
        "```",
        "",
        "## Evaluation results",
        "",
        *_results(runs),
    ]
    return "\n".join(lines) + "\n"


def _options(section: Mapping[str, Any]) -> str:
    shown = {
        k: v for k, v in section.items() if k not in ("name", "path", "prompt") and not isinstance(v, dict)
    }
    return (" (" + ", ".join(f"{k}={v}" for k, v in sorted(shown.items())) + ")") if shown else ""


def _results(runs: Sequence[EvaluatedRun]) -> list[str]:
    """One table per evaluated run: its tasks and every metric of ``metrics.json``."""
    if not runs:
        return ["No evaluated run directory was found beside the model (run `speechllm evaluate`)."]
    lines: list[str] = []
    for run in runs:
        tasks = ", ".join(run.info.tasks) or "?"
        lines += [f"### `{run.directory.name}` (tasks: {tasks})", ""]
        for task in run.info.tasks:  # what `speechllm evaluate` records in run.json
            manifests = run.info.extra.get(f"{task}_manifests")
            if manifests:
                cuts = run.info.extra.get(f"{task}_cuts")
                counted = f" ({cuts} cuts)" if cuts is not None else ""
                lines += [f"{task} test set{counted}: " + ", ".join(f"`{m}`" for m in manifests), ""]
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {name} | {value:.2f} |" for name, value in sorted(run.metrics.items())]
        lines.append("")
    return lines
