"""Training at scale on CPU: DDP equals accumulation, resume mid-epoch, checkpoints, precisions.

One reference run (tiny Whisper + tiny Llama, Base adapter, fp32, 4 optimizer steps of 2
accumulated batches, a checkpoint every step) is shared by the tests below.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from helpers.exact_runs import exact_run_overrides, free_port, step_losses
from helpers.paths import TINY_RECIPE
from safetensors.torch import load_file

from speechllm.config import ConfigError, load_config
from speechllm.lightning.checkpoint import AtomicCheckpointIO, UnsafeCheckpointError, load_checkpoint
from speechllm.model import TRAINED_WEIGHTS
from speechllm.training import train

STEPS = 4


def overrides_for(tiny_dirs: dict[str, Path], tones_dir: Path, out: Path, *extra: str) -> list[str]:
    """An exact tiny run of STEPS optimizer steps of 2 accumulated batches each."""
    return exact_run_overrides(tiny_dirs, tones_dir, out, STEPS, "trainer.accumulate_grad_batches=2", *extra)


class CutRecorder(L.Callback):
    """Records the cut ids of each training batch the loop completes."""

    def __init__(self) -> None:
        self.cut_ids: list[list[str]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.cut_ids.append(list(batch.cut_ids))


class SimulatedKill(RuntimeError):
    """Stands for a job killed mid-epoch (Lightning swallows KeyboardInterrupt, so not that)."""


class CrashAtStep(L.Callback):
    """Raises when the loop starts the first batch after ``step`` optimizer steps (a killed job)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            raise SimulatedKill(f"killed after step {self.step}")


@pytest.fixture(scope="module")
def reference_run(tiny_dirs, tones_dir, tmp_path_factory) -> tuple[Path, CutRecorder]:
    out = tmp_path_factory.mktemp("reference")
    recorder = CutRecorder()
    train(load_config(TINY_RECIPE, overrides_for(tiny_dirs, tones_dir, out)), callbacks=[recorder])
    return out, recorder


def test_resume_after_a_kill_reproduces_the_remaining_steps_and_cuts(
    reference_run, tiny_dirs, tones_dir, tmp_path
):
    ref_dir, ref_cuts = reference_run
    out = tmp_path / "interrupted"
    cfg = load_config(TINY_RECIPE, overrides_for(tiny_dirs, tones_dir, out))
    before, after = CutRecorder(), CutRecorder()
    with pytest.raises(SimulatedKill):
        train(cfg, callbacks=[before, CrashAtStep(2)])
    assert load_checkpoint(out / "checkpoints" / "last.ckpt")["global_step"] == 2
    train(cfg, resume="last", callbacks=[after])

    reference, resumed = step_losses(ref_dir), step_losses(out)
    assert sorted(reference) == list(range(STEPS))
    # Steps 3 and 4 (logged at indices 2, 3) come from the resumed process: exactly equal.
    for step in (2, 3):
        assert resumed[step] == reference[step], (step, resumed[step], reference[step])
    # The same batches in the same order, none repeated or skipped, within one epoch.
    assert before.cut_ids + after.cut_ids == ref_cuts.cut_ids
    seen = [cut for batch in ref_cuts.cut_ids for cut in batch]
    assert len(seen) == len(set(seen))
    final = load_file(str(out / "model" / TRAINED_WEIGHTS))
    expected = load_file(str(ref_dir / "model" / TRAINED_WEIGHTS))
    assert final.keys() == expected.keys()
    for name in final:
        torch.testing.assert_close(final[name], expected[name], rtol=0, atol=0)


def test_ddp_two_processes_match_one_process_accumulating_the_same_batches(
    reference_run, tiny_dirs, tones_dir, tmp_path
):
    # Two gloo ranks each take every other batch of the same sampler sequence (lhotse shards
    # round-robin); DDP averages their gradients. The reference accumulates the same two batches
    # per step (loss / 2 each), so the updates agree up to float summation order.
    ref_dir, _ = reference_run
    out = tmp_path / "ddp"
    args = overrides_for(tiny_dirs, tones_dir, out, "trainer.strategy=ddp", "trainer.devices=2")
    args = [a for a in args if not a.startswith("trainer.accumulate_grad_batches")]
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "speechllm.cli", "train", str(TINY_RECIPE), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    reference, ddp = step_losses(ref_dir), step_losses(out)
    assert sorted(ddp) == sorted(reference)
    for step in reference:
        assert ddp[step] == pytest.approx(reference[step], rel=1e-5, abs=1e-6), step
    # Weights: compared as a whole. Elementwise they can differ by ~1e-4 where the gradient is zero
    # in exact arithmetic (attention key biases: softmax ignores a constant shift), because AdamW
    # divides the float-order noise there by its own tiny magnitude and takes lr-sized steps.
    trained = load_file(str(out / "model" / TRAINED_WEIGHTS))
    expected = load_file(str(ref_dir / "model" / TRAINED_WEIGHTS))
    assert trained.keys() == expected.keys()
    flat_trained = torch.cat([trained[name].flatten() for name in sorted(expected)])
    flat_expected = torch.cat([expected[name].flatten() for name in sorted(expected)])
    relative = float((flat_trained - flat_expected).norm() / flat_expected.norm())
    assert relative < 1e-4, relative


