"""The study's cells: which models it trains, how each is configured, trained and evaluated.

A cell is one trained model: an encoder (Whisper tiny.en or Whisper base), one of the paper's five
adapters and a task (English ASR; de/es/fr/it → en ST on Whisper base, the only one of the two
that heard those languages), pre-aligned (the default, DESIGN.md) or plain (one Conv cell: the
adapter and LoRA trained through the LLM from scratch, to show what pre-alignment changes). Every
cell starts from the demo's config of its adapter (recipes/demo/conf/asr_<adapter>.yaml), reads
the same training data and gets the same minutes. The untrained floors (one per encoder and task)
are the same models saved before training.

``run`` trains and evaluates the cells one at a time, each in its own process (a crash costs that
cell only: it is recorded in ``<out>/cells/<name>/failed.txt`` and the study goes on). A cell whose
``done.json`` exists is skipped, so an interrupted study resumes with the next cell.

Pre-aligned ASR cells whose adapter has a CTC head (all but CIF) are also decoded jointly with it
(``eval_joint``: joint CTC decoding, docs/evaluation.md), beside the paper's greedy LLM decoding
(``eval``, Table 3) and the adapter alone (``eval_alone``). ``joint`` adds that decoding to cells
finished before it existed, without training them again.

Usage:
    python recipes/study/cells.py list
    python recipes/study/cells.py run --out study_out --sets data/demo/study_sets --minutes 5
    python recipes/study/cells.py cell NAME --out study_out --sets ... (one cell, what ``run`` calls)
    python recipes/study/cells.py joint --out study_out --sets ... --minutes 3 [--cells ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "recipes" / "demo"
ADAPTERS = ("base", "cif", "conv", "ctc", "wlq_former")
LLM_LABEL = "SmolLM2-135M"
# Real models (the default) or the tiny random ones built from configs (CI: the same pipeline in seconds).
PRESETS = {
    "real": {
        "whisper-tiny.en": "whisper-tiny.en",
        "whisper-base": "whisper-base",
        "llm": "smollm2-135m-instruct",
    },
    "tiny": {
        "whisper-tiny.en": "tiny-random-whisper",
        "whisper-base": "tiny-random-whisper",
        "llm": "tiny-random-llama",
    },
}
# Each encoder's cache directory under the data directory (recipes/study/run.sh, stage 3).
CACHES = {"whisper-tiny.en": "encoder_cache", "whisper-base": "encoder_cache_base"}
# The test sets of a task (absent ones are skipped: the real-speech sets need stage 0's packages).
TEST_SETS = {"asr": ("asr_test", "real_en"), "st": ("st_test", "real_st")}
FLOOR_CLIPS = 20  # clips spread over each set that an untrained floor decodes (it writes unrelated text)


@dataclass(frozen=True)
class Cell:
    """One trained model of the study (``prealign=False``: trained through the LLM only)."""

    encoder: str
    adapter: str
    task: str
    prealign: bool = True
    untrained: bool = False

    @property
    def name(self) -> str:
        short = self.encoder.removeprefix("whisper-")
        suffix = "_untrained" if self.untrained else "" if self.prealign else "_plain"
        return f"{self.task}_{short}_{self.adapter}{suffix}"

    @property
    def adapter_label(self) -> str:
        """The adapter's name in the tables: the paper's, or what sets this cell apart from it."""
        from speechllm.metrics.paper import canonical_adapter

        label = canonical_adapter(self.adapter)
        if self.untrained:
            return f"{label}, untrained"
        return label if self.prealign else f"{label}, no pre-alignment"

    @property
    def sfm_label(self) -> str:
        """``Whisper tiny.en`` / ``Whisper base``: one Table 3 group per encoder."""
        return "Whisper " + self.encoder.removeprefix("whisper-")


def study_cells() -> list[Cell]:
    """The trained cells, in the order the study runs them: ASR on both encoders, then ST, then plain."""
    encoders = ("whisper-tiny.en", "whisper-base")
    cells = [Cell(encoder, adapter, "asr") for encoder in encoders for adapter in ADAPTERS]
    cells += [Cell("whisper-base", adapter, "st") for adapter in ADAPTERS]
    cells.append(Cell("whisper-tiny.en", "conv", "asr", prealign=False))
    return cells


def floor_cells() -> list[Cell]:
    """The untrained floors: the Conv model saved before training, per encoder and task."""
    return [
        Cell("whisper-tiny.en", "conv", "asr", untrained=True),
        Cell("whisper-base", "conv", "asr", untrained=True),
        Cell("whisper-base", "conv", "st", untrained=True),
    ]


# Pre-alignment within a cell's minutes (300–500 steps for Conv, CIF, WLQ-former): the adapter alone
# left the CTC plateau soonest at peak lr 1e-3 reached over 100 steps, of the rates and ramps measured
# by recipes/study/warmup_sweep.py (docs/study.md); the demo's 4e-3 is tuned for its thousands of steps.
PREALIGN_LR = 1.0e-3
PREALIGN_WARMUP_STEPS = 100


def all_cells() -> dict[str, Cell]:
    return {cell.name: cell for cell in study_cells() + floor_cells()}


@dataclass(frozen=True)
class Settings:
    """What every cell shares: where things are, the budget and the models."""

    out: Path
    sets: Path
    data: Path | None
    minutes: float
    prealign_share: float = 0.8
    seed: int = 0
    threads: int | None = None
    preset: str = "real"
    overrides: tuple[str, ...] = ()
    # > 0: every cell pre-aligns for exactly this many steps, however long they take (the paper's
    # equal training); 0: for its share of the minutes (equal CPU time).
    prealign_steps: int = 0

    def cell_dir(self, cell: Cell) -> Path:
        return self.out / "cells" / cell.name


def cell_overrides(cell: Cell, settings: Settings) -> list[str]:
    """The dotlist that turns the demo's adapter config into this cell's."""
    models = PRESETS[settings.preset]
    split = "asr" if cell.task == "asr" else "st"
    out = settings.cell_dir(cell) / "train"
    overrides = [
        f"output_dir={out}",
        f"seed={settings.seed}",
        f"model.encoder.path={models[cell.encoder]}",
        f"model.llm.path={models['llm']}",
        f"data.train=[{{path: {settings.sets / f'{split}_train.jsonl.gz'}, task: {cell.task}}}]",
        f"data.val=[{{path: {settings.sets / f'{split}_dev.jsonl.gz'}, task: {cell.task}}}]",
    ]
    if settings.prealign_steps > 0:  # ignored by a plain cell, as the minutes are
        overrides += [f"prealign.steps={settings.prealign_steps}", "prealign.minutes=null"]
    else:
        overrides.append(f"prealign.minutes={settings.minutes * settings.prealign_share:.3f}")
    if cell.prealign:  # a few hundred steps: a slow start leaves the CTC plateau (warmup_sweep.py)
        overrides += [f"prealign.lr={PREALIGN_LR}", f"prealign.warmup_steps={PREALIGN_WARMUP_STEPS}"]
    cache = settings.data / CACHES[cell.encoder] if settings.data is not None else None
    if cache is not None and cache.is_dir():
        overrides.append(f"data.encoder_cache={cache}")
    if cell.task == "st":  # as recipes/demo/conf/st.yaml: translate, not copy; a higher LoRA rate
        overrides += ["model.prealign.copy_ratio=0.0", "optim.lr=1.0e-3"]
    if not cell.prealign:  # the adapter and LoRA trained through the LLM from their initialisation
        overrides += ["prealign.objective=none", "model.prealign=null", "optim.adapter_lr=null"]
        overrides.append("optim.lr=1.0e-3")
    return overrides + list(settings.overrides)


def prealign_minutes(cell: Cell, settings: Settings) -> float:
    """The pre-alignment stage's minutes (none for a plain cell or a floor; with equal steps, the
    minutes it took, read from its ``prealign.json``)."""
    if not cell.prealign or cell.untrained:
        return 0.0
    if settings.prealign_steps > 0:
        summary = settings.cell_dir(cell) / "train" / "prealign" / "prealign.json"
        return json.loads(summary.read_text())["seconds"] / 60 if summary.is_file() else 0.0
    return settings.minutes * settings.prealign_share


def llm_minutes(cell: Cell, settings: Settings) -> float:
    """The LLM stage's minutes: the cell's budget less pre-alignment (all of it for a plain cell)."""
    return settings.minutes * (1 - settings.prealign_share) if cell.prealign else settings.minutes


def load_cell_config(cell: Cell, settings: Settings):
    from speechllm.config import load_config

    return load_config(DEMO / "conf" / f"asr_{cell.adapter}.yaml", cell_overrides(cell, settings))


def _demo_module(name: str):
    """A module of recipes/demo (a directory of scripts, not a package): its train and evaluate drivers."""
    if str(DEMO) not in sys.path:
        sys.path.insert(0, str(DEMO))
    return __import__(name)


# The weight of joint CTC decoding (docs/evaluation.md: picked among 0.3 / 0.5 / 0.8 / 0.95 on a
# Whisper base Conv model; the demo's default too).
JOINT_CTC_WEIGHT = 0.8
GUARD = {"num_beams": 1, "no_repeat_ngram_size": 3}


def decodes_jointly(cell: Cell, model) -> bool:
    """A trained, pre-aligned ASR cell whose adapter was pre-aligned by CTC (not CIF's cross-entropy)."""
    from speechllm.prealign.head import resolve_objective

    eligible = cell.task == "asr" and cell.prealign and not cell.untrained and model.prealign is not None
    return eligible and resolve_objective("auto", model.adapter) == "ctc"


def evaluate_joint(cell: Cell, settings: Settings, model, name: str) -> None:
    """The cell's model on one ASR set, decoded jointly with its adapter's CTC head (``eval_joint``)."""
    from speechllm.evaluation import evaluate

    labels = {"sfm": cell.sfm_label, "llm": LLM_LABEL, "adapter": cell.adapter_label}
    decoding = {**GUARD, "ctc_weight": JOINT_CTC_WEIGHT}
    evaluate(model, settings.sets / f"{name}.jsonl.gz", task="asr", batch_size=8, max_new_tokens=64,
             out_dir=settings.cell_dir(cell) / "eval_joint" / name, device="cpu", decoding=decoding,
             **labels)  # fmt: skip


def add_joint(names: Sequence[str], settings: Settings) -> dict[str, str]:
    """Decode the finished cells that can (:func:`decodes_jointly`) jointly, where not done yet."""
    from speechllm.model import SpeechLLM

    outcomes = {}
    for name in names:
        cell = all_cells()[name]
        done_file = settings.cell_dir(cell) / "done.json"
        if not done_file.is_file():
            outcomes[name] = "not trained yet"
            continue
        done = json.loads(done_file.read_text(encoding="utf-8"))
        model = SpeechLLM.from_pretrained(Path(done["train_dir"]) / "model")
        if not decodes_jointly(cell, model):
            outcomes[name] = "no CTC head to decode with"
            continue
        todo = [
            s for s in done["sets"] if not (settings.cell_dir(cell) / "eval_joint" / s / "run.json").is_file()
        ]
        for set_name in todo:
            evaluate_joint(cell, settings, model, set_name)
        outcomes[name] = f"joint decoding of {', '.join(todo)}" if todo else "joint decoding done earlier"
        print(f"== {name}: {outcomes[name]}", flush=True)
    return outcomes


def evaluate_cell(cell: Cell, settings: Settings, model_dir: Path) -> list[str]:
    """Decode every test set of the cell's task; pre-aligned ASR cells also decode their adapter alone.

    Returns the sets evaluated (run directories ``<cell>/eval/<set>``, ``<cell>/eval_alone/<set>``
    and, for cells with a CTC head, ``<cell>/eval_joint/<set>``).
    """
    from speechllm.evaluation import evaluate
    from speechllm.model import SpeechLLM

    spread_cuts = _demo_module("evaluate").spread_cuts
    model = SpeechLLM.from_pretrained(model_dir)
    labels = {"sfm": cell.sfm_label, "llm": LLM_LABEL, "adapter": cell.adapter_label}
    evaluated = []
    for name in TEST_SETS[cell.task]:
        manifest = settings.sets / f"{name}.jsonl.gz"
        if not manifest.is_file():
            continue
        out = settings.cell_dir(cell)
        if cell.untrained:  # a floor: a sample of each set, short outputs (docs/study.md)
            manifest = spread_cuts(str(manifest), FLOOR_CLIPS, out / f"{name}.sample.jsonl.gz")
        decoding = dict(GUARD)
        max_tokens = 32 if cell.untrained else 64 if cell.task == "asr" else 48
        evaluate(model, manifest, task=cell.task, out_dir=out / "eval" / name, batch_size=8,
                 max_new_tokens=max_tokens, device="cpu", decoding=decoding, **labels)  # fmt: skip
        if cell.task == "asr" and cell.prealign and not cell.untrained:
            evaluate(model, manifest, task="asr", out_dir=out / "eval_alone" / name, batch_size=8,
                     device="cpu", decoder="prealign", **labels)  # fmt: skip
        if decodes_jointly(cell, model):
            evaluate_joint(cell, settings, model, name)
        evaluated.append(name)
    return evaluated


def run_cell(cell: Cell, settings: Settings) -> dict:
    """Train (or save untrained) and evaluate one cell; writes and returns its ``done.json``."""
    import torch

    if settings.threads:
        torch.set_num_threads(settings.threads)
    train = _demo_module("train")
    cfg = load_cell_config(cell, settings)
    started = time.perf_counter()
    if cell.untrained:
        model_dir = train.save_untrained(cfg)
    else:
        model_dir = train.train_within(cfg, llm_minutes(cell, settings), cell.task, overwrite=True)
    trained = time.perf_counter() - started
    sets = evaluate_cell(cell, settings, model_dir)
    trains = not cell.untrained
    done = {
        "cell": asdict(cell),
        "name": cell.name,
        "minutes": settings.minutes if trains else 0.0,
        "prealign_minutes": round(prealign_minutes(cell, settings), 3),
        "prealign_steps": settings.prealign_steps if cell.prealign and trains else 0,
        "llm_minutes": round(llm_minutes(cell, settings), 3) if trains else 0.0,
        "train_seconds": round(trained, 1),
        "eval_seconds": round(time.perf_counter() - started - trained, 1),
        "sets": sets,
        "train_dir": str(cfg.output_dir),
        "preset": settings.preset,
        "seed": settings.seed,
        "overrides": cell_overrides(cell, settings),
    }
    path = settings.cell_dir(cell) / "done.json"
    path.write_text(json.dumps(done, indent=2) + "\n", encoding="utf-8")
    return done


def run_all(names: Sequence[str], settings: Settings, python: str = sys.executable) -> dict[str, str]:
    """Run the cells not yet done, each in its own process; returns each cell's outcome."""
    outcomes = {}
    for name in names:
        cell_dir = settings.cell_dir(all_cells()[name])
        if (cell_dir / "done.json").is_file():
            outcomes[name] = "done earlier"
            print(f"== {name}: done earlier, skipped", flush=True)
            continue
        cell_dir.mkdir(parents=True, exist_ok=True)
        (cell_dir / "failed.txt").unlink(missing_ok=True)
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        result = subprocess.run([python, __file__, "cell", name, *settings_arguments(settings)], cwd=REPO)
        minutes = (time.perf_counter() - started) / 60
        if result.returncode == 0 and (cell_dir / "done.json").is_file():
            outcomes[name] = f"done ({minutes:.1f} min)"
        else:
            outcomes[name] = f"failed (exit status {result.returncode}, {cell_dir / 'failed.txt'})"
            if not (cell_dir / "failed.txt").is_file():
                (cell_dir / "failed.txt").write_text(f"exit status {result.returncode}\n", encoding="utf-8")
        print(f"== {name}: {outcomes[name]}", flush=True)
    return outcomes


def settings_arguments(settings: Settings) -> list[str]:
    """The command line that rebuilds ``settings`` in a cell's own process."""
    args = ["--out", str(settings.out), "--sets", str(settings.sets), "--minutes", str(settings.minutes),
            "--prealign-share", str(settings.prealign_share), "--seed", str(settings.seed),
            "--preset", settings.preset]  # fmt: skip
    if settings.data is not None:
        args += ["--data", str(settings.data)]
    if settings.threads:
        args += ["--threads", str(settings.threads)]
    if settings.prealign_steps:
        args += ["--prealign-steps", str(settings.prealign_steps)]
    for item in settings.overrides:
        args += ["--override", item]
    return args


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="print the cells' names")
    for command in ("run", "cell", "joint"):
        sub = commands.add_parser(command)
        if command == "cell":
            sub.add_argument("name", choices=sorted(all_cells()))
        else:
            sub.add_argument("--cells", nargs="+", choices=sorted(all_cells()), help="default: every cell")
        sub.add_argument("--out", type=Path, required=True, help="the study's output directory")
        sub.add_argument("--sets", type=Path, required=True, help="the study's manifests (run.sh stage 1)")
        sub.add_argument("--data", type=Path, default=None, help="holds the encoder caches (run.sh stage 3)")
        sub.add_argument("--minutes", type=float, required=True, help="training minutes per cell")
        sub.add_argument("--prealign-share", type=float, default=0.8, help="of a cell's minutes")
        sub.add_argument("--prealign-steps", type=int, default=0, help="N > 0: pre-align N steps per cell")
        sub.add_argument("--seed", type=int, default=0)
        sub.add_argument("--threads", type=int, default=None, help="torch threads")
        sub.add_argument("--preset", choices=sorted(PRESETS), default="real", help="tiny: random models (CI)")
        sub.add_argument("--override", action="append", default=[], help="a dotlist override for every cell")
    return parser


