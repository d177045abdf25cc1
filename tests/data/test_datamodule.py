"""SpeechDataModule: bucketing efficiency, rank sharding, mid-epoch resume, multitask mixing, bad input."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import AudioSource, CutSet, Recording, SupervisionSegment, load_manifest
from lightning.pytorch.callbacks import ModelCheckpoint
from transformers import AutoTokenizer

from speechllm.config import load_config
from speechllm.data.datamodule import SpeechDataModule
from speechllm.llms.prompts import PromptBuilder


@pytest.fixture(scope="module")
def prompts(tiny_dirs) -> PromptBuilder:
    return PromptBuilder(AutoTokenizer.from_pretrained(tiny_dirs["tiny-random-llama"]))


def data_config(*overrides: str):
    return load_config(None, list(overrides)).data


def dummy_manifest(path: Path, durations: np.ndarray, prefix: str = "c", **custom) -> Path:
    """Cuts over a file that does not exist: enough for samplers, which never read audio."""
    cuts = []
    for i, seconds in enumerate(durations):
        samples = int(seconds * 16000)
        recording = Recording(
            id=f"{prefix}{i}",
            sources=[AudioSource(type="file", channels=[0], source="/nonexistent.wav")],
            sampling_rate=16000,
            num_samples=samples,
            duration=samples / 16000,
        )
        cut = recording.to_cut()
        cut.supervisions = [
            SupervisionSegment(
                id=recording.id,
                recording_id=recording.id,
                start=0.0,
                duration=recording.duration,
                text="one",
                language="en",
                custom=custom or None,
            )
        ]
        cuts.append(cut)
    CutSet.from_cuts(cuts).to_file(path)
    return path


def covost_like(path: Path, count: int = 3000) -> Path:
    """CoVoST-like clip durations: log-normal around 5 s, clipped to the paper's 1-15 s."""
    rng = np.random.default_rng(0)
    return dummy_manifest(path, np.clip(rng.lognormal(np.log(5.0), 0.45, count), 1.0, 15.0))


def sampled_batches(dm: SpeechDataModule, train: bool = True) -> list[list]:
    manifests = dm.config.train if train else dm.config.val
    rank, world_size = dm.rank_and_world_size()
    sampler = dm._sampler(dm.cuts(manifests, train=train), train, world_size=world_size, rank=rank)
    return [list(batch) for batch in sampler]


def test_bucketing_gives_at_least_90_percent_real_frames(tmp_path):
    manifest = covost_like(tmp_path / "cuts.jsonl.gz")
    dm = SpeechDataModule(data_config(f"data.train=[{{path: {manifest}}}]"), prompts=None)
    batches = sampled_batches(dm)
    real = sum(c.duration for b in batches for c in b)
    padded = sum(len(b) * max(c.duration for c in b) for b in batches)
    assert sum(len(b) for b in batches) == 3000
    assert real / padded >= 0.9, f"only {real / padded:.1%} real frames"
    assert max(sum(c.duration for c in b) for b in batches) <= dm.config.max_duration


def test_two_ranks_see_disjoint_cuts_that_cover_the_set(tmp_path):
    manifest = covost_like(tmp_path / "cuts.jsonl.gz", count=1001)
    config = data_config(f"data.train=[{{path: {manifest}}}]", "data.max_duration=60")
    seen = []
    for rank in (0, 1):
        dm = SpeechDataModule(config, prompts=None, rank=rank, world_size=2)
        seen.append([c.id for b in sampled_batches(dm) for c in b])
    assert len(seen[0]) == len(set(seen[0])) and len(seen[1]) == len(set(seen[1]))
    assert not set(seen[0]) & set(seen[1])
    assert set(seen[0]) | set(seen[1]) == {f"c{i}" for i in range(1001)}
    assert abs(len(seen[0]) - len(seen[1])) < 100  # both ranks do a similar amount of work


