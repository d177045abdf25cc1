"""SpeechDataset: resampling and down-mixing, bad audio skipped and reported, ST prompts and targets;
the typed Batch that collate builds (read by attribute, moved to a device by Lightning)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import AudioSource, CutSet, MonoCut, Recording, SupervisionSegment
from lightning.fabric.utilities.apply_func import move_data_to_device
from transformers import AutoTokenizer

from speechllm.audio import SAMPLE_RATE, load_mono_16k
from speechllm.data.batch import Batch
from speechllm.data.dataset import SKIP_REPORT_HEADER, SpeechDataset, collate
from speechllm.llms.prompts import PromptBuilder


@pytest.fixture(scope="module")
def prompts(tiny_dirs) -> PromptBuilder:
    return PromptBuilder(AutoTokenizer.from_pretrained(tiny_dirs["tiny-random-llama"]))


def sine(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def cut_of(path: Path, rec_id: str, rate: int, samples: int, **custom) -> MonoCut:
    """A cut over ``path`` described by hand (bad files cannot be probed by Recording.from_file)."""
    recording = Recording(
        id=rec_id,
        sources=[AudioSource(type="file", channels=[0], source=str(path))],
        sampling_rate=rate,
        num_samples=samples,
        duration=samples / rate,
    )
    cut = recording.to_cut()
    cut.supervisions = [
        SupervisionSegment(
            id=rec_id,
            recording_id=rec_id,
            start=0.0,
            duration=recording.duration,
            channel=0,
            text="one two",
            language="en",
            custom=custom or None,
        )
    ]
    return cut


def dominant_hz(audio: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio))
    return float(np.fft.rfftfreq(audio.shape[0], 1 / rate)[spectrum.argmax()])


def test_8khz_stereo_is_resampled_and_down_mixed(tmp_path):
    left, right = sine(440, 1.0, 8000, 0.6), np.zeros(8000, dtype=np.float32)
    path = tmp_path / "stereo8k.wav"
    sf.write(path, np.stack([left, right], axis=1), 8000, subtype="FLOAT")
    cut = Recording.from_file(path).to_cut()
    audio, problem = load_mono_16k(cut)
    assert problem == "" and audio is not None
    assert audio.shape == (SAMPLE_RATE,)  # 1 s at 16 kHz, one channel
    assert dominant_hz(audio.numpy(), SAMPLE_RATE) == pytest.approx(440, abs=2)
    # The mean of a 0.6 sine and silence: a 0.3 sine (resampling keeps a 440 Hz tone's level).
    middle = audio.numpy()[2000:-2000]
    assert np.abs(middle).max() == pytest.approx(0.3, abs=0.02)


def test_44k1_mono_is_resampled(tmp_path):
    path = tmp_path / "cd.wav"
    sf.write(path, sine(1000, 0.5, 44100), 44100, subtype="FLOAT")
    audio, problem = load_mono_16k(Recording.from_file(path).to_cut())
    assert problem == "" and audio is not None
    assert audio.shape == (8000,)
    assert dominant_hz(audio.numpy(), SAMPLE_RATE) == pytest.approx(1000, abs=4)


def bad_cuts(root: Path) -> dict[str, MonoCut]:
    """One cut of each kind of bad audio, keyed by the reason we expect."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "garbage.wav").write_bytes(b"RIFF this is not audio at all" * 10)
    (root / "empty.wav").write_bytes(b"")
    sf.write(root / "zero.wav", np.zeros(0, dtype=np.float32), SAMPLE_RATE, subtype="FLOAT")
    nan = sine(300, 0.5, SAMPLE_RATE)
    nan[100:200] = np.nan
    sf.write(root / "nan.wav", nan, SAMPLE_RATE, subtype="FLOAT")
    return {
        "unreadable audio": cut_of(root / "garbage.wav", "garbage", SAMPLE_RATE, 8000),
        "unreadable audio (empty file)": cut_of(root / "empty.wav", "empty", SAMPLE_RATE, 8000),
        "empty audio": cut_of(root / "zero.wav", "zero", SAMPLE_RATE, 0),
        "non-finite samples": cut_of(root / "nan.wav", "nan", SAMPLE_RATE, 8000),
        "missing file": cut_of(root / "does-not-exist.wav", "missing", SAMPLE_RATE, 8000),
    }


