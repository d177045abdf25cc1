"""Audio augmentation of training cuts (``data.augment``), built on lhotse's Cut transforms.

:class:`AudioAugmenter` turns a cut into an augmented cut whose audio lhotse computes lazily on
load: speed perturbation (``Cut.perturb_speed``, lhotse's own resampler), reverberation by a
simulated room (``Cut.reverb_rir`` with an impulse response from :mod:`speechllm.data.rooms`),
additive noise at a signal-to-noise ratio (``Cut.mix(noise, snr=...)``), a telephone channel
(``narrowband``: resampled to 8 kHz and back, so nothing above 4 kHz is left, as in a phone call
or an IVR prompt) and a gain (``Cut.perturb_volume``), in that order: the room reverberates the
speech, the noise is the microphone's and is not reverberated, the channel carries both, and the
gain scales both, which keeps the SNR.

No noise corpus ships, so the noise is generated: white, pink or brown (power ∝ 1/f⁰, 1/f, 1/f²,
flat below 20 Hz so that inaudible rumble does not carry the noise's energy), a fresh sample per
cut and view.

Reproducible: every choice (whether each transform applies, its value, the noise's samples, the
room) is a function of ``(seed, cut id, view)`` alone, not of a generator's state, so any worker,
rank or resumed run makes the same audio of the same cut. ``view`` is the training epoch for
on-the-fly augmentation (a new draw each epoch) and the view number in the encoder-output cache
(``speechllm cache --views N``). Evaluation cuts are never augmented (the data module builds an
augmenter for training loaders only).
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import soundfile
from lhotse import Recording
from lhotse.cut import Cut

from speechllm.audio import SAMPLE_RATE
from speechllm.config.schema import NOISE_COLORS
from speechllm.data.rooms import require_pyroomacoustics, room_impulse_response

# The options that change the audio (the identity of a cache's augmented views).
AUDIO_OPTIONS = (
    "speed",
    "volume_db",
    "noise_snr_db",
    "noise_colors",
    "reverb",
    "rooms",
    "prob",
    "narrowband",
)
LOWEST_NOISE_HZ = 20.0  # coloured noise is flat below this (see the module docstring)
NARROWBAND_RATE = 8000  # a telephone channel's sampling rate: its band ends at 4 kHz


@dataclass(frozen=True)
class AugmentDraw:
    """What one (cut, view) gets; ``None``: that transform is not applied."""

    speed: float | None = None
    volume_db: float | None = None
    noise_color: str | None = None
    noise_snr_db: float | None = None
    room: int | None = None
    narrowband: bool = False


class AudioAugmenter:
    """Augments training cuts with the transforms of a ``data.augment`` section.

    Args:
        options: the ``data.augment`` section (:class:`~speechllm.config.schema.AugmentConfig`
            or a mapping of its keys), already validated.
        seed: the run's seed, used when ``options["seed"]`` is unset.

    Raises:
        ImportError: reverberation is asked for and pyroomacoustics is not installed.
    """

    def __init__(self, options: Mapping[str, Any], seed: int = 0) -> None:
        def pair(key: str) -> tuple[float, float] | None:
            value = options.get(key)
            return None if value is None else (float(value[0]), float(value[1]))

        self.speed = pair("speed")
        self.volume_db = pair("volume_db")
        self.noise_snr_db = pair("noise_snr_db")
        self.noise_colors = tuple(str(c) for c in options.get("noise_colors") or NOISE_COLORS)
        self.reverb = float(options.get("reverb") or 0.0)
        self.rooms = int(options.get("rooms") or 32)
        self.prob = float(1.0 if options.get("prob") is None else options["prob"])
        self.narrowband = float(options.get("narrowband") or 0.0)
        self.seed = int(seed if options.get("seed") is None else options["seed"])
        if self.reverb > 0:
            require_pyroomacoustics()

    def options(self) -> dict[str, Any]:
        """The options that change the audio, as plain values (``narrowband`` only when on, so that
        the identity of views cached before it existed is unchanged)."""
        narrowband = {"narrowband": self.narrowband} if self.narrowband > 0 else {}
        return {
            **narrowband,
            "speed": list(self.speed) if self.speed else None,
            "volume_db": list(self.volume_db) if self.volume_db else None,
            "noise_snr_db": list(self.noise_snr_db) if self.noise_snr_db else None,
            "noise_colors": list(self.noise_colors),
            "reverb": self.reverb,
            "rooms": self.rooms,
            "prob": self.prob,
        }

    def identity(self) -> str:
        """A short hash of the audio options and seed: the same audio for every cut and view."""
        text = json.dumps({**self.options(), "seed": self.seed}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    def draw(self, cut_id: str, view: int) -> AugmentDraw:
        """The transforms and values of ``(cut_id, view)``.

        Every random number is drawn whatever the options, in a fixed order, so switching one
        transform on or off does not change the others' draws.
        """
        rng = random.Random(f"augment:{self.seed}:{cut_id}:{view}")
        speed = (rng.random() < self.prob, round(_uniform(rng, self.speed), 2))
        volume = (rng.random() < self.prob, _uniform(rng, self.volume_db))
        noise = (rng.random() < self.prob, _uniform(rng, self.noise_snr_db), rng.choice(self.noise_colors))
        reverb = (rng.random() < self.reverb, rng.randrange(self.rooms))
        narrowband = rng.random() < self.narrowband  # drawn last: the draws above are as before it existed
        return AugmentDraw(
            speed=speed[1] if self.speed and speed[0] and speed[1] != 1.0 else None,
            volume_db=volume[1] if self.volume_db and volume[0] else None,
            noise_color=noise[2] if self.noise_snr_db and noise[0] else None,
            noise_snr_db=noise[1] if self.noise_snr_db and noise[0] else None,
            room=reverb[1] if reverb[0] else None,
            narrowband=narrowband,
        )

    def __call__(self, cut: Cut, view: int = 0) -> Cut:
        """``cut`` (resampled to 16 kHz first) with the transforms of ``(cut.id, view)``; the id is kept."""
        draw = self.draw(cut.id, view)
        if cut.sampling_rate != SAMPLE_RATE:
            cut = cut.resample(SAMPLE_RATE)
        if draw.speed is not None:
            cut = cut.perturb_speed(draw.speed, affix_id=False)
        if draw.room is not None:
            cut = cut.reverb_rir(_room_recording(self.seed, draw.room), affix_id=False)
        if draw.noise_color is not None:
            noise_seed = int(hashlib.sha1(f"noise:{self.seed}:{cut.id}:{view}".encode()).hexdigest()[:15], 16)
            rng = np.random.default_rng(noise_seed)
            samples = coloured_noise(cut.num_samples, NOISE_COLORS[draw.noise_color], rng)
            cut = cut.mix(_memory_cut(samples, f"noise-{cut.id}"), snr=draw.noise_snr_db, preserve_id="left")
        if draw.narrowband:
            cut = cut.resample(NARROWBAND_RATE).resample(SAMPLE_RATE)
        if draw.volume_db is not None:
            cut = cut.perturb_volume(10.0 ** (draw.volume_db / 20.0), affix_id=False)
        return cut


def _uniform(rng: random.Random, bounds: tuple[float, float] | None) -> float:
    low, high = bounds or (1.0, 1.0)
    return rng.uniform(low, high)


def coloured_noise(num_samples: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """(S,) float32 noise of unit RMS whose power spectrum falls as 1/f^exponent above 20 Hz.

    Args:
        num_samples: length S at 16 kHz.
        exponent: 0 white, 1 pink, 2 brown.
        rng: the source of the white noise that is shaped.
    """
    white = rng.standard_normal(num_samples)
    if exponent:
        spectrum = np.fft.rfft(white)
        freqs = np.maximum(np.fft.rfftfreq(num_samples, 1.0 / SAMPLE_RATE), LOWEST_NOISE_HZ)
        white = np.fft.irfft(spectrum * freqs ** (-exponent / 2.0), num_samples)
    rms = float(np.sqrt(np.mean(white**2))) or 1.0
    return (white / rms).astype(np.float32)


def _memory_cut(samples: np.ndarray, recording_id: str) -> Cut:
    """A cut of in-memory 16 kHz mono ``samples`` (S,), as lhotse mixes it."""
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, SAMPLE_RATE, format="WAV", subtype="FLOAT")
    return Recording.from_bytes(buffer.getvalue(), recording_id=recording_id).to_cut()


@lru_cache(maxsize=256)
def _room_recording(seed: int, index: int) -> Recording:
    """Room ``index``'s impulse response as an in-memory recording (built once per process)."""
    return _memory_cut(room_impulse_response(seed, index), f"room-{seed}-{index}").recording
