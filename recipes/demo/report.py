"""The demo's report (stage 6 of recipes/demo/run.sh): tables, curves and sample transcripts.

Reads the run directories the earlier stages wrote under OUT (``eval/<system>/<test set>/``,
``runs/<run>/curve.tsv``, ``eval/text_ceiling.json``) and writes ``OUT/report.md``,
``OUT/summary.json`` and, when matplotlib is installed, ``OUT/curves.png`` (training loss and dev
WER against wall-clock time), ``OUT/wer_per_adapter.png`` and ``OUT/languages.png`` (every test
set per language: :mod:`language_table`). The summary printed at the end holds the two lines docs/demo.md
quotes: ``best adapter WER: N%`` and ``whisper tiny.en WER: M%`` (synthetic test set).

Usage: python recipes/demo/report.py OUT --adapters wlq_former conv [--wall-seconds S]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from language_table import language_rows, language_summary, language_table, plot_languages

from speechllm.io import atomic_write
from speechllm.metrics.checks_report import checks_sections
from speechllm.metrics.paper import paper_compression
from speechllm.metrics.run_report import decoding_label
from speechllm.rundir import hyps_file_name, read_compression, read_hypotheses, read_metrics, read_run_info

ASR_SETS = {"asr_test": "synthetic test", "real_en": "real speech", "train_probe": "training clips"}
NUM_SAMPLES = 5


ASR_HYPS = hyps_file_name("asr", "en")  # the demo's test sets are English


def _compression(run_dir: Path) -> float | None:
    """Adapter outputs per second of audio (the LLM's audio frame rate)."""
    compression = read_compression(run_dir)
    return None if compression is None else compression.output_rate_hz


def read_curve(path: Path) -> dict[str, list[tuple[int, float, float]]]:
    """``curve.tsv`` → ``{"loss": [(step, seconds, value)], "dev": [...]}``."""
    curves: dict[str, list[tuple[int, float, float]]] = {"loss": [], "dev": []}
    if not path.is_file():
        return curves
    seen = set()
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        kind, step, seconds, value = line.split("\t")
        if (kind, step) in seen:  # a validation at the last step may be reported twice
            continue
        seen.add((kind, step))
        curves.setdefault(kind, []).append((int(step), float(seconds), float(value)))
    return curves


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def floor_note(eval_dir: Path) -> str:
    """``; N clips per set, ≤ T tokens`` when an untrained floor decoded a sample of each set (run.sh)."""
    runs = [d for d in sorted(eval_dir.iterdir()) if (d / "run.json").is_file()] if eval_dir.is_dir() else []
    if not runs:
        return ""
    extra = read_run_info(runs[0]).extra
    clips = sorted({read_run_info(d).extra.get(f"{t}_cuts") for d in runs for t in ("asr", "st")} - {None})
    bounded = any(".sample" in str(m) for t in ("asr", "st") for m in extra.get(f"{t}_manifests", []))
    if not bounded:
        return ""
    return f"; {'/'.join(str(c) for c in clips)} clips per set, ≤ {extra.get('max_new_tokens')} tokens"


def asr_rows(out: Path, adapters: list[str]) -> list[dict]:
    """One row per system: WER on each test set, training steps and minutes, audio frame rate."""
    systems = [("Whisper tiny.en decoder (anchor)", "whisper", None)]
    for a in adapters:
        systems += [(f"{a} adapter + LLM (trained)", f"asr_{a}", a)]
        systems += [(f"{a} adapter alone (pre-aligned, CTC greedy, no LLM)", f"asr_{a}_alone", None)]
    untrained = sorted(p.name for p in (out / "eval").glob("asr_*_untrained"))
    systems += [
        (f"{name[4:-10]} adapter (untrained{floor_note(out / 'eval' / name)})", name, None)
        for name in untrained
    ]
    rows = []
    for label, system, adapter in systems:
        row: dict = {"system": label, "key": system, "adapter": adapter}
        for test_set in ASR_SETS:
            row[test_set] = read_metrics(out / "eval" / system / test_set).get("asr_wer_en")
        curve = read_curve(out / "runs" / system / "curve.tsv")
        prealign = out / "runs" / system / "prealign" / "prealign.json"
        if prealign.is_file():
            row["prealign"] = json.loads(prealign.read_text(encoding="utf-8"))
        if curve["loss"]:
            row["steps"] = curve["loss"][-1][0]
            row["train_minutes"] = curve["loss"][-1][1] / 60
            head = [v for _, _, v in curve["loss"][:10]]
            tail = [v for _, _, v in curve["loss"][-10:]]
            row["loss_first10"] = sum(head) / len(head)
            row["loss_last10"] = sum(tail) / len(tail)
        row["frames_per_s"] = _compression(out / "eval" / system / "asr_test")
        rows.append(row)
    return rows


def rate_rows(out: Path, adapters: list[str]) -> list[dict]:
    """Per trained adapter: its output rate and compression, what the LLM reads, and Table 1's."""
    rows = []
    for adapter in adapters:
        compression = read_compression(out / "eval" / f"asr_{adapter}" / "asr_test")
        if compression is None:
            continue
        row = {
            "adapter": adapter,
            "out_hz": compression.output_rate_hz,
            "ratio": compression.compression_ratio,
        }
        if compression.mean_read_len is not None:
            row["read_hz"] = compression.read_rate_hz
            row["read_ratio"] = compression.mean_in_len / compression.mean_read_len
        paper = paper_compression("whisper", adapter)
        if paper is not None:
            row["paper_ratio"], row["paper_hz"] = paper.compression_ratio, paper.sampling_rate_hz
        rows.append(row)
    return rows


def st_rows(out: Path) -> list[dict]:
    rows = []
    floor = f"ST adapter (untrained{floor_note(out / 'eval' / 'st_untrained')})"
    for label, system in (("ST adapter (trained)", "st"), (floor, "st_untrained")):
        metrics = read_metrics(out / "eval" / system / "st_test")
        pairs = sorted(k.removeprefix("st_bleu_") for k in metrics if k.startswith("st_bleu_"))
        if pairs:
            bleus = {pair: metrics[f"st_bleu_{pair}"] for pair in pairs}
            rows.append({"system": label, "bleu": bleus, "bleu_avg": sum(bleus.values()) / len(bleus)})
    return rows


def samples(out: Path, adapters: list[str]) -> list[str]:
    """A few synthetic test sentences: reference, Whisper, each trained adapter."""
    whisper = out / "eval" / "whisper" / "asr_test" / ASR_HYPS
    if not whisper.is_file():
        return []
    hyps = {"Whisper": read_hypotheses(whisper)}
    for adapter in adapters:
        path = out / "eval" / f"asr_{adapter}" / "asr_test" / ASR_HYPS
        if path.is_file():
            hyps[adapter] = read_hypotheses(path)
    lines = []
    for cut_id in list(hyps["Whisper"])[:NUM_SAMPLES]:
        lines.append(f"- **reference**: {hyps['Whisper'][cut_id]['reference']}")
        for name, table in hyps.items():
            if cut_id in table:
                lines.append(f"  - {name}: {table[cut_id]['hypothesis']}")
    return lines


def smooth(values: list[float], window: int = 10) -> list[float]:
    """Running mean over the last ``window`` values (the per-step loss is noisy with small batches)."""
    return [
        sum(values[max(0, i - window + 1) : i + 1]) / (i + 1 - max(0, i - window + 1))
        for i in range(len(values))
    ]


def plot(out: Path, adapters: list[str], rows: list[dict]) -> list[Path]:
    """Loss / dev WER against minutes, and WER per adapter; nothing without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    fig, (ax_loss, ax_wer) = plt.subplots(1, 2, figsize=(11, 4))
    for adapter in adapters:
        run = out / "runs" / f"asr_{adapter}"
        pre = read_curve(run / "prealign" / "curve.tsv")
        offset = pre["loss"][-1][1] / 60 if pre["loss"] else 0.0  # the LLM stage starts after it
        stages = [
            (pre, 0.0, f"{adapter}: pre-alignment (CTC; adapter alone)"),
            (read_curve(run / "curve.tsv"), offset, f"{adapter}: + LLM"),
        ]
        for curve, start, label in stages:
            if curve["loss"]:
                minutes = [start + s / 60 for _, s, _ in curve["loss"]]
                (line,) = ax_loss.plot(minutes, [v for *_, v in curve["loss"]], alpha=0.3)
                ax_loss.plot(
                    minutes, smooth([v for *_, v in curve["loss"]]), color=line.get_color(), label=label
                )
            if curve["dev"]:
                ax_wer.plot(
                    [start + s / 60 for _, s, _ in curve["dev"]],
                    [v for *_, v in curve["dev"]],
                    "o-",
                    label=label,
                )
    whisper = next((r["asr_test"] for r in rows if r["key"] == "whisper"), None)
    if whisper is not None:
        ax_wer.axhline(whisper, color="grey", linestyle="--", label="Whisper tiny.en (test)")
    ax_loss.set(
        xlabel="training minutes",
        ylabel="training loss",
        title="loss (running mean of 10 steps)",
        yscale="log",
    )
    ax_wer.set(xlabel="training minutes", ylabel="dev WER (%)", title="dev WER (greedy)", ylim=(0, 150))
    for ax in (ax_loss, ax_wer):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    curves = out / "curves.png"
    fig.savefig(curves, dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    shown = [r for r in rows if r["asr_test"] is not None]
    ax.barh([r["system"] for r in shown], [r["asr_test"] for r in shown], color="tab:blue")
    ax.set(xlabel="WER (%) on the synthetic test set", title="WER per system")
    ax.invert_yaxis()
    fig.tight_layout()
    bars = out / "wer_per_adapter.png"
    fig.savefig(bars, dpi=100)
    plt.close(fig)
    return [curves, bars]


def asr_table(rows: list[dict], decoding: str) -> list[str]:
    lines = [
        f"## ASR (English), WER % (LLM decoding: {decoding}; lower is better)",
        "",
        "| system | synthetic test | real speech | training clips | steps | train min | "
        "loss first→last 10 | adapter outputs/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        loss = f"{r['loss_first10']:.2f}→{r['loss_last10']:.2f}" if "loss_first10" in r else "–"
        lines.append(
            f"| {r['system']} | {_fmt(r['asr_test'])} | {_fmt(r['real_en'])} | {_fmt(r['train_probe'])} | "
            f"{r.get('steps', '–')} | {_fmt(r.get('train_minutes'))} | {loss} | {_fmt(r['frames_per_s'])} |"
        )
    return lines


def rate_table(rates: list[dict]) -> list[str]:
    if not rates:
        return []
    lines = [
        "",
        "## Output rate and compression (synthetic test set) beside the paper's Table 1 (Whisper)",
        "",
        "| adapter | adapter outputs /s | compression | LLM reads /s | compression "
        "| paper: ratio | paper: /s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rates:
        lines.append(
            f"| {r['adapter']} | {_fmt(r['out_hz'])} | {_fmt(r['ratio'])}:1 | {_fmt(r.get('read_hz'))} | "
            f"{_fmt(r.get('read_ratio'))}:1 | {_fmt(r.get('paper_ratio'), 0)}:1 "
            f"| {_fmt(r.get('paper_hz'), 2)} |"
        )
    return lines


def prealign_table(rows: list[dict]) -> list[str]:
    pre = [r for r in rows if "prealign" in r]
    if not pre:
        return []
    lines = [
        "",
        "## Pre-alignment",
        "",
        "| adapter | objective | steps | minutes | dev WER, adapter alone | vocabulary |",
        "|---|---|---|---|---|---|",
    ]
    for r in pre:
        p = r["prealign"]
        lines.append(
            f"| {r['adapter']} | {p['objective']} | {p['steps']} | {p['seconds'] / 60:.1f} | "
            f"{_fmt(p.get('dev_wer'))} | {p.get('vocabulary')} |"
        )
    return lines


def st_table(st: list[dict]) -> list[str]:
    if not st:
        return []
    lines = ["", "## ST on the synthetic test set (de/es/fr/it → en), BLEU (higher is better)", ""]
    pairs = sorted(st[0]["bleu"])
    lines += ["| system | " + " | ".join(pairs) + " | average |", "|---" * (len(pairs) + 2) + "|"]
    for r in st:
        cells = " | ".join(_fmt(r["bleu"].get(p)) for p in pairs)
        lines.append(f"| {r['system']} | {cells} | {_fmt(r['bleu_avg'])} |")
    return lines


def headline(rows: list[dict], st: list[dict], summary: dict) -> list[str]:
    """The summary lines docs/demo.md quotes; adds the best adapter and its ratio to ``summary``."""
    trained = [r for r in rows if r["adapter"] and r["asr_test"] is not None]
    best = min(trained, key=lambda r: r["asr_test"]) if trained else None
    whisper = next((r for r in rows if r["key"] == "whisper"), None)
    untrained = next((r for r in rows if r["key"].endswith("_untrained")), None)
    alone = [r for r in rows if r["key"].endswith("_alone") and r["asr_test"] is not None]
    lines = []
    if best is not None:
        lines.append(f"best adapter WER: {best['asr_test']:.1f}% ({best['adapter']})")
        summary["best_adapter"] = {"adapter": best["adapter"], "wer": best["asr_test"]}
    if whisper is not None and whisper["asr_test"] is not None:
        lines.append(f"whisper tiny.en WER: {whisper['asr_test']:.1f}%")
        if best is not None:
            ratio = best["asr_test"] / whisper["asr_test"]
            lines.append(f"ratio: {ratio:.2f}× Whisper tiny.en (target ≤ 1.25×)")
            summary["ratio_to_whisper"] = ratio
    for r in alone:
        lines.append(f"{r['key'][4:-6]} adapter alone (CTC greedy) WER: {r['asr_test']:.1f}%")
    real = [
        (name, r["real_en"])
        for name, r in (("best adapter", best), ("whisper", whisper), ("untrained", untrained))
        if r and r.get("real_en") is not None
    ]
    if real:
        lines.append("real speech WER: " + ", ".join(f"{name} {value:.1f}%" for name, value in real))
    lines += [f"{r['system']} BLEU: {r['bleu_avg']:.1f}" for r in st]
    return lines


def run_decoding(run_dir: Path) -> str:
    """How a run directory was decoded, in words (greedy when it predates the record)."""
    if not (run_dir / "run.json").is_file():
        return "greedy"
    extra = read_run_info(run_dir).extra
    return decoding_label(extra.get("decoding"), extra.get("decoder", "llm"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--adapters", nargs="+", required=True)
    parser.add_argument("--wall-seconds", type=float, default=None, help="the whole run's wall time")
    args = parser.parse_args()
    out: Path = args.out
    rows = asr_rows(out, args.adapters)
    st = st_rows(out)
    lines = [
        "# speechllm demo: Whisper tiny.en (ASR) / Whisper base (ST) → adapter → SmolLM2-135M-Instruct",
        "",
    ]
    if args.wall_seconds is not None:
        lines += [f"Wall time of the whole run: {args.wall_seconds / 60:.1f} min.", ""]
    decoding = run_decoding(out / "eval" / f"asr_{args.adapters[0]}" / "asr_test")
    lines += asr_table(rows, decoding) + rate_table(rate_rows(out, args.adapters)) + prealign_table(rows)
    summary: dict = {"asr": rows, "st": st, "wall_seconds": args.wall_seconds}
    summary_lines = headline(rows, st, summary)
    languages = language_rows(out, args.adapters[0])
    summary["languages"] = languages
    summary_lines += language_summary(languages)
    lines += st_table(st) + language_table(languages)
    # Whisper's normalizer beside the paper's, decoding speed, degenerate outputs, listening check
    # (docs/evaluation-checks.md), as recorded by each evaluated run directory
    evaluated = sorted(path.parent for path in (out / "eval").glob("*/*/run.json"))
    names = [str(path.relative_to(out / "eval")) for path in evaluated]
    for section in checks_sections(evaluated, names):  # a heading, a table, a caption: blocks apart
        lines += ["", section]
    lines += ["", "## Sample transcripts (synthetic test set)", "", *samples(out, args.adapters)]
    figures = plot(out, args.adapters, rows) + [p for p in [plot_languages(out, languages)] if p is not None]
    if figures:
        lines += ["", "## Figures", ""] + [f"![{p.stem}]({p.name})" for p in figures]
    lines += ["", "## Summary", "", *[f"    {h}" for h in summary_lines], ""]
    summary["decoding"] = decoding
    with atomic_write(out / "report.md") as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
    with atomic_write(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print("\n".join(["", "==== speechllm demo summary ====", *summary_lines, f"report: {out / 'report.md'}"]))


if __name__ == "__main__":
    main()