def test_bad_audio_is_skipped_counted_and_reported(tmp_path, prompts):
    good_path = tmp_path / "good.wav"
    sf.write(good_path, sine(300, 0.5, SAMPLE_RATE), SAMPLE_RATE)
    good = cut_of(good_path, "good", SAMPLE_RATE, 8000)
    bad = bad_cuts(tmp_path / "bad")
    report = tmp_path / "skipped.tsv"
    dataset = SpeechDataset(prompts, skip_report=report)
    dataset.report.start()

    batch = dataset[CutSet.from_cuts([good, *bad.values()])]

    assert batch is not None and batch.cut_ids == ["good"]
    assert batch.audio.shape == (1, 8000)
    skipped = dict(batch.skipped)
    assert set(skipped) == {c.id for c in bad.values()}
    assert skipped["zero"] == "empty audio"
    assert skipped["nan"] == "non-finite samples"
    for cut_id in ("garbage", "empty", "missing"):
        assert skipped[cut_id].startswith("unreadable audio")
    assert sum(dataset.skipped.values()) == len(bad)
    lines = report.read_text().splitlines()
    assert lines[0] + "\n" == SKIP_REPORT_HEADER
    assert sorted(line.split("\t")[0] for line in lines[1:]) == sorted(c.id for c in bad.values())


def test_a_batch_of_only_bad_cuts_is_none(tmp_path, prompts):
    dataset = SpeechDataset(prompts)
    assert dataset[CutSet.from_cuts(bad_cuts(tmp_path).values())] is None
    assert sum(dataset.skipped.values()) == 5


def test_st_cut_gets_target_language_instruction_and_translation_target(tmp_path, prompts):
    path = tmp_path / "a.wav"
    sf.write(path, sine(300, 0.5, SAMPLE_RATE), SAMPLE_RATE)
    cut = cut_of(path, "st1", SAMPLE_RATE, 8000, translation="eins zwei", tgt_lang="de", task="st")
    batch = SpeechDataset(prompts, train=False)[CutSet.from_cuts([cut])]
    tokenizer = prompts.tokenizer
    prefix = tokenizer.decode(batch.prefix_ids[0, : batch.prefix_lens[0]])
    assert "German" in prefix and "English" in prefix
    target = batch.target_ids[0, : batch.target_lens[0]].tolist()
    assert target == prompts.text_ids("eins zwei") + [prompts.stop_ids[0]]
    assert batch.task == ["st"] and batch.tgt_lang == ["de"] and batch.reference == ["eins zwei"]
    # The transcript (for CTC/CIF) stays the source text.
    assert batch.transcript_ids[0, : batch.transcript_lens[0]].tolist() == prompts.text_ids("one two")


def test_a_cut_without_translation_or_with_an_unknown_language_is_skipped_and_counted(tmp_path, prompts):
    """One bad cut never kills a run: it is skipped, named in the skip report, and the rest trains."""
    path = tmp_path / "a.wav"
    sf.write(path, sine(300, 0.5, SAMPLE_RATE), SAMPLE_RATE)
    missing = cut_of(path, "st-missing", SAMPLE_RATE, 8000, task="st")
    portuguese = cut_of(path, "pt-cut", SAMPLE_RATE, 8000)
    portuguese.supervisions[0].language = "pt"
    good = cut_of(path, "good", SAMPLE_RATE, 8000)
    report = tmp_path / "skipped.tsv"
    dataset = SpeechDataset(prompts, skip_report=report)
    dataset.report.start()
    batch = dataset[CutSet.from_cuts([missing, portuguese, good])]
    assert batch.cut_ids == ["good"]
    assert dataset.skipped == {"no translation": 1, "unknown language": 1}
    lines = report.read_text().splitlines()[1:]
    assert [line.split("\t")[0] for line in lines] == ["st-missing", "pt-cut"]
    assert "'pt'; supported: de, en, es, fr, it" in lines[1]
    assert SpeechDataset(prompts)[CutSet.from_cuts([missing])] is None  # nothing usable: no batch


def example(cut_id: str, samples: int, hidden_frames: int | None = None) -> dict:
    """One example as ``SpeechDataset._example`` gives it, from audio or from cached encoder frames."""
    signal = (
        {"encoder_hidden": torch.ones(hidden_frames, 3), "num_samples": samples}
        if hidden_frames is not None
        else {"audio": torch.ones(samples)}
    )
    return {
        "cut_id": cut_id,
        **signal,
        "prefix": [1, 2],
        "suffix": [3],
        "target": [4, 5, 6],
        "transcript": [4, 5],
        "task": "asr",
        "src_lang": "en",
        "tgt_lang": None,
        "reference": f"ref {cut_id}",
        "source_text": f"src {cut_id}",
    }


