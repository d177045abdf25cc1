"""Audio augmentation (data.augment): seeded and reproducible, each transform does what it says,
only training data is augmented, and a bad option is an error naming its key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import MonoCut, Recording, SupervisionSegment
from transformers import AutoTokenizer

from speechllm.audio import SAMPLE_RATE, load_mono_16k
from speechllm.config import ConfigError, load_config
from speechllm.data.augment import AudioAugmenter, coloured_noise
from speechllm.data.datamodule import SpeechDataModule
from speechllm.llms.prompts import PromptBuilder


def write_cut(path: Path, samples: np.ndarray, rate: int = SAMPLE_RATE, cut_id: str = "clip") -> MonoCut:
    sf.write(path, samples, rate, subtype="FLOAT")
    cut = Recording.from_file(path, recording_id=cut_id).to_cut()
    cut.id = cut_id
    cut.supervisions = [
        SupervisionSegment(
            id=cut_id, recording_id=cut_id, start=0.0, duration=cut.duration, text="one", language="en"
        )
    ]
    return cut


def speechlike(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """Harmonics of 200 Hz under a 4 Hz syllable envelope: a steady, repeatable test signal."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    voice = sum(np.sin(2 * np.pi * 200 * k * t) / k for k in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    return (0.2 * voice * envelope).astype(np.float32)


def audio(cut) -> np.ndarray:
    samples, problem = load_mono_16k(cut)
    assert samples is not None, problem
    return samples.numpy()


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def dominant_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)[np.argmax(spectrum)])


@pytest.fixture()
def clip(tmp_path) -> MonoCut:
    return write_cut(tmp_path / "clip.wav", speechlike())


ALL = {"speed": [0.9, 1.1], "volume_db": [-6, 6], "noise_snr_db": [5, 20], "reverb": 0.5}


def test_same_seed_cut_and_view_give_the_same_audio_and_others_differ(clip):
    pytest.importorskip("pyroomacoustics")
    first = audio(AudioAugmenter(ALL, seed=3)(clip, view=1))
    again = audio(AudioAugmenter(ALL, seed=3)(clip, view=1))  # a new augmenter: nothing carried over
    assert np.array_equal(first, again)
    other_view = audio(AudioAugmenter(ALL, seed=3)(clip, view=2))
    other_seed = audio(AudioAugmenter(ALL, seed=4)(clip, view=1))
    for other in (other_view, other_seed):
        assert first.shape != other.shape or not np.allclose(first, other)
    # The options' own seed wins over the run's.
    assert np.array_equal(first, audio(AudioAugmenter({**ALL, "seed": 3}, seed=99)(clip, view=1)))


def test_each_draw_is_independent_of_the_other_transforms(clip):
    speed_only = AudioAugmenter({"speed": [0.8, 1.2]}, seed=0)
    with_noise = AudioAugmenter({"speed": [0.8, 1.2], "noise_snr_db": [0, 30]}, seed=0)
    draws = [(speed_only.draw(f"c{i}", 0).speed, with_noise.draw(f"c{i}", 0).speed) for i in range(20)]
    assert all(a == b for a, b in draws)
    assert len({a for a, _ in draws}) > 5 and all(0.8 <= a <= 1.2 and round(a, 2) == a for a, _ in draws)


def test_speed_11_shortens_by_1_over_11_and_raises_the_pitch(tmp_path):
    tone = write_cut(tmp_path / "tone.wav", 0.3 * np.sin(2 * np.pi * 440 * np.arange(32000) / SAMPLE_RATE))
    fast = AudioAugmenter({"speed": [1.1, 1.1]})(tone)
    out = audio(fast)
    assert abs(len(out) - 32000 / 1.1) <= 2
    assert fast.duration == pytest.approx(32000 / 1.1 / SAMPLE_RATE, abs=1e-3)
    assert fast.supervisions[0].duration == pytest.approx(fast.duration, abs=1e-3)
    assert dominant_hz(out) == pytest.approx(484, abs=3)
    slow = audio(AudioAugmenter({"speed": [0.9, 0.9]})(tone))
    assert abs(len(slow) - 32000 / 0.9) <= 2


