"""The demo report's table per language and test set (recipes/demo/report.py).

One row per test set and ASR language or ST direction found in the run directories under
``OUT/eval``; one column per system, each cell the WER (ASR) or BLEU (ST) that system's run
directory holds for that row, with the clip count (a floor decoded on fewer clips says how many):

- trained model: the English ASR model (``asr_<adapter>``) or the ST model (``st``);
- adapter alone: the pre-aligned adapter decoded by CTC greedy, no LLM (``asr_<adapter>_alone``;
  ``st_alone``, the ST model's adapter, is the demo's es/fr/it recognizer);
- Whisper's own decoder: tiny.en (``whisper``) and base (``whisper_base``; ``translate`` for ST);
- the untrained model (``asr_<adapter>_untrained``, ``st_untrained``);
- ST only: SmolLM2 translating the gold source text (``text_ceiling.json`` of
  recipes/demo/text_translation_ceiling.py), the most the demo's ST can reach with this LLM.
"""

from __future__ import annotations

import json
from pathlib import Path

from speechllm.rundir import read_metrics

SET_LABELS = {
    "asr_test": "synthetic (espeak-ng)",
    "st_test": "synthetic (espeak-ng)",
    "real_en": "real (Asterisk prompts)",
    "real_asr": "real (Asterisk prompts)",
    "real_st": "real (Asterisk es/fr/it, Fish Fillets nl/cs)",
}
CEILING = "LLM from gold text"
CEILING_FILE = "text_ceiling.json"


def systems(adapter: str) -> dict[str, list[str]]:
    """Column → the run directories (under ``OUT/eval``) that may fill it, first found wins."""
    return {
        "trained model": [f"asr_{adapter}", "st"],
        "adapter alone": [f"asr_{adapter}_alone", "st_alone"],
        "Whisper tiny.en": ["whisper"],
        "Whisper base": ["whisper_base"],
        "untrained": [f"asr_{adapter}_untrained", "st_untrained"],
    }


def _groups(metrics: dict[str, float]) -> list[tuple[str, str]]:
    """``(task, label)`` of each scored group: ``("asr", "en")``, ``("st", "nl-en")``."""
    found = []
    for key in metrics:
        for task, prefix in (("asr", "asr_wer_"), ("st", "st_bleu_")):
            label = key.removeprefix(prefix)
            if key.startswith(prefix) and f"num_sentences_{task}_{label}" in metrics:
                found.append((task, label))
    return found


def language_rows(out: Path, adapter: str) -> list[dict]:
    """One row per (test set, task, language or direction) with each system's score and clips."""
    columns = systems(adapter)
    scored: dict[tuple[str, str], dict[str, float]] = {}  # (system dir, set) → metrics
    for run_dir in sorted((out / "eval").glob("*/*/metrics.json")):
        if run_dir.parent.name in SET_LABELS:
            scored[(run_dir.parent.parent.name, run_dir.parent.name)] = read_metrics(run_dir.parent)
    keys = sorted({(test_set, *group) for (_, test_set), m in scored.items() for group in _groups(m)})
    ceiling_path = out / "eval" / CEILING_FILE
    ceiling = json.loads(ceiling_path.read_text(encoding="utf-8")) if ceiling_path.is_file() else {}
    rows = []
    for test_set, task, label in sorted(keys, key=lambda k: (k[1], list(SET_LABELS).index(k[0]), k[2])):
        metric = f"{'asr_wer' if task == 'asr' else 'st_bleu'}_{label}"
        row: dict = {"set": test_set, "task": task, "language": label, "scores": {}, "clips": {}}
        for column, candidates in columns.items():
            for system in candidates:
                metrics = scored.get((system, test_set), {})
                if metric in metrics:
                    row["scores"][column] = metrics[metric]
                    row["clips"][column] = int(metrics[f"num_sentences_{task}_{label}"])
                    break
        if task == "st" and label in ceiling.get(test_set, {}):
            row["scores"][CEILING] = ceiling[test_set][label]["bleu"]
            row["clips"][CEILING] = ceiling[test_set][label]["sentences"]
        counts = [n for column, n in row["clips"].items() if column != "untrained"]
        row["num_clips"] = max(counts or row["clips"].values())
        rows.append(row)
    return rows


