"""Training callbacks: compression ratio, throughput, export of the trained parameters.

They read only what :class:`~speechllm.lightning.module.SpeechLLMModule`'s steps return
(``{"loss", "stats", "num_target_tokens"}``) and the batch, so they work for any adapter that
keeps the :class:`~speechllm.adapters.interface.AdapterOutput` contract (``stats`` holds ``in_lens``
and ``out_lens``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from speechllm.audio import SAMPLE_RATE
from speechllm.errors import UsageError
from speechllm.lightning.fsdp2 import full_tensors, is_sharded
from speechllm.rundir import COMPRESSION_FILE, Compression, write_compression

log = logging.getLogger(__name__)


class CompressionRatioMonitor(L.Callback):
    """Mean encoder frames / mean vectors the LLM reads per utterance, and their rate.

    Counts ``stats["in_lens"]``, the adapter's outputs and what the LLM reads over validation
    batches (the model in eval mode, as at test time), or over training batches when the run has
    no validation. ``stats["out_lens"]`` is what the LLM reads; after a pre-alignment readout
    (``model.prealign``) the adapter's own lengths are ``stats["adapter_lens"]``. Logs
    ``compression/ratio`` and ``compression/output_hz`` of what the LLM reads (the stage the
    report's Table 1 shows) and, at the end of fit, writes ``<output_dir>/compression.json``: a
    :class:`~speechllm.rundir.Compression`, the schema evaluation writes too (``mean_out_len`` the
    adapter's outputs, ``mean_read_len`` the readout's or null), with ``split`` ``"val"`` or
    ``"train"``::

        {"encoder_frame_rate_hz": 50.0, "mean_in_len": 120.5, "mean_out_len": 30.1,
         "compression_ratio": 4.0, "output_rate_hz": 12.5, "num_utterances": 64,
         "mean_read_len": null, "adapter": "conv", "split": "val"}

    ``compression_ratio = mean_in_len / mean_out_len``; ``output_rate_hz =
    encoder_frame_rate_hz / compression_ratio``. Counts are summed over ranks.

    Args:
        output_dir: the run directory (``cfg.output_dir``).
        adapter_name: recorded in the JSON (the config's ``model.adapter.name``).
    """

    def __init__(self, output_dir: str | Path, adapter_name: str | None = None) -> None:
        self.output_dir = Path(output_dir)
        self.adapter_name = adapter_name
        # split → sums of [in_lens, adapter outputs, readout lengths, utterances], float64 for long
        # runs; the readout's sum stays 0 without a pre-alignment readout.
        self.totals: dict[str, torch.Tensor] = {
            "train": torch.zeros(4, dtype=torch.float64),
            "val": torch.zeros(4, dtype=torch.float64),
        }
        self.summary: Compression | None = None

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._add("train", outputs):
            ratio, output_hz = self._rates(self.totals["train"], pl_module)
            pl_module.log_dict(
                {"compression/ratio": ratio, "compression/output_hz": output_hz}, batch_size=1, on_step=True
            )

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not trainer.sanity_checking:
            self._add("val", outputs)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        split = "val" if self._reduced(trainer, "val")[3] > 0 else "train"
        in_frames, out_frames, read_frames, utterances = self._reduced(trainer, split).tolist()
        if utterances <= 0 or out_frames <= 0:
            log.warning(
                "compression monitor: no adapter outputs were counted; %s not written", COMPRESSION_FILE
            )
            return
        self.summary = Compression(
            encoder_frame_rate_hz=_frame_rate_hz(pl_module),
            mean_in_len=in_frames / utterances,
            mean_out_len=out_frames / utterances,
            num_utterances=int(utterances),
            mean_read_len=read_frames / utterances if read_frames > 0 else None,
            adapter=self.adapter_name,
            split=split,
        )
        if trainer.is_global_zero:
            path = write_compression(self.output_dir, self.summary)
            ratio, rate = self.summary.llm_input_ratio, self.summary.llm_input_rate_hz
            stage = "the pre-alignment readout" if self.summary.reads_readout else "the adapter's outputs"
            message = "compression %.2f:1 (%.2f Hz) of what the LLM reads (%s) written to %s"
            log.info(message, ratio, rate, stage, path)

    def state_dict(self) -> dict[str, Any]:
        return {split: totals.clone() for split, totals in self.totals.items()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for split, totals in state_dict.items():
            totals = totals.to(torch.float64)
            if totals.numel() == 3:  # a checkpoint from before the readout was counted apart
                totals = torch.stack([totals[0], totals[1], totals.new_zeros(()), totals[2]])
            self.totals[split] = totals.clone()

    def _add(self, split: str, outputs: Any) -> bool:
        stats = outputs.get("stats") if isinstance(outputs, dict) else None
        if not stats or "in_lens" not in stats or "out_lens" not in stats:
            return False
        in_lens, read_lens = stats["in_lens"], stats["out_lens"]
        adapter_lens = stats.get("adapter_lens")  # present only after a pre-alignment readout
        sums = [float(in_lens.sum()), float(read_lens.sum()), 0.0, float(in_lens.numel())]
        if adapter_lens is not None:
            sums[1:3] = [float(adapter_lens.sum()), float(read_lens.sum())]
        self.totals[split] += torch.tensor(sums, dtype=torch.float64)
        return True

    def _reduced(self, trainer: L.Trainer, split: str) -> torch.Tensor:
        totals = self.totals[split]
        if trainer.world_size > 1:
            totals = trainer.strategy.reduce(totals.to(trainer.strategy.root_device), reduce_op="sum").cpu()
        return totals

    @staticmethod
    def _rates(totals: torch.Tensor, pl_module: L.LightningModule) -> tuple[float, float]:
        """(ratio, Hz) of what the LLM reads: the readout's lengths where counted, else the adapter's."""
        fed = totals[2] if totals[2] > 0 else totals[1]
        ratio = float(totals[0] / fed) if fed > 0 else float("nan")
        return ratio, _frame_rate_hz(pl_module) / ratio


class ThroughputMonitor(L.Callback):
    """Audio seconds and target tokens processed per wall-clock second, per process.

    Measured from one training batch's end to the next (data loading included), so it is the
    rate a run actually sustains. Logs ``throughput/audio_s_per_s`` and
    ``throughput/target_tokens_per_s``; multiply by the number of processes for the job's rate.
    """

    def __init__(self) -> None:
        self._last: float | None = None

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._last is None:
            self._last = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now = time.perf_counter()
        elapsed, self._last = now - (self._last or now), now
        if elapsed <= 0:
            return
        metrics = {}
        if batch is not None:  # None: every clip was skipped
            metrics["throughput/audio_s_per_s"] = float(batch.audio_lens.sum()) / SAMPLE_RATE / elapsed
        tokens = outputs.get("num_target_tokens") if isinstance(outputs, dict) else None
        if tokens:
            metrics["throughput/target_tokens_per_s"] = tokens / elapsed
        if metrics:
            pl_module.log_dict(metrics, batch_size=1, on_step=True)


class EmptyEpochGuard(L.Callback):
    """Stop with an error naming the cause when a training epoch yields no usable batch.

    Every cut filtered out (durations) or skipped (audio, translation, language) leaves a sampler
    that ends each epoch at once; a run bounded by ``max_steps`` would loop over empty epochs
    forever. Batches are counted over all ranks, so every rank stops together.

    Args:
        hint: what to check, for the message (the split's duration bounds and skip report).
    """

    def __init__(self, hint: str = "") -> None:
        self.hint = hint
        self.batches = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.batches = 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if batch is not None:
            self.batches += 1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        count = torch.tensor(float(self.batches), device=pl_module.device)
        if float(trainer.strategy.reduce(count, reduce_op="sum")) == 0:
            raise UsageError(
                f"training epoch {trainer.current_epoch} gave no usable batch: every training cut was "
                f"filtered out or skipped ({self.hint}; see the warnings)"
            )


class ExportTrainable(L.Callback):
    """At the end of fit, ``save_pretrained`` the trained parameters to ``<output_dir>/model``.

    Under FSDP the parameters are sharded: all ranks gather them (``summon_full_params``, or each
    trained DTensor's ``full_tensor()`` under FSDP2) and the first rank writes.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from lightning.pytorch.strategies import FSDPStrategy

        model = pl_module.model
        if isinstance(trainer.strategy, FSDPStrategy):
            from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

            with FSDP.summon_full_params(trainer.strategy.model, writeback=False, offload_to_cpu=True):
                if trainer.is_global_zero:
                    model.save_pretrained(self.directory)
        elif is_sharded(model):  # fsdp2: gather each trained shard (every rank), the first rank writes
            tensors = full_tensors(model.trainable_state_dict())
            if trainer.is_global_zero:
                model.save_pretrained(self.directory, tensors)
        elif trainer.is_global_zero:
            model.save_pretrained(self.directory)
        if trainer.is_global_zero:
            log.info("saved trained parameters to %s", self.directory)
        trainer.strategy.barrier("export_trainable")


def _frame_rate_hz(pl_module: L.LightningModule) -> float:
    encoder = pl_module.model.encoder
    if not hasattr(encoder, "frame_rate_hz"):
        raise AttributeError(
            f"{type(encoder).__name__} has no frame_rate_hz: the SpeechEncoder contract needs it"
        )
    return float(encoder.frame_rate_hz)
