"""CIF integrate-and-fire: vectorized (speechllm.adapters.cif) vs the per-frame loop reference;
then forward + backward (training) of its weighted sum, ``index_add`` (the library) vs a sparse
matmul (the library's previous sum) on the same weights.

Run: ``python benchmarks/cif.py [--batch 8 --frames 1500 --dim 1280 --repeats 5]``. Sizes default
to a Whisper batch (30 s = 1500 frames at 50 Hz, C = 1280) firing at about 2 Hz as in the paper.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import _timing
import torch
from helpers.reference_adapters import cif_integrate_loop

from speechllm.adapters.cif import cif_integrate, cif_weights


def sparse_matmul_integrate(hidden: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """The previous weighted sum: one sparse (B·K, B·T) × (B·T, C) product (its backward forms the
    dense gradient of the weight matrix)."""
    batch, frames, channels = hidden.shape
    row, col, weight, _, max_out = cif_weights(alphas)
    matrix = torch.sparse_coo_tensor(
        torch.stack([row, col]), weight, (batch * max_out, batch * frames), check_invariants=False
    )
    return torch.sparse.mm(matrix, hidden.reshape(batch * frames, channels)).view(batch, max_out, channels)


def training_pass(integrate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], hidden, alphas) -> None:
    """Forward and backward of ``integrate`` with gradients into the frames and α."""
    hidden = hidden.detach().requires_grad_()
    alphas = alphas.detach().requires_grad_()
    integrate(hidden, alphas).square().sum().backward()


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

    sparse = sparse_matmul_integrate(hidden, alphas)
    torch.testing.assert_close(sparse, fired, atol=1e-3, rtol=1e-4)
    times = _timing.interleaved_times(
        {
            "sparse": lambda: training_pass(sparse_matmul_integrate, hidden, alphas),
            "index_add": lambda: training_pass(lambda h, a: cif_integrate(h, a)[0], hidden, alphas),
        },
        args.repeats,
    )
    sparse_s, index_add_s = _timing.median(times["sparse"]), _timing.median(times["index_add"])
    print(f"\nCIF weighted sum, forward + backward, same sizes, median of {args.repeats} (interleaved)")
    print("| weighted sum | ms | speed-up |")
    print("|---|---:|---:|")
    print(f"| sparse matmul (previous) | {sparse_s * 1e3:.1f} | 1.0× |")
    print(f"| index_add (library) | {index_add_s * 1e3:.1f} | {sparse_s / index_add_s:.1f}× |")
    print(_timing.machine_line())


if __name__ == "__main__":
    main()