def _cell(row: dict, column: str) -> str:
    if column not in row["scores"]:
        return "–"
    clips = row["clips"][column]
    return f"{row['scores'][column]:.1f}" + ("" if clips == row["num_clips"] else f" ({clips})")


def language_table(rows: list[dict]) -> list[str]:
    """The markdown section: WER % (ASR, lower is better) or BLEU (ST, higher is better) per row."""
    if not rows:
        return []
    columns = [*systems("").keys(), CEILING]
    lines = [
        "",
        "## Per language and test set: the trained model beside Whisper's own decoders and the floor",
        "",
        "ASR rows: WER % (lower is better); ST rows: BLEU into English (higher is better). A cell "
        "decoded on fewer clips than the set holds gives their number in parentheses (the "
        f"untrained floor). *{CEILING}*: SmolLM2 translating the gold source transcript, the most "
        "the demo's ST can reach with this LLM.",
        "",
        "| test set | task | language | clips | " + " | ".join(columns) + " |",
        "|---|---|---|---:|" + "---:|" * len(columns),
    ]
    for row in rows:
        task = "ASR, WER %" if row["task"] == "asr" else "ST, BLEU"
        cells = " | ".join(_cell(row, column) for column in columns)
        lines.append(
            f"| {SET_LABELS[row['set']]} | {task} | {row['language']} | {row['num_clips']} | {cells} |"
        )
    return lines


def language_summary(rows: list[dict]) -> list[str]:
    """Summary lines for the real-speech sets other than English: one per set and task."""
    lines = []
    for test_set, task in (("real_asr", "asr"), ("real_st", "st")):
        picked = [r for r in rows if r["set"] == test_set and r["task"] == task]
        if not picked:
            continue
        what = "WER" if task == "asr" else "BLEU"
        columns = [c for c in [*systems("").keys(), CEILING] if any(c in r["scores"] for r in picked)]
        parts = [
            f"{column} "
            + "/".join(f"{r['scores'][column]:.1f}" if column in r["scores"] else "–" for r in picked)
            for column in columns
        ]
        labels = "/".join(r["language"] for r in picked)
        lines.append(f"real {task.upper()} {what} ({labels}): " + ", ".join(parts))
    return lines


def plot_languages(out: Path, rows: list[dict]) -> Path | None:
    """``OUT/languages.png``: grouped bars per row, WER rows and BLEU rows in two panels."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    panels = [(task, [r for r in rows if r["task"] == task]) for task in ("asr", "st")]
    panels = [(task, picked) for task, picked in panels if picked]
    if not panels:
        return None
    columns = [*systems("").keys(), CEILING]
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 3.6 * len(panels)), squeeze=False)
    width = 0.8 / len(columns)
    for ax, (task, picked) in zip(axes[:, 0], panels):
        for index, column in enumerate(columns):
            values = [r["scores"].get(column) for r in picked]
            if all(v is None for v in values):
                continue
            xs = [i + (index - len(columns) / 2) * width for i in range(len(picked))]
            ax.bar(
                [x for x, v in zip(xs, values) if v is not None],
                [v for v in values if v is not None],
                width,
                label=column,
            )
        ax.set_xticks(range(len(picked)))
        short = {"asr_test": "synth", "st_test": "synth"}
        ax.set_xticklabels([f"{short.get(r['set'], 'real')} {r['language']}" for r in picked], fontsize=8)
        ax.set(
            ylabel="WER (%)" if task == "asr" else "BLEU", title="ASR" if task == "asr" else "ST → English"
        )
        if task == "asr":
            ax.set_ylim(0, 150)  # an untrained floor far above 100 % would flatten the rest
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    path = out / "languages.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
