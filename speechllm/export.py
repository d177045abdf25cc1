"""``speechllm export``: a trained model as a directory that other tools load.

A model directory (``save_pretrained``) holds only the trained tensors and names its frozen parts
by path. An export is self-contained for the LLM and portable for the rest::

    OUT/
      llm/                    the LLM with LoRA merged (peft ``merge_and_unload``) and its tokenizer:
                              a standard transformers directory (``AutoModelForCausalLM``, vLLM)
      trainable.safetensors   the adapter (and the pre-alignment head, trainable encoder layers)
      config.yaml             the model config, its LLM now ``./llm`` without LoRA:
                              ``SpeechLLM.from_pretrained(OUT)`` loads the export
      encoder.json            the speech encoder: registry name, path (preset, hub name or directory),
                              options, width, frame rate and a digest of its weights
      prompt.json             the prompt format: the chat prompt around the audio slot, the stop ids
      README.md               a model card with the evaluation results found beside the model

The speech encoder is named, not copied: it is a public checkpoint (or a preset) that loads by its
name, and its digest says whether the one found later is the same.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from speechllm.errors import UsageError
from speechllm.io import atomic_write
from speechllm.model import SpeechLLM
from speechllm.model_card import EvaluatedRun, ExportedFrom, find_evaluations, write_model_card
from speechllm.model_dir import INSIDE, MODEL_CONFIG, TRAINED_WEIGHTS, check_model_dir, write_model_dir

LLM_DIR = "llm"
ENCODER_FILE = "encoder.json"
PROMPT_FILE = "prompt.json"
# LLM options that describe how the un-merged weights were loaded, not the exported ones.
_DROPPED_LLM_OPTIONS = ("lora", "gguf_file")


def find_model_dir(run_dir: str | Path) -> Path:
    """``run_dir`` itself when it is a model directory, else its ``model/`` (a training run).

    Raises:
        FileNotFoundError: neither holds ``config.yaml`` + ``trainable.safetensors``.
    """
    run_dir = Path(run_dir)
    if (run_dir / MODEL_CONFIG).is_file() and (run_dir / TRAINED_WEIGHTS).is_file():
        return run_dir
    return check_model_dir(run_dir / "model", what="export")


def export_model(
    run_dir: str | Path,
    out_dir: str | Path,
    trust_imports: bool | list[str] = False,
    eval_dirs: Sequence[str | Path] = (),
    overwrite: bool = False,
) -> Path:
    """Export a trained model (see the module docstring for what ``out_dir`` holds).

    Args:
        run_dir: a training run's ``output_dir`` or a model directory (``<run>/model``, an
            averaged ``model_avgK``).
        out_dir: the export directory (refused if it holds files, unless ``overwrite``).
        trust_imports: as for :meth:`SpeechLLM.from_pretrained` (user components' modules).
        eval_dirs: evaluated run directories for the model card besides those found in
            ``run_dir`` (``eval/``, ``model/eval/`` and their subdirectories).
        overwrite: write into a directory that holds files.

    Returns:
        ``out_dir``.

    Raises:
        FileNotFoundError: no model directory; UsageError: ``out_dir`` holds files.
    """
    model_dir = find_model_dir(run_dir)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UsageError(f"export: {out} is not empty; export into a new directory, or pass --overwrite")
    if isinstance(trust_imports, list):  # modules the caller named: imported first, trusted
        from speechllm.config import import_user_modules

        import_user_modules(trust_imports)
    model = SpeechLLM.from_pretrained(model_dir, trust_imports=trust_imports)
    model.eval()
    runs = find_evaluations([Path(run_dir), model_dir, *map(Path, eval_dirs)])
    return export_loaded(model, out, runs, source=model_dir)


def export_loaded(model: SpeechLLM, out: Path, runs: list[EvaluatedRun], source: Path) -> Path:
    """Write the export of a loaded ``model``. The LLM's LoRA is merged in place: ``model`` is
    spent afterwards (its LLM no longer holds LoRA layers)."""
    # Read before merging: merging replaces the LoRA layers and their parameters.
    tensors = {
        name: tensor.contiguous().cpu()
        for name, tensor in model.trainable_state_dict().items()
        if not name.startswith("llm.")
    }
    origin = ExportedFrom(
        source, str(model.config["llm"].get("path")), model.config["llm"].get("lora"), sorted(tensors)
    )
    merged = merged_llm(model)
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out / LLM_DIR)
    model.llm.tokenizer.save_pretrained(out / LLM_DIR)
    config = exported_config(model.config)
    write_model_dir(out, tensors, model.imports, config)
    _write_json(out / ENCODER_FILE, encoder_reference(model))
    _write_json(out / PROMPT_FILE, prompt_format(model))
    write_model_card(out, config, runs, origin)
    return out


def merged_llm(model: SpeechLLM) -> Any:
    """The LLM's ``*ForCausalLM`` with LoRA merged into its weights (the model itself without LoRA).

    Raises:
        UsageError: the LLM is not a Hugging Face causal LM (``hf_causal_lm``), which has no
            standard directory to export to.
    """
    llm = model.llm
    inner = getattr(llm, "model", None)
    if inner is None or not hasattr(inner, "save_pretrained"):
        raise UsageError(
            f"export: the LLM {type(llm).__name__} is not a Hugging Face model (model.llm: name hf_causal_lm)"
        )
    if getattr(llm, "lora_config", None):
        return inner.merge_and_unload()
    return inner


def exported_config(config: Any) -> dict[str, Any]:
    """The model config of the export: the LLM read from ``./llm``, its LoRA merged (none left)."""
    from speechllm.config.loading import plain_config

    exported = plain_config(config)
    llm = {k: v for k, v in exported["llm"].items() if k not in _DROPPED_LLM_OPTIONS}
    exported["llm"] = {**llm, "path": INSIDE + LLM_DIR}
    return exported


def encoder_reference(model: SpeechLLM) -> dict[str, Any]:
    """What names the speech encoder: its config section, width, frame rate and weight digest."""
    encoder = model.encoder
    reference: dict[str, Any] = {"config": dict(model.config["encoder"])}
    reference["dim"] = int(getattr(encoder, "dim", 0))
    reference["frame_rate_hz"] = float(getattr(encoder, "frame_rate_hz", 0.0))
    digest = getattr(encoder, "weights_digest", None)
    if callable(digest):  # BLAKE2b of its state dict (trained encoder layers included)
        reference["weights_digest"] = digest()
    return reference


def prompt_format(model: SpeechLLM) -> dict[str, Any]:
    """The prompt around the audio slot: options, the rendered ASR and ST prompts, the stop ids."""
    prompts = model.llm.prompts
    tokenizer = model.llm.tokenizer
    rendered = {}
    for task, tgt in (("asr", None), ("st", "de")):
        prefix, suffix = prompts.prompt_ids(task, "en", tgt)
        rendered[f"{task}_en" + (f"-{tgt}" if tgt else "")] = {
            "prefix": tokenizer.decode(prefix),
            "suffix": tokenizer.decode(suffix),
        }
    config = prompts.config
    return {
        "layout": "[prefix tokens] [adapter outputs, one embedding each] [suffix tokens] -> generated text",
        "system_prompt": config.system_prompt,
        "asr_instructions": list(config.asr_instructions),
        "st_instructions": list(config.st_instructions),
        "rendered": rendered,
        "stop_ids": list(prompts.stop_ids),
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
