"""Reliability: training faults, real crashes, generation edge cases, incompatible configs, fuzzing.

The table in docs/reliability.md names, for every case of issue 11, the test that holds it; the
cases not already tested elsewhere are here. Training runs use the tiny recipe (tiny random
Whisper + Llama, tone corpus) in fp32, a few steps each.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import soundfile as sf
import torch
from helpers.exact_runs import exact_run_overrides
from helpers.paths import TINY_RECIPE
from lhotse import CutSet, SupervisionSegment

from speechllm.config import load_config
from speechllm.lightning.checkpoint import load_checkpoint
from speechllm.lightning.module import NonFiniteTrainingError
from speechllm.training import train


def logged(output_dir: Path, key: str) -> dict[int, float]:
    """``{step: value}`` of one metric over all CSV log versions of a run directory."""
    values: dict[int, float] = {}
    for metrics in sorted(output_dir.glob("logs/version_*/metrics.csv")):
        values.update(logged_file(metrics, key))
    return values


def logged_file(metrics: Path, key: str) -> dict[int, float]:
    """``{step: value}`` of one metric in one CSV logger ``metrics.csv``."""
    with metrics.open() as handle:
        return {int(row["step"]): float(row[key]) for row in csv.DictReader(handle) if row.get(key)}


# ----------------------------------------------------------------------------- NaN / inf steps


class InjectNonFinite(L.Callback):
    """Fault injection: a NaN loss (adapter output × NaN) or an inf gradient (loss finite) at chosen
    optimizer steps, and a snapshot of the trained parameters at the start of every step."""

    def __init__(self, nan_loss_steps: set[int], inf_grad_steps: set[int] = frozenset()) -> None:
        self.nan_loss_steps, self.inf_grad_steps = nan_loss_steps, inf_grad_steps
        self.snapshots: dict[int, dict[str, torch.Tensor]] = {}
        self._step = -1

    def on_fit_start(self, trainer, pl_module) -> None:
        def poison_output(module, args, output):
            if self._step in self.nan_loss_steps:
                return dataclasses.replace(output, embeds=output.embeds * float("nan"))
            return output

        pl_module.model.adapter.register_forward_hook(poison_output)
        first = next(p for p in pl_module.model.adapter.parameters() if p.requires_grad)
        first.register_hook(lambda grad: grad * float("inf") if self._step in self.inf_grad_steps else grad)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._step = trainer.global_step
        self.snapshots[self._step] = {k: v.clone() for k, v in pl_module.model.trainable_state_dict().items()}

    def on_train_end(self, trainer, pl_module) -> None:
        self.snapshots[trainer.global_step] = {
            k: v.clone() for k, v in pl_module.model.trainable_state_dict().items()
        }
        self.module = pl_module


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_nan_loss_and_inf_gradient_steps_are_skipped_counted_and_training_goes_on(
    tiny_dirs, tones_dir, tmp_path
):
    inject = InjectNonFinite(nan_loss_steps={1}, inf_grad_steps={2})
    train(
        load_config(TINY_RECIPE, exact_run_overrides(tiny_dirs, tones_dir, tmp_path, 4)), callbacks=[inject]
    )

    snaps = inject.snapshots
    assert sorted(snaps) == [0, 1, 2, 3, 4]  # all 4 steps ran
    assert not same(snaps[0], snaps[1])  # a good step moves the weights ...
    assert same(snaps[1], snaps[2])  # ... the NaN-loss step 1 did not
    assert same(snaps[2], snaps[3])  # ... nor did the inf-gradient step 2
    assert not same(snaps[3], snaps[4])  # training goes on afterwards
    assert all(torch.isfinite(v).all() for v in snaps[4].values())
    assert inject.module.skipped_steps == 2
    losses, skipped = logged(tmp_path, "train/loss"), logged(tmp_path, "train/skipped_steps")
    assert np.isnan(losses[1]) and np.isfinite(losses[2]) and np.isfinite(losses[3])
    assert [skipped[s] for s in range(4)] == [0, 1, 2, 2]


def test_more_non_finite_steps_in_a_row_than_allowed_stop_with_a_clear_error(tiny_dirs, tones_dir, tmp_path):
    inject = InjectNonFinite(nan_loss_steps={1, 2, 3, 4, 5})
    cfg = load_config(
        TINY_RECIPE, exact_run_overrides(tiny_dirs, tones_dir, tmp_path, 6, "trainer.max_bad_steps=1")
    )
    with pytest.raises(NonFiniteTrainingError, match=r"2 optimizer steps in a row.*trainer.max_bad_steps=1"):
        train(cfg, callbacks=[inject])
    # Stopped at the second bad step in a row (step 2); the last checkpoint holds finite weights
    # equal to those after the last good step, ready for --resume last.
    assert max(inject.snapshots) == 2
    checkpoint = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 2
    for name, value in checkpoint["state_dict"].items():
        assert torch.isfinite(value).all(), name
        torch.testing.assert_close(value, inject.snapshots[1][name.removeprefix("model.")], rtol=0, atol=0)


# ----------------------------------------------------------------------------- kill -9, then resume

KILL_RUN_STEPS = 6


def train_command(args: list[str], *extra: str) -> list[str]:
    return [sys.executable, "-m", "speechllm.cli", "train", str(TINY_RECIPE), *args, *extra]


def newest_step_checkpoint(directory: Path) -> int:
    """The highest ``step=N.ckpt`` in a checkpoint directory (-1 if none)."""
    steps = [int(p.stem.split("=")[1]) for p in directory.glob("step=*.ckpt")]
    return max(steps, default=-1)


def test_sigkill_at_a_random_step_then_resume_last_reproduces_the_loss_curve(tiny_dirs, tones_dir, tmp_path):
    kill_after = random.SystemRandom().randint(1, KILL_RUN_STEPS - 3)  # a checkpointed step
    where = f"(killed once step {kill_after} was checkpointed)"
    reference_dir = tmp_path / "reference"
    train(load_config(TINY_RECIPE, exact_run_overrides(tiny_dirs, tones_dir, reference_dir, KILL_RUN_STEPS)))
    reference = logged(reference_dir, "train/loss")
    assert sorted(reference) == list(range(KILL_RUN_STEPS))

    out = tmp_path / "killed"
    args = exact_run_overrides(tiny_dirs, tones_dir, out, KILL_RUN_STEPS)
    process = subprocess.Popen(train_command(args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        last = out / "checkpoints" / "last.ckpt"
        while newest_step_checkpoint(out / "checkpoints") < kill_after or not last.is_file():
            assert process.poll() is None, f"training ended before the kill {where}"
            assert time.monotonic() < deadline, f"no checkpoint of step {kill_after} in time"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    resume_point = load_checkpoint(out / "checkpoints" / "last.ckpt")["global_step"]
    # last.ckpt is written just after step=N.ckpt: the kill may land between the two.
    assert kill_after - 1 <= resume_point < KILL_RUN_STEPS, (where, resume_point)

    done = subprocess.run(
        train_command(args, "--resume", "last"), capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]

    # The resumed process logs every step after the resume point, each equal to the uninterrupted
    # run's; with the killed process's own log, every step is there: nothing lost, nothing repeated
    # with a different value.
    # A kill right after the first checkpoint can land before the killed run's CSV log holds a row
    # (Lightning checkpoints a step before it logs it): its version directory may have no file yet.
    versions = sorted(out.glob("logs/version_*"), key=lambda path: int(path.name.split("_")[1]))
    assert len(versions) == 2, versions
    resumed = logged_file(versions[1] / "metrics.csv", "train/loss")
    assert sorted(resumed) == list(range(resume_point, KILL_RUN_STEPS)), where
    for step, value in resumed.items():
        assert value == reference[step], (where, step, value, reference[step])
    killed_log = versions[0] / "metrics.csv"
    killed = logged_file(killed_log, "train/loss") if killed_log.is_file() else {}
    # The CSV log is flushed at every logged step, but Lightning writes the checkpoint of a step
    # before it logs that step's metrics: the killed log holds every step before the last one the
    # checkpoint covers (that one may have been in flight); the resumed run logs the rest.
    assert set(range(resume_point - 1)) <= set(killed), (where, sorted(killed))
    for step, value in killed.items():
        assert value == reference[step], (where, step, value, reference[step])


# ----------------------------------------------------------------------------- generation edge cases


@pytest.fixture(scope="module")
def tiny_model(tiny_model_overrides):
    from speechllm.model import SpeechLLM

    torch.manual_seed(0)
    return SpeechLLM.from_config(load_config(None, tiny_model_overrides).model).eval()


def two_clips() -> tuple[torch.Tensor, torch.Tensor]:
    """(2, S) audio of two noise clips (1 s and 0.6 s) and their lengths (2,)."""
    generator = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(2, 16_000, generator=generator)
    audio[1, 9_600:] = 0
    return audio, torch.tensor([16_000, 9_600])


def test_generation_stops_after_max_new_tokens(tiny_model):
    audio, lens = two_clips()
    assert tiny_model.generate(audio, lens, max_new_tokens=0) == ["", ""]
    # Greedy decoding of a random LLM rarely stops by itself: the cap ends it. Each longer cap
    # extends the same greedy continuation (never a different one), and the cap bounds the length.
    # The LLM's forward calls are counted: one over the prompt, then one per further new token.
    calls: list[int] = []
    hook = tiny_model.llm.model.register_forward_hook(lambda *args: calls.append(1))
    try:
        outputs = []
        for cap in (2, 4, 8):
            calls.clear()
            outputs.append(tiny_model.generate(audio, lens, max_new_tokens=cap))
            assert 1 <= len(calls) <= cap, (cap, len(calls))
    finally:
        hook.remove()
    for shorter, longer in zip(outputs, outputs[1:]):
        for a, b in zip(shorter, longer):
            assert b.startswith(a.rstrip("\ufffd")), (a, b)  # a cut multi-byte character decodes as U+FFFD
    assert any(outputs[2]) and outputs[2] != outputs[0]


def test_generation_of_an_empty_batch_is_empty_from_audio_and_from_cached_encoder_outputs(tiny_model):
    audio, lens = two_clips()
    assert tiny_model.generate(audio[:0], lens[:0]) == []
    assert tiny_model.generate(encoder_hidden=torch.zeros(0, 5, 8), encoder_lens=torch.zeros(0)) == []
    with pytest.raises(ValueError, match="needs audio and audio_lens"):
        tiny_model.generate()


def test_prompt_and_audio_longer_than_the_llm_context_is_a_clear_error(tiny_model):
    audio, lens = two_clips()
    config = tiny_model.llm.base_model.config
    limit = config.max_position_embeddings
    try:
        config.max_position_embeddings = 40  # a short-context LLM: our 1 s clip + prompt exceed it
        with pytest.raises(ValueError, match=r"> the LLM's context of 40 positions"):
            tiny_model.generate(audio, lens, max_new_tokens=4)
    finally:
        config.max_position_embeddings = limit
    assert len(tiny_model.generate(audio, lens, max_new_tokens=4)) == 2


# ----------------------------------------------------------------------------- incompatible configs


def test_ctc_adapter_with_a_tokenizer_without_pad_or_eos_names_blank_id(
    tiny_dirs, tiny_model_overrides, tmp_path
):
    import shutil

    from speechllm.model import SpeechLLM

    llm_dir = shutil.copytree(tiny_dirs["tiny-random-llama"], tmp_path / "llm-without-pad")
    tokenizer_config = json.loads((llm_dir / "tokenizer_config.json").read_text())
    tokenizer_config.pop("pad_token")
    tokenizer_config.pop("eos_token")
    (llm_dir / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    overrides = [*tiny_model_overrides, f"model.llm.path={llm_dir}"]

    with pytest.raises(ValueError, match=r"neither a pad nor an eos token.*model\.adapter\.blank_id"):
        SpeechLLM.from_config(load_config(None, [*overrides, "model.adapter.name=ctc"]).model)
    # A blank id given in the config is used; adapters without a blank do not need one.
    model = SpeechLLM.from_config(
        load_config(None, [*overrides, "model.adapter.name=ctc", "model.adapter.blank_id=3"]).model
    )
    assert model.adapter.blank_id == 3
    assert SpeechLLM.from_config(load_config(None, overrides).model).adapter is not None


# ----------------------------------------------------------------------------- fuzzing


def write_fuzz_audio(path: Path, kind: str, rng: np.random.Generator) -> None:
    """One audio file of a kind: good ones at several rates/channel counts, or a known corruption."""
    rate = int(rng.choice([8000, 16000, 44100]))
    seconds = float(rng.uniform(0.1, 0.4))
    samples = (0.3 * rng.standard_normal((int(rate * seconds), int(rng.integers(1, 3))))).astype(np.float32)
    if kind == "good":
        sf.write(path, samples, rate, subtype=str(rng.choice(["PCM_16", "FLOAT"])))
    elif kind == "non-finite":
        samples[int(rng.integers(0, samples.shape[0])), 0] = rng.choice([np.nan, np.inf, -np.inf])
        sf.write(path, samples, rate, subtype="FLOAT")
    elif kind == "empty":  # a valid header with zero frames
        sf.write(path, samples[:0], rate, subtype="FLOAT")
    elif kind == "random bytes":
        path.write_bytes(rng.bytes(int(rng.integers(1, 4000))))
    elif kind == "zero bytes":
        path.write_bytes(b"")
    elif kind == "cut header":  # the first bytes of a real file, before its header ends
        sf.write(path, samples, rate, subtype="FLOAT")
        path.write_bytes(path.read_bytes()[: int(rng.integers(1, 40))])
    else:
        raise ValueError(kind)


FUZZ_KINDS = ["good"] * 5 + ["non-finite", "empty", "random bytes", "zero bytes", "cut header"]


def test_fuzzed_audio_through_preparation_and_the_dataloader_keeps_every_good_clip_and_reports_every_bad_one(
    tiny_dirs, tmp_path
):
    from transformers import AutoTokenizer

    from speechllm.data.datamodule import SpeechDataModule
    from speechllm.llms.prompts import PromptBuilder
    from speechllm.prepare.manifest_import import import_table

    rng = np.random.default_rng(11)
    kinds = {f"clip{i:03d}": str(rng.choice(FUZZ_KINDS)) for i in range(240)}
    (tmp_path / "audio").mkdir()
    for name, kind in kinds.items():
        write_fuzz_audio(tmp_path / "audio" / f"{name}.wav", kind, rng)
    table = tmp_path / "data.tsv"
    table.write_text("audio\ttext\tid\n" + "".join(f"audio/{name}.wav\tone two\t{name}\n" for name in kinds))

    # Preparation reads headers only: unreadable and empty files are skipped and listed.
    manifests = import_table(table, tmp_path / "manifests", corpus="fuzz", language="en")
    skipped = (tmp_path / "manifests" / "fuzz_skipped_train.tsv").read_text().splitlines()[1:]
    # Counted as multisets: a file reported twice must fail, not collapse into a set.
    skipped_ids = Counter(Path(line.split("\t")[1]).stem for line in skipped)
    bad_at_preparation = {name for name, kind in kinds.items() if kind not in ("good", "non-finite")}
    assert skipped_ids == Counter(bad_at_preparation)
    assert {c.id for c in manifests["train"]["cuts"]} == set(kinds) - bad_at_preparation

    # The dataloader reads samples: non-finite audio is skipped and reported, every good clip is
    # kept once, resampled to 16 kHz and down-mixed to one channel.
    report = tmp_path / "skipped.tsv"
    cuts_path = tmp_path / "manifests" / "fuzz_cuts_train.jsonl.gz"
    config = load_config(
        None,
        [
            f"data.train=[{{path: {cuts_path}}}]",
            "data.num_workers=0",
            "data.max_duration=3",
            "data.num_buckets=1",
            f"data.skip_report={report}",
        ],
    ).data
    dm = SpeechDataModule(
        config, PromptBuilder(AutoTokenizer.from_pretrained(tiny_dirs["tiny-random-llama"]))
    )
    durations = {c.id: c.duration for c in manifests["train"]["cuts"]}
    kept: list[str] = []
    for batch in dm.train_dataloader():
        if batch is None:  # a batch of only bad clips
            continue
        for i, cut_id in enumerate(batch.cut_ids):
            assert batch.audio.ndim == 2
            assert abs(int(batch.audio_lens[i]) - durations[cut_id] * 16000) <= 1
            assert torch.isfinite(batch.audio[i]).all()
        kept += batch.cut_ids
    assert sorted(kept) == sorted(name for name, kind in kinds.items() if kind == "good")
    reported = Counter(tuple(line.split("\t")[:2]) for line in report.read_text().splitlines()[1:])
    assert reported == Counter(
        (name, "non-finite samples") for name, kind in kinds.items() if kind == "non-finite"
    )


def good_table_lines(tmp_path: Path) -> list[bytes]:
    for name in ("a", "b", "c"):
        sf.write(tmp_path / f"{name}.wav", np.zeros(1600, dtype=np.float32) + 0.1, 16000)
    return [b"audio\ttext\tid", b"a.wav\tone\tu1", b"b.wav\ttwo\tu2", b"c.wav\tthree\tu3"]


LINE_DEFECTS = {
    "no text": lambda line, rng: line.split(b"\t")[0] + b"\t\t" + line.split(b"\t")[2],
    "too few fields": lambda line, rng: line.split(b"\t")[0],
    "not UTF-8": lambda line, rng: line.replace(b"\t", b"\t\xff" + rng.bytes(1) + b"\xfe", 1),
    "duplicate id": lambda line, rng: line.rsplit(b"\t", 1)[0] + b"\tu1",
    "missing audio file": lambda line, rng: b"gone-" + line,
}


@pytest.mark.parametrize("defect", sorted(LINE_DEFECTS))
def test_fuzzed_table_lines_are_errors_naming_the_file_and_line(tmp_path, defect):
    from speechllm.data.manifest_check import ManifestError
    from speechllm.prepare.manifest_import import import_table

    lines = good_table_lines(tmp_path)
    rng = np.random.default_rng(sorted(LINE_DEFECTS).index(defect))
    for trial in range(40):  # 5 defects × 40 = 200 corrupted lines
        number = int(rng.integers(3, 5)) if defect == "duplicate id" else int(rng.integers(2, 5))
        broken = list(lines)
        broken[number - 1] = LINE_DEFECTS[defect](broken[number - 1], rng)
        table = tmp_path / f"t{trial}.tsv"
        table.write_bytes(b"\n".join(broken) + b"\n")
        with pytest.raises(ManifestError, match=rf"t{trial}\.tsv:{number}: "):
            import_table(table, None, language="en", audio_root=tmp_path)


def test_truncated_or_bad_cut_manifests_are_errors_naming_the_file_and_line(tones_dir, tmp_path):
    import gzip

    from speechllm.data.manifest_check import ManifestError, check_cut_manifest

    source = tones_dir / "tones_cuts_train.jsonl.gz"
    data = source.read_bytes()
    lines = gzip.decompress(data).splitlines(keepends=True)
    assert check_cut_manifest(source) == len(lines)
    rng = np.random.default_rng(3)
    for trial in range(20):  # a download or copy cut short anywhere
        truncated = tmp_path / f"cut{trial}.jsonl.gz"
        truncated.write_bytes(data[: int(rng.integers(10, len(data) - 1))])
        with pytest.raises(ManifestError, match=rf"cut{trial}\.jsonl\.gz:\d+: .*truncated or corrupt"):
            check_cut_manifest(truncated)
    cut = json.loads(lines[1])
    defects = {
        "half a line": (lines[1][: len(lines[1]) // 2] + b"\n", "not valid JSON"),
        "missing recording": (
            json.dumps({k: v for k, v in cut.items() if k != "recording"}).encode(),
            "cut without recording",
        ),
        "no supervision": (json.dumps({**cut, "supervisions": []}).encode(), "cut .* has no supervision"),
        "duplicate id": (lines[0], "duplicate cut id .* \\(first at line 1\\)"),
        "not UTF-8": (lines[1].replace(b"en", b"\xff\xfe", 1), "not valid UTF-8"),
    }
    for name, (bad_line, message) in defects.items():
        path = tmp_path / f"{name.replace(' ', '_')}.jsonl.gz"
        path.write_bytes(gzip.compress(b"".join([lines[0], bad_line.rstrip(b"\n") + b"\n", *lines[2:]])))
        with pytest.raises(ManifestError, match=rf"{path.name}:2: {message}"):
            check_cut_manifest(path)
    # The data module checks before training reads a batch.
    from speechllm.data.datamodule import SpeechDataModule

    config = load_config(
        None, [f"data.train=[{{path: {tmp_path / 'cut0.jsonl.gz'}}}]", "data.num_workers=0"]
    ).data
    with pytest.raises(ManifestError, match="cut0.jsonl.gz"):
        SpeechDataModule(config, prompts=None).train_dataloader()


def test_all_silence_is_kept_and_gives_a_finite_loss_and_a_generation(tiny_model, tmp_path):
    from lhotse import Recording

    from speechllm.data.dataset import SpeechDataset

    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(8000, dtype=np.float32), 16000)
    cut = Recording.from_file(path).to_cut()
    cut.supervisions = [
        SupervisionSegment(id=cut.id, recording_id=cut.id, start=0, duration=0.5, text="one", language="en")
    ]
    dataset = SpeechDataset(tiny_model.llm.prompts, train=False)
    batch = dataset[CutSet.from_cuts([cut])]
    assert batch is not None and batch.skipped == [] and not dataset.skipped
    assert batch.audio.shape == (1, 8000) and not batch.audio.any()
    with torch.no_grad():
        assert torch.isfinite(tiny_model(batch).loss)
    assert len(tiny_model.generate(batch.audio, batch.audio_lens, max_new_tokens=3)) == 1


def test_sigterm_saves_the_step_exits_non_zero_with_one_line_and_resume_last_finishes(
    tiny_dirs, tones_dir, tmp_path
):
    """SLURM preemption or `timeout`: a checkpoint of the step reached, exit 2 naming --resume last
    (not 0: `train && evaluate` must not go on without a model), then the run continues."""
    out = tmp_path / "terminated"
    args = exact_run_overrides(tiny_dirs, tones_dir, out, 500)
    process = subprocess.Popen(
        train_command(args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while newest_step_checkpoint(out / "checkpoints") < 1:
            assert process.poll() is None, "training ended before the signal"
            assert time.monotonic() < deadline, "no checkpoint in time"
            time.sleep(0.01)
        reached = newest_step_checkpoint(out / "checkpoints")
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 2, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("speechllm: error: ")]
    assert len(errors) == 1 and "SIGTERM" in errors[0] and "--resume last" in errors[0], stderr[-3000:]
    assert "Traceback" not in stderr
    assert not (out / "model").exists()  # no model pretends the run finished
    saved = load_checkpoint(out / "checkpoints" / "last.ckpt")["global_step"]
    assert reached <= saved < 500
    resumed = subprocess.run(
        train_command([*args, f"trainer.max_steps={saved + 2}"], "--resume", "last"),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (out / "model" / "trainable.safetensors").is_file()
