"""Pre-alignment (speechllm.prealign.head, speechllm.prealign.module): the head, its objectives and
readouts, and the stage run by ``speechllm train`` before the LLM stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers.paths import TINY_RECIPE

from speechllm.adapters.interface import AdapterOutput, AdapterTargets
from speechllm.config import ConfigError, load_config
from speechllm.lightning.checkpoint import PREALIGN_DIR, PREALIGN_DONE
from speechllm.model import SpeechLLM
from speechllm.prealign.head import PreAlignHead, _merge_runs
from speechllm.training import prepare_model_config, train

ADAPTERS = ("base", "conv", "cif", "ctc", "wlq_former")


def _config(tmp_path: Path, tones_dir: Path, overrides: list[str], adapter: str, *extra: str):
    return load_config(
        TINY_RECIPE,
        [
            *overrides,
            f"model.adapter.name={adapter}",
            f"output_dir={tmp_path / adapter}",
            f"data.train=[{{path: {tones_dir}/tones_cuts_train.jsonl.gz, task: asr}}]",
            f"data.val=[{{path: {tones_dir}/tones_cuts_dev.jsonl.gz, task: asr}}]",
            "trainer.enable_progress_bar=false",
            "trainer.logger=none",
            *extra,
        ],
    )


# -- the head -----------------------------------------------------------------------------------------


def test_merge_runs_averages_equal_labels_and_drops_blank_runs() -> None:
    values = torch.arange(8, dtype=torch.float32).view(1, 8, 1)
    labels = torch.tensor([[3, 3, 0, 0, 5, 0, 3, 3]])  # runs: [3 3] [∅ ∅] [5] [∅] [3 3]
    pooled, lens = _merge_runs(values, labels, torch.tensor([8]))
    assert lens.tolist() == [3]
    assert pooled[0, :, 0].tolist() == [0.5, 4.0, 6.5]  # the two 3-runs stay apart (a blank between)


def test_merge_runs_respects_padding_and_an_all_blank_clip() -> None:
    values = torch.ones(2, 4, 2)
    labels = torch.tensor([[1, 2, 2, 7], [0, 0, 0, 0]])
    pooled, lens = _merge_runs(values, labels, torch.tensor([3, 4]))  # frame 3 of clip 0 is padding
    assert lens.tolist() == [2, 0]
    assert pooled.shape == (2, 2, 2)
    assert torch.all(pooled[1] == 0)


def test_vocabulary_restriction_maps_ids_and_round_trips_through_load() -> None:
    head = PreAlignHead(4, 50)
    head.set_vocab(torch.tensor([7, 3, 3, 40]))
    assert head.vocab_ids.tolist() == [3, 7, 40]
    classes = head.class_targets(AdapterTargets(torch.tensor([[40, 3, 9, 7]]), torch.tensor([4])))
    assert classes.ids[0, : int(classes.lens[0])].tolist() == [3, 1, 2]  # 9 is outside: dropped
    fresh = PreAlignHead(4, 50)
    fresh.load_state_dict(head.state_dict())
    assert fresh.vocab_ids.tolist() == [3, 7, 40]
    assert torch.equal(fresh.blank, head.blank)


def test_frozen_table_logits_and_gradients_equal_the_full_cosine_matrix() -> None:
    """The frozen table's normalised rows are kept between steps and get no gradient; the logits
    and the gradients of the adapter outputs, the blank and the scale are those of the plain
    cosine matrix over [blank; kept rows]."""
    torch.manual_seed(0)
    head = PreAlignHead(8, 30)
    head.set_vocab(torch.tensor([2, 5, 11, 17, 29]))
    head.requires_grad_(True)  # as the pre-alignment stage trains it
    table = torch.randn(30, 8)
    embeds = torch.randn(2, 6, 8, requires_grad=True)
    logits = head.logits(embeds, table)
    logits.pow(2).sum().backward()
    fast = [embeds.grad.clone(), head.blank.grad.clone(), head.log_scale.grad.clone()]
    for tensor in (embeds, head.blank, head.log_scale):
        tensor.grad = None
    trained_table = table.clone().requires_grad_(True)  # takes the differentiable path
    reference = head.logits(embeds, trained_table)
    reference.pow(2).sum().backward()
    assert torch.allclose(logits, reference, atol=1e-5)
    for got, want in zip(fast, [embeds.grad, head.blank.grad, head.log_scale.grad]):
        assert torch.allclose(got, want, atol=1e-4)
    assert head.token_classes(table) is head.token_classes(table)  # computed once
    head.set_vocab(torch.tensor([2, 5]))  # a new vocabulary: recomputed
    assert head.token_classes(table).shape == (2, 8)
    table.mul_(2.0)  # an in-place change of the table: recomputed (and unit length again)
    assert torch.allclose(head.token_classes(table), torch.nn.functional.normalize(table[[2, 5]], dim=-1))


def test_ctc_greedy_decodes_vectors_equal_to_embedding_rows() -> None:
    torch.manual_seed(0)
    table = torch.randn(20, 16)
    head = PreAlignHead(16, 20, init_scale=50.0)
    head.set_vocab(torch.tensor([2, 5, 11]))
    blank = head.blank.detach()
    frames = torch.stack([table[5], table[5], blank, table[11], blank, table[5]])[None]
    out = AdapterOutput(frames, torch.tensor([6]))
    assert head.greedy_ids("ctc", out, table) == [[5, 11, 5]]
    assert head.greedy_ids("ce", out, table)[0][:2] == [5, 5]  # ce: one token per vector
    read = head.read(out, table)  # frames readout: unchanged at output_scale 1
    assert torch.equal(read.embeds, frames)
    head.readout = "compress"
    assert head.read(out, table).lens.tolist() == [3]
    head.readout = "mix"
    mixed = head.read(out, table)
    assert torch.allclose(mixed.embeds[0, 1], table[11], atol=1e-3)  # a confident run: its embedding row


def test_tokens_readout_reads_token_embeddings_and_passes_gradients_to_the_adapter() -> None:
    torch.manual_seed(0)
    table = torch.randn(20, 16)
    head = PreAlignHead(16, 20, readout="tokens", init_scale=5.0)
    head.set_vocab(torch.tensor([2, 5, 11]))
    frames = (torch.stack([table[5], table[5], table[11]]) + 0.3 * torch.randn(3, 16))[None]
    frames.requires_grad_(True)
    read = head(AdapterOutput(frames, torch.tensor([3])), table)
    assert read.lens.tolist() == [2]
    assert torch.equal(read.embeds[0].detach(), torch.stack([table[5], table[11]]))  # exactly the rows
    read.embeds.sum().backward()
    assert frames.grad is not None and frames.grad.abs().sum() > 0  # straight-through


def test_transcript_injection_replaces_picked_rows_by_their_transcript_embeddings() -> None:
    torch.manual_seed(0)
    table = torch.randn(20, 16)
    frames = torch.stack([table[5], table[5], table[11]])[None].expand(4, -1, -1).clone().requires_grad_(True)
    out = AdapterOutput(frames, torch.tensor([3, 3, 3, 3]))
    targets = AdapterTargets(torch.tensor([[2, 5, 11, 7], [5, 2, 0, 0], [11, 0, 0, 0], [7, 7, 2, 0]]),
                             torch.tensor([4, 2, 1, 3]))  # fmt: skip
    head = PreAlignHead(16, 20, readout="tokens", init_scale=50.0, transcript_ratio=0.5)
    head.set_vocab(torch.tensor([2, 5, 7, 11]))
    read = head.read(out, table)  # every row reads "5 11"
    torch.manual_seed(1)
    picked = (torch.rand(4) < 0.5).tolist()
    torch.manual_seed(1)
    injected = head.inject_transcripts(read, targets, table)
    assert any(picked) and not all(picked)
    for row, was_picked in enumerate(picked):
        length = int(injected.lens[row])
        expected = targets.ids[row, : int(targets.lens[row])] if was_picked else torch.tensor([5, 11])
        assert length == expected.numel()
        assert torch.equal(injected.embeds[row, :length].detach(), table[expected])
        assert not injected.embeds[row, length:].any()  # padding stays zero
    injected.embeds.sum().backward()  # the graph reaches the adapter's outputs (DDP: every gradient)
    assert frames.grad is not None
    with pytest.raises(ValueError, match="transcript_ratio needs readout: tokens"):
        PreAlignHead(16, 20, readout="frames", transcript_ratio=0.5)


def test_copy_targets_replace_picked_asr_targets_by_the_transcript_read_plus_stop() -> None:
    torch.manual_seed(0)
    table = torch.randn(20, 16)
    frames = torch.stack([table[5], table[5], table[11]])[None].expand(4, -1, -1).clone()
    head = PreAlignHead(16, 20, readout="tokens", init_scale=50.0, copy_ratio=0.5)
    head.set_vocab(torch.tensor([2, 5, 7, 11]))
    read = head.read(AdapterOutput(frames, torch.tensor([3, 3, 2, 3])), table)
    assert read.stats["token_ids"].tolist() == [[5, 11], [5, 11], [5, 0], [5, 11]]  # 0: padding
    targets, lens = (
        torch.tensor([[7, 7, 7, 19], [2, 19, 0, 0], [7, 19, 0, 0], [2, 2, 19, 0]]),
        torch.tensor([4, 2, 2, 3]),
    )
    eligible = torch.tensor([True, True, True, False])  # the last row: an ST target, never a copy
    torch.manual_seed(1)
    picked = ((torch.rand(4) < 0.5) & eligible).tolist()
    torch.manual_seed(1)
    ids, new_lens = head.copy_targets(read, targets, lens, stop_id=19, eligible=eligible)
    assert any(picked) and not all(picked[:3])
    for row, was_picked in enumerate(picked):
        expected = (
            read.stats["token_ids"][row, : int(read.lens[row])].tolist() + [19]
            if was_picked
            else (targets[row, : int(lens[row])].tolist())
        )
        assert ids[row, : int(new_lens[row])].tolist() == expected


def test_match_scale_sets_outputs_to_the_embedding_rms() -> None:
    table = torch.full((10, 4), 0.5)
    head = PreAlignHead(4, 10)
    assert head.match_scale(2.0, table) == pytest.approx(0.25)


# -- config -------------------------------------------------------------------------------------------


def test_pretrain_config_adds_the_head_and_rejects_unknown_options(tmp_path: Path) -> None:
    cfg = load_config(TINY_RECIPE, ["prealign.objective=auto", "prealign.steps=5"])
    assert cfg.model.prealign == {}
    with pytest.raises(ConfigError, match="prealign.objective: unknown 'mse'"):
        load_config(TINY_RECIPE, ["prealign.objective=mse", "prealign.steps=5"])
    with pytest.raises(ConfigError, match="prealign.steps or prealign.minutes"):
        load_config(TINY_RECIPE, ["prealign.objective=ctc"])
    with pytest.raises(ConfigError, match="model.prealign.temperature: unknown option"):
        load_config(TINY_RECIPE, ["model.prealign.temperature=3"])


def test_warmup_steps_ramp_the_lr_over_steps_whatever_the_budget_and_refuse_a_negative_count() -> None:
    from speechllm.lightning.module import warmup_cosine
    from speechllm.prealign.module import lr_factor

    # A time budget: 20 steps in, the clock says the 5 % warm-up is over (fraction 0.1), the ramp does not.
    assert lr_factor(20, 0.1, warmup_ratio=0.05, warmup_steps=100) == pytest.approx(0.2)
    assert lr_factor(20, 0.1, warmup_ratio=0.05, warmup_steps=0) == pytest.approx(
        warmup_cosine(0.1, 0.05, min_ratio=0.05)
    )
    # After the ramp the budget's cosine decides; step 0 starts at 1 %, not 0.
    assert lr_factor(300, 0.5, warmup_ratio=0.05, warmup_steps=100) == pytest.approx(
        warmup_cosine(0.5, 0.05, min_ratio=0.05)
    )
    assert lr_factor(0, 0.0, warmup_ratio=0.05, warmup_steps=100) == pytest.approx(0.01)
    # A step budget shorter than two ramps: the ramp is half of it, so the peak is reached.
    factors = [lr_factor(s, s / 40, warmup_ratio=0.0, warmup_steps=100, steps=40) for s in range(40)]
    assert factors[10] == pytest.approx(0.5)
    assert factors[20] == pytest.approx(warmup_cosine(0.5, 0.0, min_ratio=0.05))  # the ramp is over
    with pytest.raises(ConfigError, match="prealign.warmup_steps=-1"):
        load_config(TINY_RECIPE, ["prealign.objective=auto", "prealign.steps=5", "prealign.warmup_steps=-1"])


# -- the stage ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_prealignment_lowers_its_loss_and_changes_only_adapter_parameters(
    adapter: str, tmp_path: Path, tones_dir: Path, tiny_model_overrides: list[str]
) -> None:
    from speechllm.data.datamodule import SpeechDataModule
    from speechllm.lightning.trainer import build_module, build_trainer
    from speechllm.prealign.head import resolve_objective
    from speechllm.prealign.module import PreAlignModule

    cfg = prepare_model_config(
        _config(
            tmp_path, tones_dir, tiny_model_overrides, adapter, "prealign.objective=auto", "prealign.steps=1"
        )
    )
    module = build_module(cfg)
    model = module.model
    objective = resolve_objective("auto", model.adapter)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lora_flags = {n: p.requires_grad for n, p in model.named_parameters()}
    data = SpeechDataModule(cfg.data, model.llm.prompts, seed=0, encoder=model.encoder)
    batch = next(iter(data.train_dataloader()))
    stage = PreAlignModule(model, objective, lr=1e-2, steps=40, warmup_ratio=0.0)
    with torch.no_grad():
        first = float(stage._loss(batch)[0])
    stage_cfg = load_config(
        None,
        [
            f"output_dir={tmp_path / 'stage'}",
            "trainer.logger=none",
            "trainer.enable_progress_bar=false",
            "trainer.max_steps=40",
            "trainer.accelerator=cpu",
            "trainer.precision=32",
        ],
    )
    trainer = build_trainer(stage_cfg, model=model, export=False)
    loader = torch.utils.data.DataLoader([batch] * 40, batch_size=None, collate_fn=lambda b: b)
    trainer.fit(stage, train_dataloaders=loader)
    stage.release()
    with torch.no_grad():
        last = float(stage._loss(batch)[0])
    assert last < 0.7 * first, (first, last)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed, "nothing trained"
    assert all(k.startswith(("adapter.", "prealign.")) for k in changed), sorted(changed)[:5]
    assert not {k for k in changed if k.startswith("prealign.")} - {
        "prealign.blank",
        "prealign.log_scale",
        "prealign.output_scale",
    }
    assert {n: p.requires_grad for n, p in model.named_parameters()} == lora_flags  # given back


def test_train_runs_prealignment_then_the_llm_stage_from_it(
    tmp_path: Path, tones_dir: Path, tiny_model_overrides: list[str]
) -> None:
    cfg = _config(
        tmp_path,
        tones_dir,
        tiny_model_overrides,
        "conv",
        "prealign.objective=ctc",
        "prealign.steps=6",
        "prealign.val_check_interval=3",
        "model.prealign.readout=compress",
        "trainer.max_steps=2",
    )
    model_dir = train(cfg)
    out = Path(cfg.output_dir) / PREALIGN_DIR
    summary = json.loads((out / PREALIGN_DONE).read_text())
    assert summary["objective"] == "ctc" and summary["steps"] == 6
    assert summary["dev_wer"] is not None and summary["output_scale"] > 0
    pre = SpeechLLM.from_pretrained(out / "model")
    final = SpeechLLM.from_pretrained(model_dir)
    assert pre.prealign.vocab_ids.numel() < pre.llm.vocab_size  # restricted to the transcripts
    assert torch.equal(final.prealign.vocab_ids, pre.prealign.vocab_ids)
    # The stage ended by matching the outputs' scale to the embeddings' (rescale: true).
    assert summary["output_scale"] != 1.0
    assert float(pre.prealign.output_scale.detach()) == pytest.approx(summary["output_scale"])
    # A new run into the same directory is refused (it would mix with this one's files) ...
    with pytest.raises(ConfigError, match="--resume last"):
        train(cfg)
    # ... and a resumed one does not pre-align again: it loads the finished stage.
    again = train(cfg, resume="last")
    assert json.loads((out / PREALIGN_DONE).read_text()) == summary
    assert again == model_dir
    # Another run starts from this pre-alignment (prealign.init) without running one of its own,
    # and may read it differently; a run with another adapter config may not.
    other = _config(
        tmp_path, tones_dir, tiny_model_overrides, "conv", f"output_dir={tmp_path / 'from_init'}",
        f"prealign.init={out / 'model'}", "model.prealign.readout=tokens", "optim.adapter_lr=0.0",
        "trainer.max_steps=1",
    )  # fmt: skip
    from_init = SpeechLLM.from_pretrained(train(other)).trainable_state_dict()
    assert not (tmp_path / "from_init" / PREALIGN_DIR).exists()
    for name, value in pre.trainable_state_dict().items():
        if name.startswith("adapter."):
            assert torch.equal(value, from_init[name]), name
    wider = _config(
        tmp_path, tones_dir, tiny_model_overrides, "conv", f"output_dir={tmp_path / 'wider'}",
        f"prealign.init={out / 'model'}", "model.adapter.modality_dim=48", "trainer.max_steps=1",
    )  # fmt: skip
    with pytest.raises(
        ConfigError, match=r"prealign.init: .*model.adapter \(modality_dim: 32 there, 48 here\)"
    ):
        train(wider)


@pytest.mark.parametrize("prealign", [True, False])
def test_ctc_adapter_transcripts_vocab_is_set_before_training_and_saved_with_the_model(
    tmp_path: Path, tones_dir: Path, tiny_model_overrides: list[str], prealign: bool
) -> None:
    from speechllm.prealign.module import transcript_vocabulary

    stage = ["prealign.objective=auto", "prealign.steps=2"] if prealign else []
    cfg = _config(
        tmp_path, tones_dir, tiny_model_overrides, "ctc", "model.adapter.vocab=transcripts",
        "trainer.max_steps=1", *stage,
    )  # fmt: skip
    model = SpeechLLM.from_pretrained(train(cfg))
    expected = transcript_vocabulary(cfg.data.train, model.llm.prompts)
    expected = expected[expected != model.adapter.blank_id]
    assert 0 < expected.numel() < model.llm.vocab_size
    assert torch.equal(model.adapter.vocab_ids, expected)
    if prealign:  # one pass over the manifests served both heads
        assert torch.equal(model.prealign.vocab_ids, transcript_vocabulary(cfg.data.train, model.llm.prompts))


def test_adapter_lr_zero_keeps_the_pre_aligned_adapter_and_trains_lora(
    tmp_path: Path, tones_dir: Path, tiny_model_overrides: list[str]
) -> None:
    from speechllm.evaluation import evaluate

    cfg = _config(
        tmp_path, tones_dir, tiny_model_overrides, "conv",
        "prealign.objective=ctc", "prealign.steps=4", "model.prealign.readout=tokens",
        "optim.adapter_lr=0.0", "trainer.max_steps=3",
    )  # fmt: skip
    model_dir = train(cfg)
    pre = SpeechLLM.from_pretrained(Path(cfg.output_dir) / PREALIGN_DIR / "model").trainable_state_dict()
    final = SpeechLLM.from_pretrained(model_dir).trainable_state_dict()
    for name, value in pre.items():
        same = torch.equal(value, final[name])
        assert same if name.startswith(("adapter.", "prealign.")) else True, name
    assert any(not torch.equal(pre[n], final[n]) for n in pre if "lora_" in n), "LoRA did not train"
    # The adapter decoded alone is a decoder of its own, and the run directory says which decoded.
    out = tmp_path / "eval_alone"
    metrics = evaluate(model_dir, tones_dir / "tones_cuts_dev.jsonl.gz", out_dir=out, decoder="prealign")
    assert "asr_wer_en" in metrics
    assert json.loads((out / "run.json").read_text())["decoder"] == "prealign"


@pytest.mark.parametrize("readout", ["frames", "tokens"])
def test_both_stages_run_under_two_process_ddp(
    readout: str, tmp_path: Path, tones_dir: Path, tiny_model_overrides: list[str]
) -> None:
    """A gloo DDP run through ``speechllm train``: every trained parameter gets a gradient in each
    stage (DDP refuses unused ones), the ranks agree on the stage's end and on the output scale."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "ddp"
    args = [
        *tiny_model_overrides, "model.adapter.name=conv", f"output_dir={out}",
        f"data.train=[{{path: {tones_dir}/tones_cuts_train.jsonl.gz, task: asr}}]",
        f"data.val=[{{path: {tones_dir}/tones_cuts_dev.jsonl.gz, task: asr}}]",
        "trainer.enable_progress_bar=false", "trainer.strategy=ddp", "trainer.devices=2",
        "prealign.objective=ctc", "prealign.steps=3", "prealign.val_check_interval=3",
        f"model.prealign.readout={readout}", "trainer.max_steps=2",
    ]  # fmt: skip
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "speechllm.cli", "train", str(TINY_RECIPE), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / PREALIGN_DIR / PREALIGN_DONE).read_text())
    assert summary["steps"] == 3 and summary["dev_wer"] is not None
    final = SpeechLLM.from_pretrained(out / "model")
    assert float(final.prealign.output_scale.detach()) > 0


