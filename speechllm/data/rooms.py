"""Simulated rooms for reverberation: room impulse responses from pyroomacoustics' image-source model.

No recorded room-impulse corpus ships with the library, and lhotse's own random-RIR generator
needs torchaudio (which speechllm does not depend on, DESIGN.md), so reverberation convolves the
audio with the impulse response of a simulated shoebox room. A pool of rooms is a pure function of
``(seed, index)``: size 3-10 × 3-8 × 2.4-4 m, a reverberation time (RT60, Sabine's formula) of
0.2-0.7 s, a source and a microphone at least 0.5 m from the walls and each other. Each room is
simulated once per process, when first drawn (about 0.1-1 s each: the full image-source order,
so the late tail is there).

pyroomacoustics (MIT) is optional: ``pip install 'speechllm[augment]'``; asking for reverberation
without it is an error saying so.
"""

from __future__ import annotations

import random
from functools import lru_cache

import numpy as np

from speechllm.audio import SAMPLE_RATE

RT60_RANGE = (0.2, 0.7)  # seconds: a small office to a large classroom
ROOM_SIZE = ((3.0, 10.0), (3.0, 8.0), (2.4, 4.0))  # metres: length, width, height
MARGIN = 0.5  # metres kept between the source or microphone and a wall, and between the two


def require_pyroomacoustics() -> None:
    """Raise ImportError naming the extra to install when pyroomacoustics is missing."""
    try:
        import pyroomacoustics  # noqa: F401
    except ImportError:
        raise ImportError(
            "data.augment.reverb needs pyroomacoustics (room simulation): pip install 'speechllm[augment]' "
            "(or pip install pyroomacoustics)"
        ) from None


def room_parameters(seed: int, index: int) -> dict[str, object]:
    """The drawn room ``index`` of pool ``seed``: size, RT60, source and microphone positions (metres)."""
    rng = random.Random(f"room:{seed}:{index}")
    size = [rng.uniform(low, high) for low, high in ROOM_SIZE]
    rt60 = rng.uniform(*RT60_RANGE)

    def point() -> list[float]:
        return [rng.uniform(MARGIN, side - MARGIN) for side in size]

    source = point()
    microphone = point()
    while float(np.linalg.norm(np.subtract(source, microphone))) < MARGIN:
        microphone = point()
    return {"size": size, "rt60": rt60, "source": source, "microphone": microphone}


@lru_cache(maxsize=256)
def room_impulse_response(seed: int, index: int) -> np.ndarray:
    """Impulse response (N,) float32 at 16 kHz of room ``index`` of pool ``seed`` (simulated once)."""
    require_pyroomacoustics()
    import pyroomacoustics as pra

    room = room_parameters(seed, index)
    absorption, max_order = pra.inverse_sabine(room["rt60"], room["size"])
    shoebox = pra.ShoeBox(
        room["size"], fs=SAMPLE_RATE, materials=pra.Material(absorption), max_order=max_order
    )
    shoebox.add_source(room["source"])
    shoebox.add_microphone(room["microphone"])
    shoebox.compute_rir()
    response = np.asarray(shoebox.rir[0][0], dtype=np.float32)
    return response / float(np.abs(response).max())