def take_ids(dm: SpeechDataModule, limit: int | None = None) -> list[list[str]]:
    """Cut ids of the train loader's batches, reporting each batch to the data module as Lightning does."""
    out = []
    for batch in dm.train_dataloader():
        dm.on_before_batch_transfer(batch, 0)
        out.append(batch.cut_ids)
        if limit is not None and len(out) == limit:
            break
    return out


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_mid_epoch_continues_with_the_remaining_cuts(tones_dir, prompts, num_workers):
    config = data_config(
        f"data.train=[{{path: {tones_dir / 'tones_cuts_train.jsonl.gz'}}}]",
        "data.max_duration=5",
        "data.num_buckets=3",
        f"data.num_workers={num_workers}",
    )
    full = take_ids(SpeechDataModule(config, prompts, seed=3))
    assert len(full) >= 6
    first = SpeechDataModule(config, prompts, seed=3)
    head = take_ids(first, limit=3)  # workers have prefetched more batches than these
    assert head == full[:3]
    state = first.state_dict()

    resumed = SpeechDataModule(config, prompts, seed=3)
    resumed.load_state_dict(state)
    assert take_ids(resumed) == full[3:]


def test_resume_with_another_world_size_is_refused(tones_dir, prompts):
    config = data_config(
        f"data.train=[{{path: {tones_dir / 'tones_cuts_train.jsonl.gz'}}}]", "data.num_workers=0"
    )
    first = SpeechDataModule(config, prompts)
    take_ids(first, limit=1)
    resumed = SpeechDataModule(config, prompts, rank=0, world_size=2)
    resumed.load_state_dict(first.state_dict())
    with pytest.raises(ValueError, match="world size 1"):
        resumed.train_dataloader()


