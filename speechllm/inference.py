"""Transcribe or translate audio files with a trained model directory."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from lhotse import Recording

from speechllm.audio import SAMPLE_RATE
from speechllm.masking import pad_audio
from speechllm.model import SpeechLLM


def load_audio_file(path: str | Path) -> torch.Tensor:
    """Any file lhotse/soundfile reads → mono 16 kHz float32 (S,). Errors name the file."""
    try:
        recording = Recording.from_file(path)
        if recording.sampling_rate != SAMPLE_RATE:
            recording = recording.resample(SAMPLE_RATE)
        samples = torch.from_numpy(recording.load_audio()).float()
    except Exception as err:
        raise ValueError(f"{path}: cannot read audio ({type(err).__name__}: {err})") from err
    if samples.numel() == 0:
        raise ValueError(f"{path}: empty audio")
    return samples.mean(dim=0)


def transcribe_files(
    model_dir: str | Path,
    paths: Sequence[str | Path],
    task: str = "asr",
    src_lang: str = "en",
    tgt_lang: str | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 200,
    device: str = "cpu",
) -> Iterator[tuple[str, str]]:
    """Yields (path, text) in input order, decoding ``batch_size`` files at a time."""
    model = SpeechLLM.from_pretrained(model_dir).to(device).eval()
    for start in range(0, len(paths), batch_size):
        chunk = [str(p) for p in paths[start : start + batch_size]]
        audio, lens = pad_audio([load_audio_file(p) for p in chunk])
        texts = model.generate(
            audio.to(device),
            lens.to(device),
            task=task,
            src_lang=src_lang,
            tgt_lang=tgt_lang,
            max_new_tokens=max_new_tokens,
        )
        yield from zip(chunk, texts)