def test_volume_scales_the_rms_by_its_gain(clip):
    clean = audio(clip)
    for db in (-6.0, 6.0):
        louder = audio(AudioAugmenter({"volume_db": [db, db]})(clip))
        assert rms(louder) / rms(clean) == pytest.approx(10 ** (db / 20), rel=1e-3)
        assert np.allclose(louder, clean * 10 ** (db / 20), atol=1e-5)  # a gain, nothing else


@pytest.mark.parametrize("colour", ["white", "pink", "brown"])
def test_noise_is_added_at_the_asked_snr(clip, colour):
    clean = audio(clip)
    for snr in (0.0, 10.0, 20.0):
        noisy = audio(AudioAugmenter({"noise_snr_db": [snr, snr], "noise_colors": [colour]})(clip))
        assert noisy.shape == clean.shape
        measured = 20 * np.log10(rms(clean) / rms(noisy - clean))
        assert measured == pytest.approx(snr, abs=0.1)


@pytest.mark.parametrize(("exponent", "slope"), [(0.0, 0.0), (1.0, -1.0), (2.0, -2.0)])
def test_noise_colour_sets_the_spectral_slope(exponent, slope):
    noise = coloured_noise(SAMPLE_RATE * 8, exponent, np.random.default_rng(0))
    assert rms(noise) == pytest.approx(1.0, rel=1e-4)
    freqs = np.fft.rfftfreq(len(noise), 1 / SAMPLE_RATE)
    power = np.abs(np.fft.rfft(noise)) ** 2
    bands = [(lo, lo * 2) for lo in (62.5, 125, 250, 500, 1000, 2000, 4000)]
    level = [np.log10(power[(freqs >= lo) & (freqs < hi)].mean()) for lo, hi in bands]
    fitted = np.polyfit(np.log10([lo for lo, _ in bands]), level, 1)[0]  # log power per log frequency
    assert fitted == pytest.approx(slope, abs=0.15)


def test_reverb_keeps_length_rate_and_mono_and_rings_after_a_click(tmp_path):
    pytest.importorskip("pyroomacoustics")
    click = np.zeros(SAMPLE_RATE, dtype=np.float32)
    click[1000:1010] = 0.8
    cut = write_cut(tmp_path / "click.wav", click)
    wet_cut = AudioAugmenter({"reverb": 1.0})(cut)
    wet = wet_cut.load_audio()
    assert wet.shape == (1, SAMPLE_RATE) and wet_cut.sampling_rate == SAMPLE_RATE
    wet = wet[0]
    assert rms(wet) == pytest.approx(rms(click), rel=1e-3)  # lhotse normalises the energy back
    tail = slice(1010 + SAMPLE_RATE // 20, 1010 + SAMPLE_RATE // 5)  # 50-200 ms after the click
    assert rms(click[tail]) == 0 and rms(wet[tail]) > 0.01 * rms(wet)  # the room's late reflections


def test_augmentation_resamples_first_so_8khz_clips_are_augmented_at_16khz(tmp_path):
    cut = write_cut(tmp_path / "phone.wav", speechlike()[::2], rate=8000)
    out = audio(AudioAugmenter({"speed": [1.25, 1.25], "volume_db": [3, 3]})(cut))
    assert abs(len(out) - 2 * SAMPLE_RATE / 1.25) <= 2


def band_power(x: np.ndarray, low: float, high: float) -> float:
    freqs = np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)
    return float((np.abs(np.fft.rfft(x)) ** 2)[(freqs >= low) & (freqs < high)].sum())


def test_narrowband_removes_everything_above_4khz_and_keeps_the_speech_band(tmp_path):
    noise = coloured_noise(SAMPLE_RATE * 2, 0.0, np.random.default_rng(0)) * 0.1
    cut = write_cut(tmp_path / "wide.wav", noise.astype(np.float32))
    phone = AudioAugmenter({"narrowband": 1.0})(cut)
    out = audio(phone)
    assert phone.id == cut.id and phone.sampling_rate == SAMPLE_RATE and len(out) == len(noise)
    assert band_power(out, 4200, 8000) < 1e-3 * band_power(noise, 4200, 8000)  # the phone line's band ends
    assert band_power(out, 300, 3400) == pytest.approx(band_power(noise, 300, 3400), rel=0.05)
    # off by default, and drawn per cut and view with its probability
    assert np.array_equal(audio(AudioAugmenter({})(cut)), audio(cut))
    half = AudioAugmenter({"narrowband": 0.5}, seed=0)
    share = np.mean([half.draw(f"c{i}", 0).narrowband for i in range(400)])
    assert 0.4 < share < 0.6


