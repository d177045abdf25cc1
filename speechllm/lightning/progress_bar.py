"""Lightning's Rich progress bar, labelled by what ends the run.

Lightning labels the training bar ``Epoch e/max_epochs-1``; a run bounded by ``max_steps`` (or
``max_time``) has ``max_epochs`` -1, so the label read "Epoch 0/-2". Here the label gives the
bound that applies: ``Epoch 0/9`` with ``max_epochs``, ``Epoch 0 · step 120/5000`` with
``max_steps`` (updated every step), plain ``Epoch 3`` when only the clock stops the run.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar


def train_description(trainer: L.Trainer, epoch: int) -> str:
    """The training bar's label: the epoch and step with the bounds that end the run."""
    max_epochs = trainer.max_epochs
    label = f"Epoch {epoch}"
    if max_epochs is not None and max_epochs >= 0:
        label += f"/{max_epochs - 1}"
    if trainer.max_steps is not None and trainer.max_steps > 0:
        label += f" · step {trainer.global_step}/{trainer.max_steps}"
    return label


class RunProgressBar(RichProgressBar):
    """:class:`~lightning.pytorch.callbacks.RichProgressBar` with :func:`train_description` labels."""

    def _get_train_description(self, current_epoch: int) -> str:
        return train_description(self.trainer, current_epoch)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self.progress is not None and self.train_progress_bar_id is not None and trainer.max_steps > 0:
            self.progress.update(
                self.train_progress_bar_id, description=train_description(trainer, trainer.current_epoch)
            )
