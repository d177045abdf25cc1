"""Shared helpers of the benchmarks: import paths, interleaved median timing, tables, machine line,
peak memory, and matched-size speechllm / Voxtral models for the training-step benchmarks."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The loop references live with the tests (tests/helpers/reference_adapters.py), which check them.
for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


def loop_vs_vectorized(
    loop: Callable[[], object], vectorized: Callable[[], object], repeats: int
) -> tuple[float, float]:
    """Median seconds of a loop reference and its vectorized twin, timed interleaved."""
    times = interleaved_times({"loop": loop, "vectorized": vectorized}, repeats)
    return statistics.median(times["loop"]), statistics.median(times["vectorized"])


def print_table(title: str, loop_s: float, vectorized_s: float, repeats: int) -> None:
    """One table: both implementations' medians and the speed ratio loop / vectorized."""
    print(title)
    print(f"| implementation | median of {repeats} (ms) | speed-up |")
    print("|---|---:|---:|")
    print(f"| loop reference | {loop_s * 1e3:.1f} | 1.0× |")
    print(f"| vectorized | {vectorized_s * 1e3:.1f} | {loop_s / vectorized_s:.1f}× |")


# -- side-by-side timing on a shared, noisy machine -------------------------------------------------
def interleaved_times(
    runs: dict[str, Callable[[], object]], repeats: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Wall times of each variant, measured in turn (A B A B …) after ``warmup`` untimed rounds.

    Interleaving makes a change in the load from other users of the machine hit every variant
    alike, which a block of A followed by a block of B would not.
    """
    for _ in range(warmup):
        for run in runs.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def median(values: list[float]) -> float:
    """Median of a list of timings (seconds)."""
    return statistics.median(values)


def spread(values: list[float]) -> str:
    """``min–max`` of timings in ms, to show how noisy the run was."""
    return f"{min(values) * 1e3:.0f}–{max(values) * 1e3:.0f}"


def machine_line() -> str:
    """One line naming the machine: CPU model, cores usable, torch version and threads, load, date."""
    import datetime
    import os

    import torch

    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    return (
        f"machine: {model}, {cores} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"load average {load}, {now}"
    )


# -- peak memory of a step, in a fresh process per variant ------------------------------------------
def reset_peak_rss() -> bool:
    """Reset the kernel's resident-set high-water mark (``VmHWM``) of this process (Linux ≥ 4.0).

    Returns False where that is not possible; :func:`peak_rss_mib` is then the whole run's peak.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _status_kib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1])
    raise KeyError(field)


def rss_mib() -> float:
    """Resident set size now (MiB)."""
    return _status_kib("VmRSS") / 1024


def peak_rss_mib() -> float:
    """Resident-set high-water mark since the last :func:`reset_peak_rss` (MiB)."""
    return _status_kib("VmHWM") / 1024


# -- models of matched sizes for the training-step benchmarks (random weights, no hub) -------------
@dataclass(frozen=True)
class Sizes:
    """Encoder (Whisper-like) and LLM (Llama-like) sizes shared by speechllm and the Voxtral peer."""

    enc_dim: int
    enc_layers: int
    enc_heads: int
    llm_dim: int
    llm_layers: int
    llm_heads: int
    llm_kv_heads: int
    llm_ffn: int
    vocab: int


SIZES = {
    # Test / dry-run size: seconds on any CPU.
    "tiny": Sizes(64, 2, 4, 64, 2, 4, 2, 128, 1024),
    # This CPU: Whisper tiny's encoder (384 wide, 4 layers) + a 6-layer 384-wide Llama, 16k vocab.
    "cpu": Sizes(384, 4, 6, 384, 6, 6, 2, 1024, 16384),
    # GPU: Whisper small's encoder (768, 12 layers) + SmolLM2-135M (576, 30 layers, 9/3 heads, 49k vocab).
    "small": Sizes(768, 12, 12, 576, 30, 9, 3, 1536, 49152),
}


def llama_config(sizes: Sizes) -> Any:
    """A ``LlamaConfig`` of the given sizes (RoPE, RMSNorm, SwiGLU, tied embeddings as SmolLM2)."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=sizes.vocab,
        hidden_size=sizes.llm_dim,
        intermediate_size=sizes.llm_ffn,
        num_hidden_layers=sizes.llm_layers,
        num_attention_heads=sizes.llm_heads,
        num_key_value_heads=sizes.llm_kv_heads,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=3,
        pad_token_id=0,
    )


def write_model_dirs(sizes: Sizes, root: Path, seed: int = 0) -> tuple[Path, Path]:
    """Random Whisper (encoder of ``sizes``, a 1-layer decoder) and Llama directories under ``root``.

    The LLM gets the tiny byte-level BPE tokenizer (1k tokens); its embedding table has
    ``sizes.vocab`` rows, so the LM head costs what a real vocabulary costs.
    """
    import torch
    from transformers import LlamaForCausalLM, WhisperConfig, WhisperForConditionalGeneration

    from speechllm.presets.tiny import build_bpe_tokenizer

    whisper_dir, llm_dir = root / "whisper", root / "llama"
    torch.manual_seed(seed)
    whisper = WhisperConfig(
        d_model=sizes.enc_dim,
        encoder_layers=sizes.enc_layers,
        encoder_attention_heads=sizes.enc_heads,
        encoder_ffn_dim=4 * sizes.enc_dim,
        decoder_layers=1,
        decoder_attention_heads=sizes.enc_heads,
        decoder_ffn_dim=4 * sizes.enc_dim,
        num_mel_bins=80,
        max_source_positions=1500,
        max_target_positions=32,
        vocab_size=100,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
    )
    WhisperForConditionalGeneration(whisper).save_pretrained(whisper_dir)
    build_bpe_tokenizer(llm_dir)
    LlamaForCausalLM(llama_config(sizes)).save_pretrained(llm_dir)
    return whisper_dir, llm_dir


def adapter_options(name: str, sizes: Sizes, peer_like: bool = False) -> dict[str, Any]:
    """Adapter config: the paper's transformer modality adapter scaled to the LLM width, or (with
    ``peer_like``) one MLP block as wide as the LLM, the size of Voxtral's projector."""
    if peer_like:
        return {
            "name": name,
            "modality": "mlp",
            "modality_dim": sizes.llm_dim,
            "modality_layers": 1,
            "dropout": 0.0,
        }
    heads = max(1, sizes.llm_dim // 64)
    return {
        "name": name,
        "modality_dim": sizes.llm_dim,
        "modality_heads": heads,
        "modality_layers": 2 if sizes.llm_dim < 512 else 4,
        "dropout": 0.0,
    }


def build_speechllm(
    whisper_dir: Path, llm_dir: Path, adapter: dict[str, Any], pad_to_30s: bool, frozen_dtype: str
) -> Any:
    """A SpeechLLM through the library's own path: ``load_config`` overrides + ``from_config``."""
    from speechllm.config import load_config
    from speechllm.model import SpeechLLM

    overrides = [
        f"model.encoder={{name: whisper, path: '{whisper_dir}', pad_to_30s: {str(pad_to_30s).lower()}, "
        f"dtype: {frozen_dtype}}}",
        f"model.llm={{name: hf_causal_lm, path: '{llm_dir}'}}",
        "model.adapter={" + ", ".join(f"{k}: {v}" for k, v in adapter.items()) + "}",
    ]
    cfg = load_config(None, overrides)
    return SpeechLLM.from_config(cfg.model)


def build_voxtral(sizes: Sizes, audio_token_id: int, seed: int = 0) -> Any:
    """transformers' ``VoxtralForConditionalGeneration`` of the same sizes, trained like ours: the
    audio tower and the LLM frozen, the multi-modal projector trained."""
    import torch
    from transformers import VoxtralConfig, VoxtralEncoderConfig, VoxtralForConditionalGeneration

    torch.manual_seed(seed)
    audio = VoxtralEncoderConfig(
        hidden_size=sizes.enc_dim,
        num_hidden_layers=sizes.enc_layers,
        num_attention_heads=sizes.enc_heads,
        # Voxtral stacks 4 frames into one projector input of `intermediate_size`: 4 × d_model.
        intermediate_size=4 * sizes.enc_dim,
        num_mel_bins=80,
        max_source_positions=1500,
    )
    config = VoxtralConfig(audio_config=audio, text_config=llama_config(sizes), audio_token_id=audio_token_id)
    model = VoxtralForConditionalGeneration(config)
    model.requires_grad_(False)
    model.model.multi_modal_projector.requires_grad_(True)
    return model


@dataclass
class StepBatch:
    """One batch in both layouts: speechllm's dict and Voxtral's ids / labels / mel features."""

    speechllm: dict[str, Any]
    voxtral: dict[str, Any]
    audio_seconds: float
    target_tokens: int


def make_batch(
    sizes: Sizes,
    batch_size: int,
    seconds: list[float],
    target_tokens: int,
    audio_token_id: int,
    device: str = "cpu",
    prefix_tokens: int = 12,
    suffix_tokens: int = 4,
    seed: int = 0,
) -> StepBatch:
    """Random audio of the given durations and random prompt / target ids.

    Voxtral always encodes a 30 s window and feeds its 375 stacked frames as audio tokens; its mel
    features are computed here, outside the timed step (favouring the peer: speechllm's step
    computes its own features from audio).
    """
    import torch

    from speechllm.encoders.features import WhisperLogMel

    assert len(seconds) == batch_size
    gen = torch.Generator().manual_seed(seed)
    lens = torch.tensor([int(s * 16000) for s in seconds])
    audio = 0.1 * torch.randn(batch_size, int(lens.max()), generator=gen)
    audio = audio * (torch.arange(audio.shape[1])[None, :] < lens[:, None])
    # Ids below 1000 stay inside the tokenizer; the audio placeholder is not among them.
    ids = lambda n: torch.randint(4, 1000, (batch_size, n), generator=gen)  # noqa: E731
    prefix, suffix, target = ids(prefix_tokens), ids(suffix_tokens), ids(target_tokens)
    full = lambda n: torch.full((batch_size,), n, dtype=torch.long)  # noqa: E731
    ours = {
        "audio": audio,
        "audio_lens": lens,
        "prefix_ids": prefix,
        "prefix_lens": full(prefix_tokens),
        "suffix_ids": suffix,
        "suffix_lens": full(suffix_tokens),
        "target_ids": target,
        "target_lens": full(target_tokens),
        "transcript_ids": target,
        "transcript_lens": full(target_tokens),
    }
    window = torch.zeros(batch_size, 480000)
    window[:, : audio.shape[1]] = audio[:, :480000]
    features, _ = WhisperLogMel(num_mel_bins=80)(window, full(480000))
    audio_ids = torch.full((batch_size, 375), audio_token_id)
    input_ids = torch.cat([prefix, audio_ids, suffix, target], dim=1)
    labels = torch.full_like(input_ids, -100)
    labels[:, -target_tokens:] = target
    theirs = {
        "input_ids": input_ids,
        "input_features": features,
        "attention_mask": torch.ones_like(input_ids),
        "labels": labels,
    }
    move = lambda d: {k: v.to(device) for k, v in d.items()}  # noqa: E731
    return StepBatch(move(ours), move(theirs), float(sum(seconds)), batch_size * target_tokens)


def train_step_fn(model: Any, batch: dict[str, Any], precision: str, peer: bool) -> Callable[[], float]:
    """A closure doing one optimizer step (forward, backward, AdamW, zero_grad); returns the loss.

    ``precision``: ``bf16-mixed`` (autocast; what the library's default trainer precision does)
    or ``32``. For speechllm the frozen encoder's own dtype is set at build time.
    """
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    device_type = next(model.parameters()).device.type
    model.train()

    def step() -> float:
        with torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
            loss = model(**batch).loss if peer else model(batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device_type == "cuda":
            torch.cuda.synchronize()
        return float(loss.detach())

    return step


# -- decoding benchmarks: the clips and their encoder outputs ---------------------------------------
DEMO_CLIP_SECONDS = (2.5, 3.5, 4.5, 5.5)  # cycled over a batch of noise: the demo's clips are 1.5–7 s


def decoding_clips(manifest: Path | None, batch: int) -> list[Any]:
    """The first ``batch`` readable clips of ``manifest`` (mono 16 kHz), or noise of the demo's
    clip lengths when there is none."""
    import torch

    if manifest is None:
        generator = torch.Generator().manual_seed(0)
        return [
            0.1 * torch.randn(int(16000 * DEMO_CLIP_SECONDS[i % 4]), generator=generator)
            for i in range(batch)
        ]
    from lhotse import load_manifest_lazy

    from speechllm.audio import load_mono_16k

    clips = []
    for cut in load_manifest_lazy(manifest):
        audio, _ = load_mono_16k(cut)
        if audio is not None:
            clips.append(audio)
        if len(clips) == batch:
            break
    return clips


def encode_each(model: Any, clips: list[Any]) -> tuple[Any, Any, list[Any]]:
    """Each clip encoded alone (as the encoder-output cache does: Whisper on its true length attends
    over a batch's padding), then padded: ``(hidden (B, T, C), lens (B,), per-clip frames)``."""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    with torch.no_grad():
        encoded = [model.encoder(clip[None], torch.tensor([clip.numel()])) for clip in clips]
    frames = [hidden[0, : int(length[0])].float() for hidden, length in encoded]
    return pad_sequence(frames, batch_first=True), torch.tensor([len(f) for f in frames]), frames
