"""CIF integrate-and-fire: vectorized (speechllm.adapters.cif) vs the per-frame loop reference.

Run: ``python benchmarks/cif.py [--batch 8 --frames 1500 --dim 1280 --repeats 5]``. Sizes default
to a Whisper batch (30 s = 1500 frames at 50 Hz, C = 1280) firing at about 2 Hz as in the paper.
"""

from __future__ import annotations

import argparse

import _timing
import torch
from helpers.reference_adapters import cif_integrate_loop

from speechllm.adapters.cif import cif_integrate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=1500)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--tokens_per_second", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    generator = torch.Generator().manual_seed(0)
    lens = torch.randint(args.frames // 2, args.frames + 1, (args.batch,), generator=generator)
    lens[0] = args.frames
    hidden = torch.randn(args.batch, args.frames, args.dim, generator=generator)
    valid = torch.arange(args.frames)[None, :] < lens[:, None]
    # α with the paper's rate on average (2 fires per second of 50 Hz frames), varied per frame.
    mean_alpha = args.tokens_per_second / 50.0
    alphas = (torch.rand(args.batch, args.frames, generator=generator) * 2 * mean_alpha) * valid

    with torch.no_grad():
        fired, out_lens = cif_integrate(hidden, alphas)
        expected, expected_lens = cif_integrate_loop(hidden, alphas, lens)
        assert torch.equal(out_lens, expected_lens), "vectorized and loop CIF disagree on lengths"
        torch.testing.assert_close(fired, expected, atol=1e-3, rtol=1e-4)
        loop_s, vectorized_s = _timing.loop_vs_vectorized(
            lambda: cif_integrate_loop(hidden, alphas, lens),
            lambda: cif_integrate(hidden, alphas),
            args.repeats,
        )
    title = (
        f"CIF integrate-and-fire, B={args.batch} T={args.frames} C={args.dim}, "
        f"{int(out_lens.sum())} fired frames, torch threads={torch.get_num_threads()}"
    )
    _timing.print_table(title, loop_s, vectorized_s, args.repeats)


if __name__ == "__main__":
    main()