def main() -> None:
    args = _parser().parse_args()
    if args.command == "list":
        print("\n".join(all_cells()))
        return
    if not 0 < args.prealign_share < 1:
        raise SystemExit(f"--prealign-share must lie between 0 and 1, got {args.prealign_share}")
    if args.prealign_steps < 0:
        raise SystemExit(f"--prealign-steps must be >= 0, got {args.prealign_steps}")
    settings = Settings(args.out, args.sets, args.data, args.minutes, args.prealign_share, args.seed,
                        args.threads, args.preset, tuple(args.override), args.prealign_steps)  # fmt: skip
    if args.command == "cell":
        cell = all_cells()[args.name]
        try:
            run_cell(cell, settings)
        except BaseException:
            settings.cell_dir(cell).mkdir(parents=True, exist_ok=True)
            (settings.cell_dir(cell) / "failed.txt").write_text(traceback.format_exc(), encoding="utf-8")
            raise
        return
    names = args.cells or list(all_cells())
    if args.command == "joint":
        if settings.threads:
            import torch

            torch.set_num_threads(settings.threads)
        add_joint(names, settings)
        return
    outcomes = run_all(names, settings)
    failed = [name for name, outcome in outcomes.items() if outcome.startswith("failed")]
    listed = f": {' '.join(failed)}" if failed else ""
    print(f"cells: {len(outcomes) - len(failed)} done, {len(failed)} failed{listed}")


if __name__ == "__main__":
    main()
