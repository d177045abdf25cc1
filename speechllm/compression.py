"""The compression record of Table 1: how much an adapter shortens the encoder's output.

:class:`Compression` is what ``compression.json`` holds (its JSON form included); reading and
writing the file in a run directory is :mod:`speechllm.rundir`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from speechllm.errors import RunDirError

COMPRESSION_FILE = "compression.json"
# Where a record was measured: training batches, validation batches, evaluation decoding.
COMPRESSION_SPLITS = ("train", "val", "eval")


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Compression:
    """``compression.json``: how much an adapter shortens the encoder's output (Table 1).

    Per utterance, ``mean_in_len`` encoder frames (``encoder_frame_rate_hz`` per second) become
    ``mean_out_len`` adapter outputs and, after a pre-alignment readout that merges runs
    (``model.prealign``), ``mean_read_len`` vectors the LLM reads (None without one). ``split``:
    ``train`` / ``val`` batches (the training monitor) or ``eval`` (evaluation decoding).
    """

    encoder_frame_rate_hz: float
    mean_in_len: float
    mean_out_len: float
    num_utterances: int | None = None
    mean_read_len: float | None = None
    adapter: str | None = None
    split: str | None = None

    def __post_init__(self) -> None:
        for key in ("encoder_frame_rate_hz", "mean_in_len", "mean_out_len"):
            value = getattr(self, key)
            if not is_number(value) or not value > 0:
                raise RunDirError(f"{key!r} must be a positive number, not {value!r}")
        for key in ("num_utterances", "mean_read_len"):
            if getattr(self, key) is not None and not is_number(getattr(self, key)):
                raise RunDirError(f"{key!r} must be a number or null, not {getattr(self, key)!r}")
        if self.split is not None and self.split not in COMPRESSION_SPLITS:
            raise RunDirError(f"'split' must be one of {COMPRESSION_SPLITS} or null, not {self.split!r}")

    @property
    def compression_ratio(self) -> float:
        """Encoder frames per adapter output."""
        return self.mean_in_len / self.mean_out_len

    @property
    def output_rate_hz(self) -> float:
        """Adapter outputs per second of audio."""
        return self.encoder_frame_rate_hz / self.compression_ratio

    @property
    def read_rate_hz(self) -> float | None:
        """Vectors the LLM reads per second of audio (None without a readout)."""
        if self.mean_read_len is None:
            return None
        return self.encoder_frame_rate_hz * self.mean_read_len / self.mean_in_len

    @property
    def reads_readout(self) -> bool:
        """Whether the LLM reads a pre-alignment readout (``mean_read_len``), not the adapter's outputs."""
        return self.mean_read_len is not None and self.mean_read_len > 0

    @property
    def llm_input_ratio(self) -> float:
        """Encoder frames per vector the LLM reads: the stage that feeds the LLM (Table 1's)."""
        return self.mean_in_len / (self.mean_read_len if self.reads_readout else self.mean_out_len)

    @property
    def llm_input_rate_hz(self) -> float:
        """Vectors the LLM reads per second of audio."""
        return self.encoder_frame_rate_hz / self.llm_input_ratio

    def to_json(self) -> dict[str, Any]:
        """Every field, always (None → null), and the derived ratio and rate for human readers."""
        ratio, rate = self.compression_ratio, self.output_rate_hz
        return {**asdict(self), "compression_ratio": ratio, "output_rate_hz": rate}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str | Path = COMPRESSION_FILE) -> Compression:
        """Parse ``compression.json`` content, this schema or an older one; errors name ``source``.

        Older files are read too: evaluation's (``utterances`` instead of ``num_utterances``), the
        training monitor's (no ``mean_read_len``) and the hand-written three-key form. The
        derived ``compression_ratio`` / ``output_rate_hz`` are recomputed, not read.
        """
        count = data.get("num_utterances", data.get("utterances"))
        try:
            return cls(
                encoder_frame_rate_hz=data.get("encoder_frame_rate_hz"),
                mean_in_len=data.get("mean_in_len"),
                mean_out_len=data.get("mean_out_len"),
                num_utterances=int(count) if is_number(count) else count,  # old files: a float
                mean_read_len=data.get("mean_read_len"),
                adapter=None if data.get("adapter") is None else str(data["adapter"]),
                split=data.get("split"),
            )
        except ValueError as error:
            raise RunDirError(f"{source}: {error}") from error