def test_checkpoint_holds_trained_parameters_only(reference_run):
    ref_dir, _ = reference_run
    path = ref_dir / "checkpoints" / "last.ckpt"
    checkpoint = load_checkpoint(path)
    from speechllm.model import SpeechLLM

    model = SpeechLLM.from_pretrained(ref_dir / "model")
    trained = {"model." + name for name in model.trainable_state_dict()}
    assert set(checkpoint["state_dict"]) == trained
    assert all(key.startswith("model.adapter.") for key in trained)
    assert checkpoint["optimizer_states"] and checkpoint["lr_schedulers"]
    assert checkpoint["SpeechDataModule"]["batches"] == 2 * STEPS
    # Trained weights + AdamW's two moments + bookkeeping: a bound the frozen weights alone break.
    frozen_bytes = sum(p.numel() * p.element_size() for p in model.parameters() if not p.requires_grad)
    trained_bytes = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    bound = 3 * trained_bytes + 64 * 1024
    assert bound < frozen_bytes
    assert path.stat().st_size < bound, (path.stat().st_size, trained_bytes, frozen_bytes)


def test_a_failed_checkpoint_write_leaves_the_previous_one_intact(tmp_path):
    class FailsWhilePickled:
        def __reduce__(self):
            raise OSError("disk full (simulated)")

    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(4)}, "global_step": 1}, path)
    # A large tensor first, so bytes are already written when the failure comes.
    broken = {"state_dict": {"w": torch.zeros(1 << 18)}, "global_step": 2, "bad": FailsWhilePickled()}
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint(broken, path)
    kept = io.load_checkpoint(path)
    assert kept["global_step"] == 1 and torch.equal(kept["state_dict"]["w"], torch.ones(4))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temp file left behind


def test_a_crafted_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class RunsCode:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.ckpt"
    with path.open("wb") as handle:
        pickle.dump({"state_dict": {}, "payload": RunsCode()}, handle)
    with pytest.raises(UnsafeCheckpointError, match="refused"):
        AtomicCheckpointIO().load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("precision", ["bf16-mixed", "bf16-true"])
def test_bf16_training_steps_are_finite_and_keep_trained_weights_fp32(
    precision, tiny_dirs, tones_dir, tmp_path
):
    recorder = LossRecorder()
    cfg = load_config(
        TINY_RECIPE,
        overrides_for(
            tiny_dirs,
            tones_dir,
            tmp_path,
            f"trainer.precision={precision}",
            "trainer.max_steps=1",
            "trainer.accumulate_grad_batches=1",
            "model.llm.lora={r: 4, alpha: 8, dropout: 0.0, target_modules: [q_proj, v_proj]}",
        ),
    )
    train(cfg, callbacks=[recorder])
    assert len(recorder.losses) == 1 and torch.isfinite(recorder.losses[0])
    model = recorder.model
    frozen_dtype = torch.bfloat16 if precision == "bf16-true" else torch.float32
    assert {p.dtype for p in model.parameters() if not p.requires_grad} == {frozen_dtype}
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}
    assert any("lora_" in n for n, p in model.named_parameters() if p.requires_grad)
    states = [
        s for s in recorder.optimizer.state.values() for s in s.values() if torch.is_tensor(s) and s.ndim
    ]
    assert states and {s.dtype for s in states} == {torch.float32}


class LossRecorder(L.Callback):
    def __init__(self) -> None:
        self.losses: list[torch.Tensor] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(outputs["loss"].detach().float())

    def on_train_end(self, trainer, pl_module) -> None:
        self.model = pl_module.model
        self.optimizer = trainer.optimizers[0]


def test_fsdp_wraps_the_llm_decoder_layers_with_original_parameters(tiny_dirs, tones_dir, tmp_path):
    from speechllm.lightning.trainer import build_module, fsdp_strategy
    from speechllm.trainer_options import prepare_model_config

    cfg = prepare_model_config(load_config(TINY_RECIPE, overrides_for(tiny_dirs, tones_dir, tmp_path)))
    strategy = fsdp_strategy(build_module(cfg).model)
    assert {cls.__name__ for cls in strategy.kwargs["auto_wrap_policy"]._module_classes} == {
        "LlamaDecoderLayer"
    }
    assert strategy.kwargs["use_orig_params"] is True


def test_fsdp_on_cpu_and_bf16_true_with_fsdp_are_config_errors(tiny_dirs, tones_dir, tmp_path):
    # Lightning's FSDPStrategy refuses the CPU accelerator, so FSDP training itself is not run
    # here (no GPU); the configuration errors are ours and name the key.
    base = overrides_for(tiny_dirs, tones_dir, tmp_path, "trainer.strategy=fsdp", "trainer.accelerator=cpu")
    with pytest.raises(ConfigError, match="trainer.strategy=fsdp needs CUDA"):
        train(load_config(TINY_RECIPE, base))
    bf16 = [*base[:-1], "trainer.accelerator=gpu", "trainer.precision=bf16-true"]
    with pytest.raises(ConfigError, match="bf16-true cannot be used with trainer.strategy=fsdp"):
        train(load_config(TINY_RECIPE, bf16))


def test_resume_last_without_a_checkpoint_is_a_clear_error(tmp_path, capsys):
    from speechllm.cli import main

    code = main(["train", str(TINY_RECIPE), f"output_dir={tmp_path}", "--resume", "last"])
    assert code == 2
    assert f"{tmp_path}/checkpoints/last.ckpt" in capsys.readouterr().err
