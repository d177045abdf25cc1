"""How the pre-alignment warm-up decides whether a short stage leaves the CTC plateau.

The study's cells pre-align for a few minutes: 300–500 steps. This script trains the study's Conv
adapter (Whisper tiny.en cache → Conv 4:1 → MLP → cosine CTC head over SmolLM2's embeddings,
the transcripts' ids kept: the library's ``ConvAdapter`` and ``PreAlignHead``) for a fixed number
of steps at a peak lr and a warm-up length, and decodes the adapter alone (CTC greedy) on
held-out training clips every 100 steps. Step-based, so the machine's load does not change the
result, only its time.

Run (after ``recipes/study/run.sh --stop-stage 3``)::

    python recipes/study/warmup_sweep.py --runs 4e-3:15 4e-3:50 2e-3:50 4e-3:200 1e-3:100
    python recipes/study/warmup_sweep.py --steps 0 --write-held-out held_out.jsonl.gz   # the floor
    speechllm whisper-baseline --model whisper-tiny.en --manifest held_out.jsonl.gz --out anchor

Prints one JSON line per evaluation: lr, warm-up, step, training loss, held-out WER and CER, and
the first hypotheses beside their references.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import time
from pathlib import Path

import jiwer
import numpy as np
import torch
from lhotse import CutSet, load_manifest_lazy
from torch import Tensor

from speechllm.adapters.conv import ConvAdapter
from speechllm.adapters.interface import AdapterTargets
from speechllm.data.encoder_cache import EncoderCache
from speechllm.prealign.head import PreAlignHead
from speechllm.prealign.module import lr_factor

Clip = tuple[Tensor, str]


def load_clips(manifest: Path, cache: EncoderCache) -> list[Clip]:
    """(T, C) float32 encoder outputs and the transcript of every cached cut of ``manifest``."""
    return [
        (torch.from_numpy(cache.load(cut).astype(np.float32)), cut.supervisions[0].text)
        for cut in load_manifest_lazy(manifest)
    ]


def normalize(text: str) -> str:
    return re.sub(r" +", " ", re.sub(r"[^a-z' ]+", " ", text.lower())).strip()


def batches_by_duration(clips: list[Clip], frames: int) -> list[list[int]]:
    """Indices of duration-sorted clips, grouped into batches of at most ``frames`` encoder frames."""
    order = sorted(range(len(clips)), key=lambda i: clips[i][0].shape[0])
    batches: list[list[int]] = [[]]
    total = 0
    for i in order:
        length = clips[i][0].shape[0]
        if batches[-1] and total + length > frames:
            batches.append([])
            total = 0
        batches[-1].append(i)
        total += length
    return batches


def collate(features: list[Tensor]) -> tuple[Tensor, Tensor]:
    lens = torch.tensor([x.shape[0] for x in features])
    hidden = torch.zeros(len(features), int(lens.max()), features[0].shape[1])
    for row, x in enumerate(features):
        hidden[row, : x.shape[0]] = x
    return hidden, lens


def run(args: argparse.Namespace, lr: float, warmup: int, train: list[Clip], dev: list[Clip]) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from speechllm.presets.gguf import smollm2_135m_instruct_dir

    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    llm_dir = smollm2_135m_instruct_dir()
    tokenizer = AutoTokenizer.from_pretrained(llm_dir)
    table = AutoModelForCausalLM.from_pretrained(llm_dir).get_input_embeddings().weight.detach()
    ids = [tokenizer(" " + text.strip(), add_special_tokens=False).input_ids for _, text in train]
    head = PreAlignHead(table.shape[1], table.shape[0])
    head.set_vocab(torch.tensor(sorted({i for row in ids for i in row})))
    adapter = ConvAdapter(
        384, table.shape[1], modality="mlp", modality_dim=1024, modality_layers=1, dropout=0.0
    )
    params = [*adapter.parameters(), head.blank, head.log_scale]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)

    def factor(step: int) -> float:  # the stage's own schedule (prealign.warmup_ratio 0)
        fraction = step / args.steps if args.steps else 0.0
        return lr_factor(step, fraction, warmup_ratio=0.0, warmup_steps=warmup, steps=args.steps)

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    batches = batches_by_duration(train, int(args.batch_seconds * 50))

    def evaluate() -> tuple[float, float, list[str], list[str]]:
        adapter.eval()
        hyps, refs = [], []
        with torch.no_grad():
            for start in range(0, len(dev), 16):
                part = dev[start : start + 16]
                out = adapter(*collate([x for x, _ in part]))
                for row, decoded in enumerate(head.greedy_ids("ctc", out, table)):
                    hyps.append(normalize(tokenizer.decode(decoded)) or "<empty>")
                    refs.append(normalize(part[row][1]))
        adapter.train()
        return 100 * jiwer.wer(refs, hyps), 100 * jiwer.cer(refs, hyps), hyps[:2], refs[:2]

    def report(step: int, loss: float | None) -> None:
        wer, cer, hyps, refs = evaluate()
        row = {
            "lr": lr,
            "warmup_steps": warmup,
            "step": step,
            "loss": None if loss is None else round(loss, 3),
        }
        row |= {"wer": round(wer, 1), "cer": round(cer, 1), "seconds": round(time.perf_counter() - started)}
        print(json.dumps(row | {"hyp": hyps, "ref": refs}), flush=True)

    step, started = 0, time.perf_counter()
    if args.steps == 0:  # the untrained floor: the seeded initialisation decoded alone
        report(0, None)
    while step < args.steps:
        rng.shuffle(batches)
        for batch in batches:
            hidden, lens = collate([train[i][0] for i in batch])
            rows = [ids[i] for i in batch]
            width = max(len(r) for r in rows)
            targets = AdapterTargets(
                torch.tensor([r + [0] * (width - len(r)) for r in rows]), torch.tensor([len(r) for r in rows])
            )
            loss = head.loss("ctc", adapter(hidden, lens), targets, table)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            step += 1
            if step % 100 == 0 or step == args.steps:
                report(step, float(loss))
            if step >= args.steps:
                break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=["4e-3:15", "4e-3:200"], help="peak_lr:warmup_steps")
    parser.add_argument(
        "--data", type=Path, default=Path("data/demo"), help="holds study_sets/, encoder_cache/"
    )
    parser.add_argument("--steps", type=int, default=400, help="0: decode the untrained adapter (the floor)")
    parser.add_argument("--held-out", type=int, default=60, help="training clips kept out, decoded")
    parser.add_argument("--write-held-out", type=Path, default=None, help="their manifest, for an anchor")
    parser.add_argument("--batch-seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    clips = load_clips(
        args.data / "study_sets" / "asr_train.jsonl.gz", EncoderCache.open_single(args.data / "encoder_cache")
    )
    train, dev = clips[: -args.held_out], clips[-args.held_out :]
    if args.write_held_out:  # e.g. for `speechllm whisper-baseline --manifest` on the same clips
        cuts = list(load_manifest_lazy(args.data / "study_sets" / "asr_train.jsonl.gz"))
        CutSet.from_cuts(cuts[len(cuts) - args.held_out :]).to_file(args.write_held_out)
    for spec in args.runs:
        lr, warmup = spec.split(":")
        if not math.isfinite(float(lr)) or int(warmup) < 1:
            parser.error(f"--runs {spec}: want peak_lr:warmup_steps, e.g. 4e-3:200")
        run(args, float(lr), int(warmup), train, dev)


if __name__ == "__main__":
    main()