def test_an_unfinished_prealignment_resumes_from_its_own_checkpoint(
    tmp_path: Path, tones_dir: Path, tiny_model_overrides: list[str]
) -> None:
    common = ("prealign.objective=ctc", "prealign.val_check_interval=3", "trainer.max_steps=1")
    first = _config(tmp_path, tones_dir, tiny_model_overrides, "conv", *common, "prealign.steps=3")
    train(first)
    out = Path(first.output_dir) / PREALIGN_DIR
    assert (out / "checkpoints" / "last.ckpt").is_file()
    (out / PREALIGN_DONE).unlink()  # as if the stage had been killed after its step-3 checkpoint
    longer = _config(tmp_path, tones_dir, tiny_model_overrides, "conv", *common, "prealign.steps=6")
    import lightning as L

    class CountSteps(L.Callback):
        def __init__(self) -> None:
            self.first_step: int | None = None
            self.batches = 0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self.first_step = trainer.global_step if self.first_step is None else self.first_step
            self.batches += 1

    counter = CountSteps()
    train(longer, resume="last", prealign_callbacks=[counter])
    summary = json.loads((out / PREALIGN_DONE).read_text())
    # Resumed at step 3 and ran the 3 remaining steps: it did not start again.
    assert (counter.first_step, counter.batches, summary["steps"]) == (3, 3, 6)


