"""Write the plan of every configuration of Table 3 into docs/planning.md (between its markers).

    PYTHONPATH=. python scripts/plan_table.py [--gpu h100] [--gpus 8] [--mfu 0.4]

Each row is :func:`speechllm.planning.plan.plan` of ``recipes/<pair>/conf/asr.yaml`` with
``model.adapter.name=<adapter>``; the ST config of a pair plans the same (same model, same clips:
the task changes the target text only), so one row stands for both tasks.
"""

from __future__ import annotations

import argparse
import re
import warnings
from pathlib import Path

from speechllm.config import load_config
from speechllm.planning.hardware import GIB, GPUS
from speechllm.planning.memory import USABLE_FRACTION
from speechllm.planning.plan import Plan, plan

ROOT = Path(__file__).resolve().parents[1]
PAIRS = ("whisper_llama", "whisper_mistral", "seamless_llama", "seamless_mistral")
ADAPTERS = ("base", "conv", "cif", "ctc", "wlq_former")
DOC = ROOT / "docs" / "planning.md"
BEGIN, END = "<!-- plan-table:begin -->", "<!-- plan-table:end -->"


def smallest_gpu(result: Plan, strategy: str, ckpt: bool) -> str:
    """The GPU with the least memory that holds the planned batch with ``strategy``."""
    need = result.memory[strategy, ckpt].total
    fitting = [
        g
        for g in sorted(GPUS.values(), key=lambda g: g.memory_gib)
        if need <= g.memory_gib * GIB * USABLE_FRACTION
    ]
    return fitting[0].name if fitting else "none"


def row(pair: str, adapter: str, result: Plan) -> str:
    typical = result.shapes[1]
    trained = sum(part["trained"] for part in result.counts.values())
    ddp, ddp_ckpt = result.memory["ddp", False].total / GIB, result.memory["ddp", True].total / GIB
    fsdp_ckpt = result.memory["fsdp", True].total / GIB
    tflops, pflops_h = result.typical.total_flops / 1e12, result.flops_per_audio_hour / 1e15
    cells = [
        pair,
        adapter,
        f"{trained / 1e6:.1f}",
        str(typical.llm_tokens),
        f"{tflops:.0f}",
        f"{pflops_h:.2f}",
        f"{ddp:.1f} ({smallest_gpu(result, 'ddp', False)})",
        f"{ddp_ckpt:.1f} ({smallest_gpu(result, 'ddp', True)})",
        f"{fsdp_ckpt:.1f}",
        f"{result.step_seconds[0]:.2f}",
        f"{result.epoch_hours:.2f}",
        f"{result.run_hours:.1f}",
        f"{2 * result.cost:,.0f}",
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", default="h100")
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--mfu", type=float, default=0.4)
    args = parser.parse_args()
    rows, total = [], 0.0
    for pair in PAIRS:
        for adapter in ADAPTERS:
            cfg = load_config(
                ROOT / "recipes" / pair / "conf" / "asr.yaml", [f"model.adapter.name={adapter}"]
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = plan(cfg, gpu=args.gpu, gpus=args.gpus, mfu=args.mfu)
            rows.append(row(pair, adapter, result))
            total += 2 * result.cost
            print(rows[-1], flush=True)
    header = (
        "| pair | adapter | trained M | LLM length (4.7 s clip) | TFLOPs/step | PFLOPs/audio h "
        "| GiB/GPU DDP (smallest GPU) | DDP + ckpt | FSDP + ckpt "
        "| step s | epoch h | 40k steps h | $ ASR + ST |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    note = (
        f"\n\nOn {args.gpus} × {args.gpu} at {args.mfu:.0%} MFU, {GPUS[args.gpu].price:.2f} $/GPU-hour: "
        f"all 20 configurations, ASR and ST, {', '.join(ADAPTERS)}: **${total:,.0f}**."
    )
    text = DOC.read_text()
    table = f"{BEGIN}\n{header}\n" + "\n".join(rows) + note + f"\n{END}"
    DOC.write_text(re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: table, text, flags=re.S))
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
