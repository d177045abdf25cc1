"""The planner's memory and FLOPs beside a real training step's, on the CPU (side by side, ratio).

Run: ``PYTHONPATH=. python benchmarks/plan_memory.py [--batches 4 16 --seconds 4 --adapters base conv]``

Each row builds the tiny random Whisper + Llama (LoRA) with an adapter for real, trains one step
(forward, backward, AdamW) on a batch of equal-length clips, and measures the peak of live tensor
bytes: every storage an operator creates is counted from its creation to the death of its last
tensor (a ``TorchDispatchMode``), on top of the parameters and buffers that exist before the step.
That is what a GPU's caching allocator would hold at least (no fragmentation, no CUDA context).
The plan is :func:`speechllm.planning.memory.memory_per_gpu` of the same config built on ``meta``
for one GPU (parameters + gradients + AdamW states + activations). Attention runs on the math
kernel in both, as the planner counts it.
"""

from __future__ import annotations

import argparse
import weakref
from collections import defaultdict
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from speechllm.config import load_config
from speechllm.config.loading import plain_config
from speechllm.model import SpeechLLM
from speechllm.planning.memory import memory_per_gpu
from speechllm.planning.meta_model import build_meta_model, parameter_counts
from speechllm.planning.step import StepShape, training_step
from speechllm.planning.workload import uniform_batch
from speechllm.presets import speechllm_cache_dir
from speechllm.presets.tiny import tiny_preset_dir

MIB = 2**20


class LiveTensorBytes(TorchDispatchMode):
    """Peak bytes of the storages that operators create while the mode is on (each once)."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: dict[int, int] = defaultdict(int)
        self.sizes: dict[int, int] = {}
        self.current = self.peak = 0

    def _release(self, key: int) -> None:
        self.refs[key] -= 1
        if self.refs[key] == 0:
            self.current -= self.sizes.pop(key)
            del self.refs[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor) and not tensor.is_meta:
                key = tensor.untyped_storage()._cdata
                if key not in self.sizes:
                    self.sizes[key] = tensor.untyped_storage().nbytes()
                    self.current += self.sizes[key]
                    self.peak = max(self.peak, self.current)
                self.refs[key] += 1
                weakref.finalize(tensor, self._release, key)
        return out


def real_step(model: SpeechLLM, batch: int, samples: int) -> tuple[int, int, StepShape]:
    """Peak bytes (parameters and buffers included) and FLOPs of one real step, and its shape."""
    prefix, suffix = model.llm.prompts.prompt_ids("asr", "en", None)
    target = [5, 6, 7, 8, 9, 10, model.llm.prompts.stop_ids[0]]
    inputs = uniform_batch(model.llm.prompts, batch, samples, target)
    model.train()
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=1e-4)
    resident = sum(t.untyped_storage().nbytes() for t in {*model.parameters(), *model.buffers()})
    tracker = LiveTensorBytes()
    with sdpa_kernel(SDPBackend.MATH), tracker, FlopCounterMode(display=False) as counter:
        out = model(inputs)
        out.loss.backward()
        optimizer.step()
    shape = StepShape(batch, samples, int(out.stats["out_lens"][0]), len(prefix) + len(suffix), len(target))
    return resident + tracker.peak, counter.get_total_flops(), shape


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--adapters", nargs="+", default=["base", "conv"])
    args = parser.parse_args()
    cache = speechllm_cache_dir()
    overrides = [
        f"model.encoder.path={tiny_preset_dir('tiny-random-whisper', cache)}",
        "model.encoder.pad_to_30s=false",
        f"model.llm.path={tiny_preset_dir('tiny-random-llama', cache)}",
        "model.llm.lora={r: 8, target_modules: [q_proj, k_proj, v_proj, o_proj]}",
    ]
    config = Path(__file__).resolve().parents[1] / "recipes" / "tiny" / "conf" / "asr.yaml"
    print("| adapter | clips | LLM length | planned MiB | measured MiB | planned / measured | FLOPs equal |")
    print("|---|---|---|---|---|---|---|")
    for adapter in args.adapters:
        cfg = load_config(config, [*overrides, f"model.adapter.name={adapter}"])
        for batch in args.batches:
            torch.manual_seed(0)
            measured, flops, shape = real_step(
                SpeechLLM.from_config(cfg.model), batch, int(args.seconds * 16000)
            )
            meta = build_meta_model(plain_config(cfg.model))
            step = training_step(meta, shape)
            layers = len(meta.decoder_layers)
            planned = memory_per_gpu(parameter_counts(meta), step, "fsdp", 1, False, layers).total
            print(
                f"| {adapter} | {batch} | {shape.llm_tokens} | {planned / MIB:.1f} | {measured / MIB:.1f} "
                f"| {planned / measured:.2f}× | {'yes' if step.total_flops == flops else 'no'} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
