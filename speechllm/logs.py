"""One log line per event, and no third-party notes that say nothing to a speechllm user.

:func:`quiet_third_party` is entered when training or evaluation starts (``speechllm.training.train``,
the ``speechllm`` command), not at import, and undone when it ends:

- Lightning gives the ``lightning`` logger a console handler of its own, and the record also
  reaches the root logger that the ``speechllm`` command configures: each line came out twice.
  While the root logger has a handler, Lightning's own are set aside.
- Lightning's tips (LitLogger, LitModels) are dropped, and its "Using bfloat16 Automatic Mixed
  Precision" too: speechllm says which precision runs, and what it means, in a line of its own
  (:func:`speechllm.trainer_options.write_precision_choice`).
- Warnings about what speechllm does on purpose or what users cannot act on (:data:`WARNINGS`).

Only these messages are filtered, by message; every other warning and log line still shows.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

# Lightning's own console handlers are on these loggers (lightning/__init__.py and its packages).
LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")
# Lightning logs its notes through rank_zero_info on these loggers.
RANK_ZERO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
LOG_NOISE = re.compile(r"💡 Tip:|Using (16bit|bfloat16) Automatic Mixed Precision")

# Warning message (start, a regular expression) → why a speechllm user need not see it.
WARNINGS: dict[str, str] = {
    r"Found \d+ module\(s\) in eval mode at the start of training": "the frozen encoder and LLM are "
    "in eval mode on purpose",
    r"Precision \S+ is not supported by the model summary": "only the size estimate of the summary "
    "table is affected",
    r"`isinstance\(treespec, LeafSpec\)` is deprecated": "Lightning's use of a torch API",
    r"`is_gradient_checkpointing` is deprecated": "transformers' rename, called inside its own code",
    r"Checkpoint directory .* exists and is not empty": "speechllm refuses a used output_dir "
    "unless --resume or --overwrite says what to do with it",
    r"Total length of `\w+` across ranks is zero": "no validation set configured (data.val: [])",
    r"You defined a `validation_step` but have no `val_dataloader`": "no validation set configured",
    r"train_dataloader yielded None": "a batch of only unusable clips, skipped on purpose; speechllm "
    "logs it and counts it",
}


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return LOG_NOISE.search(record.getMessage()) is None


@contextmanager
def quiet_third_party() -> Iterator[None]:
    """Inside the block: one line per Lightning log event, and the notes above filtered out."""
    root = logging.getLogger()
    set_aside: list[tuple[logging.Logger, logging.Handler]] = []
    if root.handlers:
        for name in LIGHTNING_LOGGERS:
            logger = logging.getLogger(name)
            if logger.propagate:  # its records reach the root's handler too
                for handler in [h for h in logger.handlers if isinstance(h, logging.StreamHandler)]:
                    logger.removeHandler(handler)
                    set_aside.append((logger, handler))
    noise = _DropNoise()
    for name in RANK_ZERO_LOGGERS:
        logging.getLogger(name).addFilter(noise)
    try:
        with warnings.catch_warnings():
            for message in WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        for name in RANK_ZERO_LOGGERS:
            logging.getLogger(name).removeFilter(noise)
        for logger, handler in set_aside:
            logger.addHandler(handler)