class CutRecorder(L.LightningModule):
    """A one-parameter module that records the cut ids of its training batches."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[list[str]] = []

    def training_step(self, batch, batch_idx):
        self.seen.append(list(batch.cut_ids))
        return (self.weight * batch.audio_lens.float().mean()).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def fit(
    dm: SpeechDataModule, root: Path, ckpt_path: str | None = None, every: int | None = None
) -> CutRecorder:
    module = CutRecorder()
    callbacks = [ModelCheckpoint(dirpath=root, every_n_train_steps=every, save_top_k=-1)] if every else []
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=bool(every),
        callbacks=callbacks,
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    return module


def test_lightning_resume_mid_epoch_sees_each_cut_once(tones_dir, prompts, tmp_path):
    """Through Lightning itself: its checkpoint holds our state and restores it before loading data."""
    config = data_config(
        f"data.train=[{{path: {tones_dir / 'tones_cuts_train.jsonl.gz'}}}]",
        "data.max_duration=5",
        "data.num_buckets=3",
        "data.num_workers=0",
    )
    full = fit(SpeechDataModule(config, prompts, seed=1), tmp_path / "a").seen
    epoch_len = len(full) // 2
    assert epoch_len >= 5 and full[:epoch_len] != full[epoch_len:]  # reshuffled per epoch

    fit(SpeechDataModule(config, prompts, seed=1), tmp_path / "b", every=3)
    checkpoint = tmp_path / "b" / "epoch=0-step=3.ckpt"
    assert checkpoint.exists(), sorted(p.name for p in (tmp_path / "b").iterdir())
    rest = fit(SpeechDataModule(config, prompts, seed=1), tmp_path / "c", ckpt_path=str(checkpoint)).seen
    assert rest == full[3:]
    first_epoch = [cut for batch in full[:3] + rest[: epoch_len - 3] for cut in batch]
    assert sorted(first_epoch) == sorted(c.id for c in load_manifest(config.train[0].path))


def test_multitask_mix_follows_the_weights(tmp_path):
    asr = dummy_manifest(tmp_path / "asr.jsonl.gz", np.full(2000, 3.0), prefix="asr")
    st = dummy_manifest(
        tmp_path / "st.jsonl.gz", np.full(2000, 3.0), prefix="st", translation="x", tgt_lang="de"
    )
    config = data_config(f"data.train=[{{path: {asr}, weight: 3}}, {{path: {st}, task: st, weight: 1}}]")
    cuts = SpeechDataModule(config, prompts=None).cuts(config.train)
    head = [c.custom["task"] for _, c in zip(range(1000), cuts)]
    assert head.count("st") / len(head) == pytest.approx(0.25, abs=0.05)
    assert all(c.id.startswith(c.custom["task"]) for _, c in zip(range(1000), cuts))


def test_multitask_batches_carry_both_tasks_with_st_prompts_and_translations(tones_dir, prompts):
    manifest = tones_dir / "tones_cuts_train.jsonl.gz"
    config = data_config(
        f"data.train=[{{path: {manifest}, task: asr}}, {{path: {manifest}, task: st}}]",
        "data.num_workers=0",
        "data.max_duration=8",
    )
    translations = {c.id: c.supervisions[0].custom["translation"] for c in load_manifest(manifest)}
    tasks = []
    for batch in SpeechDataModule(config, prompts).train_dataloader():
        for i, task in enumerate(batch.task):
            tasks.append(task)
            cut_id, prefix = batch.cut_ids[i], prompts.tokenizer.decode(batch.prefix_ids[i])
            if task == "st":
                assert batch.reference[i] == translations[cut_id] and "German" in prefix
            else:
                assert batch.reference[i] == batch.source_text[i] and "German" not in prefix
    assert tasks.count("asr") == tasks.count("st") == len(translations)


def write_wav(path: Path, seconds: float) -> Recording:
    t = np.arange(int(seconds * 16000)) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), 16000)
    return Recording.from_file(path)


def test_bad_and_too_long_cuts_are_skipped_and_reported_with_workers(tmp_path, prompts):
    cuts = []
    for i in range(6):
        cuts.append(write_wav(tmp_path / f"good{i}.wav", 0.5).to_cut())
    cuts.append(write_wav(tmp_path / "long.wav", 3.0).to_cut())
    nan_path = tmp_path / "nan.wav"
    sf.write(nan_path, np.full(8000, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    cuts.append(Recording.from_file(nan_path).to_cut())
    broken = Recording.from_file(tmp_path / "good0.wav", recording_id="broken")
    broken.sources[0].source = str(tmp_path / "deleted-after-preparation.wav")
    cuts.append(broken.to_cut())
    for cut in cuts:
        cut.supervisions = [
            SupervisionSegment(
                id=cut.id,
                recording_id=cut.recording_id,
                start=0,
                duration=cut.duration,
                text="one",
                language="en",
            )
        ]
    manifest = tmp_path / "cuts.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(manifest)
    report = tmp_path / "report" / "skipped.tsv"
    config = data_config(
        f"data.train=[{{path: {manifest}}}]",
        "data.num_workers=2",
        "data.max_duration=1.1",
        "data.max_cut_duration=2.0",
        "data.num_buckets=1",
        f"data.skip_report={report}",
    )
    dm = SpeechDataModule(config, prompts)
    ids = [cut_id for batch in take_ids(dm) for cut_id in batch]
    assert sorted(ids) == sorted(f"good{i}" for i in range(6))
    rows = [line.split("\t") for line in report.read_text().splitlines()[1:]]
    reasons = {cut_id: reason for cut_id, reason in rows}
    assert len(rows) == 3 and set(reasons) == {"long", "nan", "broken"}
    assert "longer than data.max_cut_duration" in reasons["long"]
    assert reasons["nan"] == "non-finite samples" and reasons["broken"].startswith("unreadable audio")
    assert sum(dm.skipped.values()) == 3  # two from worker batches, one from the duration filter


def test_eval_only_cuts_are_refused_for_training(tmp_path, prompts):
    manifest = dummy_manifest(tmp_path / "real.jsonl.gz", np.full(3, 2.0), prefix="real", split="eval_only")
    with pytest.raises(ValueError, match="evaluation-only"):
        SpeechDataModule(data_config(f"data.train=[{{path: {manifest}}}]"), prompts).train_dataloader()
    val = data_config(f"data.train=[{{path: {manifest}}}]", f"data.val=[{{path: {manifest}}}]")
    assert len(sampled_batches(SpeechDataModule(val, prompts), train=False)) >= 1