def test_a_trainable_encoder_trains_during_prealignment_and_a_frozen_one_does_not(
    tmp_path: Path, tones_dir: Path, tiny_model_overrides: list[str]
) -> None:
    from speechllm.data.datamodule import SpeechDataModule
    from speechllm.lightning.trainer import build_module
    from speechllm.prealign.head import resolve_objective
    from speechllm.prealign.module import PreAlignModule

    for option, trains in (("model.encoder.unfreeze_top_layers=1", True), ("model.encoder.lora=null", False)):
        torch.manual_seed(0)
        cfg = prepare_model_config(
            _config(
                tmp_path,
                tones_dir,
                tiny_model_overrides,
                "conv",
                "prealign.objective=auto",
                "prealign.steps=1",
                option,
            )
        )
        model = build_module(cfg).model
        encoder_trainable = {n for n, p in model.encoder.named_parameters() if p.requires_grad}
        assert bool(encoder_trainable) is trains
        stage = PreAlignModule(model, resolve_objective("auto", model.adapter), lr=1e-2, steps=1)
        optimizer = stage.configure_optimizers()["optimizer"]
        optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
        named = dict(model.encoder.named_parameters())
        assert {n for n in named if id(named[n]) in optimized} == encoder_trainable
        batch = next(iter(SpeechDataModule(cfg.data, model.llm.prompts, seed=0).train_dataloader()))
        before = {n: named[n].detach().clone() for n in encoder_trainable}
        stage._loss(batch)[0].backward()
        optimizer.step()
        changed = {n for n in encoder_trainable if not torch.equal(named[n].detach(), before[n])}
        assert changed == encoder_trainable
        stage.release()


def test_cif_prealignment_validates_teacher_forced_and_decodes_at_its_own_length(
    tmp_path: Path, tones_dir: Path, tiny_model_overrides: list[str]
) -> None:
    """The CE objective needs one output per transcript token: validation (eval mode) scores the
    loss at the transcript's length as training does, and decodes the dev WER at CIF's own length."""
    cfg = _config(
        tmp_path, tones_dir, tiny_model_overrides, "cif", "prealign.objective=auto", "prealign.steps=4",
        "prealign.val_check_interval=2", "trainer.max_steps=1",
    )  # fmt: skip
    train(cfg)
    summary = json.loads((Path(cfg.output_dir) / PREALIGN_DIR / PREALIGN_DONE).read_text())
    assert summary["objective"] == "ce" and summary["steps"] == 4
    assert summary["dev_wer"] is not None  # validation ran (it raised before: eval-mode lengths)
