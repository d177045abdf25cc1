"""The CTC adapter's training step: its head over the whole LLM vocabulary vs the transcripts' ids.

Run: ``python benchmarks/ctc_vocab.py [--batch 15 --frames 200 --vocab 49152 --kept 10401]``.
Defaults are the study's Whisper tiny.en cell: batches of ≈ 60 s of audio (15 clips of 4 s at
50 Hz, C = 384), SmolLM2's 49 152 tokens, of which the study's 5 912 training transcripts use
10 401. One step is the adapter's forward, its CTC loss and the backward (as in pre-alignment,
where the LLM does not run); both heads see the same frames and targets.
"""

from __future__ import annotations

import argparse

import _timing
import torch

from speechllm.adapters.interface import AdapterTargets
from speechllm.registry import ADAPTERS


def build(vocab: str, args: argparse.Namespace) -> torch.nn.Module:
    torch.manual_seed(0)
    options = {"modality": "transformer", "modality_dim": 384, "modality_layers": 2, "modality_heads": 6}
    spec = {"name": "ctc", "vocab_size": args.vocab, "blank_id": 0, "vocab": vocab, **options}
    adapter = ADAPTERS.build(spec, in_dim=args.dim, out_dim=576)
    if vocab == "transcripts":
        adapter.set_vocab(torch.randperm(args.vocab - 1)[: args.kept] + 1)
    return adapter.train()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=15)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--vocab", type=int, default=49152)
    parser.add_argument("--kept", type=int, default=10401)
    parser.add_argument("--tokens", type=int, default=12, help="transcript tokens per clip")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    adapters = {vocab: build(vocab, args) for vocab in ("all", "transcripts")}
    generator = torch.Generator().manual_seed(1)
    hidden = torch.randn(args.batch, args.frames, args.dim, generator=generator)
    lens = torch.full((args.batch,), args.frames)
    kept = adapters["transcripts"].vocab_ids
    pick = torch.randint(0, kept.numel(), (args.batch, args.tokens), generator=generator)
    targets = AdapterTargets(kept[pick], torch.full((args.batch,), args.tokens))

    def step(adapter: torch.nn.Module) -> None:
        adapter.zero_grad(set_to_none=True)
        adapter(hidden, lens, targets).aux_loss.backward()

    times = _timing.interleaved_times({k: (lambda a=a: step(a)) for k, a in adapters.items()}, args.repeats)
    full, kept_s = _timing.median(times["all"]), _timing.median(times["transcripts"])
    print(_timing.machine_line())
    print(
        f"CTC adapter step (forward, CTC loss, backward), B={args.batch} T={args.frames} C={args.dim}, "
        f"torch threads={torch.get_num_threads()}"
    )
    print(f"| head | classes | median of {args.repeats} (ms) | spread | speed-up |")
    print("|---|---:|---:|---|---:|")
    print(f"| `vocab: all` | {args.vocab} | {full * 1e3:.0f} | {_timing.spread(times['all'])} | 1.0× |")
    print(
        f"| `vocab: transcripts` | {kept.numel() + 1} | {kept_s * 1e3:.0f} | "
        f"{_timing.spread(times['transcripts'])} | {full / kept_s:.1f}× |"
    )


if __name__ == "__main__":
    main()