def test_collate_gives_a_typed_batch_read_by_attribute_only():
    batch = collate([example("a", 5), example("b", 3)])
    assert isinstance(batch, Batch)
    assert batch.audio.shape == (2, 5) and batch.audio_lens.tolist() == [5, 3]
    assert batch.audio[1, 3:].tolist() == [0.0, 0.0]
    assert batch.target_ids.tolist() == [[4, 5, 6], [4, 5, 6]] and batch.prefix_lens.tolist() == [2, 2]
    assert batch.cut_ids == ["a", "b"] and batch.tgt_lang == [None, None] and batch.skipped == []
    assert batch.encoder_hidden is None and batch.encoder_lens is None
    # One way to read it: the former dict layer is gone.
    with pytest.raises(TypeError):
        batch["audio"]  # type: ignore[index]
    assert not hasattr(batch, "get") and not hasattr(batch, "keys")
    moved = batch.to("cpu")
    assert moved.audio is not None and moved.cut_ids is batch.cut_ids


def test_collate_of_cached_encoder_frames_has_no_audio():
    batch = collate([example("a", 16000, hidden_frames=4), example("b", 8000, hidden_frames=2)])
    assert batch.audio is None
    assert batch.encoder_hidden.shape == (2, 4, 3) and batch.encoder_lens.tolist() == [4, 2]
    assert batch.encoder_hidden[1, 2:].abs().sum() == 0
    assert batch.audio_lens.tolist() == [16000, 8000]


def test_lightning_moves_every_tensor_of_a_batch_and_keeps_the_lists():
    batch = collate([example("a", 5), example("b", 3)])
    batch.skipped = [("c", "empty audio")]
    for moved in (
        move_data_to_device(batch, torch.device("meta")),
        L.LightningModule().transfer_batch_to_device(batch, torch.device("meta"), 0),
    ):
        assert isinstance(moved, Batch)
        values = {f.name: getattr(moved, f.name) for f in dataclasses.fields(moved)}
        tensors = {k: v for k, v in values.items() if isinstance(v, torch.Tensor)}
        assert len(tensors) == 10 and all(v.device.type == "meta" for v in tensors.values())
        assert moved.cut_ids == ["a", "b"] and moved.skipped == [("c", "empty audio")]
    assert batch.audio.device.type == "cpu"  # a copy: the original stays where it was


def test_a_runaway_transcript_is_skipped_and_counted_not_tokenized_into_memory(tmp_path, prompts):
    path = tmp_path / "a.wav"
    sf.write(path, sine(300, 0.5, SAMPLE_RATE), SAMPLE_RATE)
    huge = cut_of(path, "huge", SAMPLE_RATE, 8000)
    huge.supervisions[0].text = "word " * 20_000  # 100 000 characters
    long = cut_of(path, "long", SAMPLE_RATE, 8000)
    long.supervisions[0].text = "one two three " * 20
    good = cut_of(path, "good", SAMPLE_RATE, 8000)
    bound = len(prompts.text_ids(long.supervisions[0].text)) - 1
    dataset = SpeechDataset(prompts, max_text_tokens=bound)
    batch = dataset[CutSet.from_cuts([huge, long, good])]
    assert batch.cut_ids == ["good"]
    assert dataset.skipped == {"text too long": 2}
    unbounded = SpeechDataset(prompts)[CutSet.from_cuts([long])]  # evaluation: no bound
    assert unbounded.cut_ids == ["long"]


def test_an_evaluation_only_language_is_read_in_evaluation_and_never_trained_on(tmp_path, prompts):
    """Dutch real speech (the fillets set): evaluation reads it with a Dutch instruction, training
    skips it with its own reason; a code known to neither stays unknown in both."""
    path = tmp_path / "a.wav"
    sf.write(path, sine(300, 0.5, SAMPLE_RATE), SAMPLE_RATE)
    dutch = cut_of(path, "nl-cut", SAMPLE_RATE, 8000, translation="one two", tgt_lang="en", task="st")
    dutch.supervisions[0].language = "nl"
    batch = SpeechDataset(prompts, task="st", train=False)[CutSet.from_cuts([dutch])]
    assert batch.src_lang == ["nl"] and "Dutch" in prompts.tokenizer.decode(batch.prefix_ids[0])
    training = SpeechDataset(prompts, task="st")
    assert training[CutSet.from_cuts([dutch])] is None
    assert training.skipped == {"evaluation-only language": 1}
    dutch.supervisions[0].language = "pt"
    evaluation = SpeechDataset(prompts, task="st", train=False)
    assert evaluation[CutSet.from_cuts([dutch])] is None
    assert evaluation.skipped == {"unknown language": 1}