def test_narrowband_leaves_the_other_draws_and_older_identities_unchanged():
    options = {"speed": [0.9, 1.1], "noise_snr_db": [5, 20]}
    before, after = AudioAugmenter(options, seed=1), AudioAugmenter({**options, "narrowband": 0.5}, seed=1)
    for index in range(20):
        old, new = before.draw(f"c{index}", 1), after.draw(f"c{index}", 1)
        assert (old.speed, old.noise_snr_db, old.noise_color) == (
            new.speed,
            new.noise_snr_db,
            new.noise_color,
        )
    # views cached before the option existed keep their identity; turning it on makes a new one
    assert AudioAugmenter({**options, "narrowband": 0.0}, seed=1).identity() == before.identity()
    assert after.identity() != before.identity()


# -- in the data module: training cuts only, one draw per epoch ---------------------------------------
@pytest.fixture(scope="module")
def prompts(tiny_dirs) -> PromptBuilder:
    return PromptBuilder(AutoTokenizer.from_pretrained(tiny_dirs["tiny-random-llama"]))


def data_config(tones_dir: Path, *extra: str):
    return load_config(
        None,
        [
            f"data.train=[{{path: {tones_dir / 'tones_cuts_train.jsonl.gz'}}}]",
            f"data.val=[{{path: {tones_dir / 'tones_cuts_train.jsonl.gz'}}}]",  # the same cuts
            "data.num_workers=0",
            "data.shuffle=false",
            "data.num_buckets=1",
            "data.max_cuts=4",
            *extra,
        ],
    ).data


def test_training_batches_are_augmented_and_evaluation_batches_are_not(tones_dir, prompts):
    plain = SpeechDataModule(data_config(tones_dir), prompts)
    augmented = SpeechDataModule(data_config(tones_dir, "data.augment.volume_db=[6,6]"), prompts)
    clean = next(iter(plain.train_dataloader()))
    train = next(iter(augmented.train_dataloader()))
    dev = next(iter(augmented.val_dataloader()))
    assert train.cut_ids == clean.cut_ids == dev.cut_ids
    assert torch.allclose(train.audio, clean.audio * 10 ** (6 / 20), atol=1e-5)
    assert torch.equal(dev.audio, clean.audio)


def test_each_epoch_draws_a_new_variant_of_a_cut(tones_dir, prompts):
    dm = SpeechDataModule(data_config(tones_dir, "data.augment.noise_snr_db=[10,10]"), prompts)
    loader = dm.train_dataloader()
    first = next(iter(loader))
    again = next(iter(loader))
    loader.sampler.set_epoch(1)
    second = next(iter(loader))
    assert first.cut_ids == second.cut_ids
    assert torch.equal(first.audio, again.audio)  # same epoch, same audio
    assert not torch.allclose(first.audio, second.audio)


# -- config ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.augment.sped=[0.9,1.1]", "unknown config key 'data.augment.sped'"),
        ("data.augment.speed=[1.1,0.9]", "data.augment.speed: must be [low, high] with low <= high"),
        ("data.augment.speed=[0,1.1]", "data.augment.speed: must be > 0"),
        ("data.augment.noise_snr_db=[5]", "data.augment.noise_snr_db: must be [low, high]"),
        ("data.augment.noise_colors=[red]", "data.augment.noise_colors"),
        ("data.augment.reverb=1.5", "data.augment.reverb=1.5: must be a probability"),
        ("data.augment.prob=-0.1", "data.augment.prob=-0.1: must be a probability"),
        ("data.augment.narrowband=2", "data.augment.narrowband=2.0: must be a probability"),
        ("data.spec_augment.time_masks=2", "data.spec_augment: masks cached encoder outputs"),
        ("data.spec_augment.widht=2", "unknown config key 'data.spec_augment.widht'"),
    ],
)
def test_a_bad_augment_option_is_an_error_naming_its_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(None, [override])


def test_an_unknown_augment_key_in_yaml_names_the_file_and_key(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("data:\n  augment:\n    speed: [0.9, 1.1]\n    noise: [5, 20]\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: unknown config key 'data\.augment\.noise'; valid keys"):
        load_config(config)
