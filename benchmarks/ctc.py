"""CTC compression (average runs of equal argmax labels): vectorized vs the per-frame loop reference.

Run: ``python benchmarks/ctc.py [--batch 8 --frames 1500 --dim 1280 --repeats 5]``. Sizes default
to a Whisper batch (1500 frames at 50 Hz, C = 1280) with runs of 13 frames on average, the
paper's Whisper CTC ratio.
"""

from __future__ import annotations

import argparse

import _timing
import torch
from helpers.reference_adapters import ctc_compress_loop

from speechllm.adapters.ctc import ctc_compress


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=1500)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--mean_run", type=float, default=13.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    generator = torch.Generator().manual_seed(0)
    lens = torch.randint(args.frames // 2, args.frames + 1, (args.batch,), generator=generator)
    lens[0] = args.frames
    hidden = torch.randn(args.batch, args.frames, args.dim, generator=generator)
    # A label changes with probability 1/mean_run at each frame (to a different one of 5 labels).
    changes = torch.rand(args.batch, args.frames, generator=generator) < 1 / args.mean_run
    steps = torch.randint(1, 5, (args.batch, args.frames), generator=generator) * changes
    labels = torch.cumsum(steps, dim=1) % 5

    with torch.no_grad():
        pooled, out_lens = ctc_compress(hidden, labels, lens)
        expected, expected_lens = ctc_compress_loop(hidden, labels, lens)
        assert torch.equal(out_lens, expected_lens), "vectorized and loop CTC compression disagree on lengths"
        torch.testing.assert_close(pooled, expected, atol=1e-4, rtol=1e-4)
        loop_s, vectorized_s = _timing.loop_vs_vectorized(
            lambda: ctc_compress_loop(hidden, labels, lens),
            lambda: ctc_compress(hidden, labels, lens),
            args.repeats,
        )
    title = (
        f"CTC run averaging, B={args.batch} T={args.frames} C={args.dim}, "
        f"{int(out_lens.sum())} runs from {int(lens.sum())} frames, torch threads={torch.get_num_threads()}"
    )
    _timing.print_table(title, loop_s, vectorized_s, args.repeats)


if __name__ == "__main__":
    main()
