"""Which parts of a speech encoder train: LoRA on its attention, or its top layers unfrozen.

The paper keeps the encoder frozen (the default). Peers let it adapt (SLAM-LLM's ``freeze_encoder``,
Ultravox's ``audio_model_lora_config``, NeMo's freeze patterns); the two options here are the usual
ones, set in the encoder's config section::

    model:
      encoder:
        name: whisper
        lora: {r: 8, alpha: 16}       # LoRA on every attention projection (q, k, v, out)
        unfreeze_top_layers: 2        # the last 2 transformer layers and what follows them train

Both may be combined. The trained tensors are named ``encoder.*`` in ``trainable_state_dict`` and
so are saved, checkpointed, averaged and loaded with the adapter's. A trained encoder's outputs
change at every step, so it cannot be served by (or written to) an encoder-output cache.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

LORA_OPTIONS = ("r", "alpha", "dropout", "target_modules")


def trainable_option_keys(lora: Mapping[str, Any] | None, unfreeze_top_layers: int) -> list[str]:
    """The config keys (``model.encoder.lora`` …) that make the encoder trainable; empty: frozen."""
    keys = ["model.encoder.lora"] if lora else []
    return keys + (["model.encoder.unfreeze_top_layers"] if unfreeze_top_layers > 0 else [])


def add_encoder_lora(model: nn.Module, options: Mapping[str, Any], default_targets: Sequence[str]) -> None:
    """Inject peft LoRA matrices into ``model``'s attention projections, in place; they alone train.

    Args:
        model: the encoder's Hugging Face module (its parameters already frozen).
        options: ``{r, alpha, dropout, target_modules}`` (defaults 8, 16, 0.0, ``default_targets``).
        default_targets: the encoder's attention projection names (``q_proj`` … for Whisper).

    Raises:
        ValueError: an unknown option, or target modules the encoder does not have (naming the key).
    """
    from peft import LoraConfig, inject_adapter_in_model

    unknown = sorted(set(options) - set(LORA_OPTIONS))
    if unknown:
        raise ValueError(f"model.encoder.lora: unknown option(s) {unknown}; valid: {list(LORA_OPTIONS)}")
    targets = list(options.get("target_modules") or default_targets)
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in targets if t not in names]
    if missing:
        raise ValueError(
            f"model.encoder.lora.target_modules: {missing} not in this encoder; its attention "
            f"projections are {list(default_targets)}"
        )
    config = LoraConfig(
        r=int(options.get("r", 8)),
        lora_alpha=int(options.get("alpha", 16)),
        # The encoder stays in eval mode (SpeechEncoder.train), so dropout would never apply.
        lora_dropout=float(options.get("dropout", 0.0)),
        target_modules=targets,
    )
    inject_adapter_in_model(config, model)
    for name, param in model.named_parameters():
        param.requires_grad_("lora_" in name)


def unfreeze_top(layers: nn.ModuleList, above: Sequence[nn.Module], count: int) -> None:
    """Train the last ``count`` of ``layers`` and the modules ``above`` them (a final norm …).

    Raises:
        ValueError: ``count`` exceeds the number of layers (naming the key and the number).
    """
    if count > len(layers):
        raise ValueError(
            f"model.encoder.unfreeze_top_layers={count}: the encoder has only {len(layers)} layers"
        )
    for module in [*list(layers)[len(layers) - count :], *above]:
        module.requires_grad_(True)
