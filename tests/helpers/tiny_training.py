"""The arguments of a `speechllm train` of the tiny recipe, short enough for a test (2 steps)."""

from __future__ import annotations

from pathlib import Path


def tiny_train_args(
    config: Path, tiny_dirs: dict[str, Path], tones_dir: Path, out: Path, *extra: str
) -> list[str]:
    """``train CONFIG ...`` with the session's tiny models and tone corpus, writing to ``out``."""
    return [
        "train",
        str(config),
        f"output_dir={out}",
        f"model.encoder.path={tiny_dirs['tiny-random-whisper']}",
        f"model.llm.path={tiny_dirs['tiny-random-llama']}",
        f"data.train=[{{path: {tones_dir / 'tones_cuts_train.jsonl.gz'}}}]",
        "data.val=[]",
        "trainer.max_steps=2",
        "trainer.enable_progress_bar=false",
        *extra,
    ]
