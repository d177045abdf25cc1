"""Model directories are untrusted input: their `imports:` run only when trusted, and 200+ damaged
directories each give a CheckpointError (or a missing-file error) naming the file, never a crash."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from speechllm.cli import main
from speechllm.config import load_config
from speechllm.errors import CheckpointError
from speechllm.model import SpeechLLM
from speechllm.model_dir import MODEL_CONFIG, TRAINED_WEIGHTS, UntrustedImportsError

MARKER_MODULE = """
from pathlib import Path
Path({marker!r}).write_text("imported")
from speechllm.adapters.base_adapter import BaseAdapter
from speechllm.registry import register_adapter

@register_adapter("{name}")
class Marked(BaseAdapter):
    pass
"""


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, tiny_model_overrides: list[str]) -> Path:
    model = SpeechLLM.from_config(load_config(None, tiny_model_overrides).model)
    return model.save_pretrained(tmp_path_factory.mktemp("model") / "model")


def _with_imports(saved: Path, tmp_path: Path, module: str) -> tuple[Path, Path]:
    marker = tmp_path / "marker"
    (tmp_path / f"{module}.py").write_text(MARKER_MODULE.format(marker=str(marker), name=module))
    directory = tmp_path / "untrusted"
    shutil.copytree(saved, directory)
    config = (directory / MODEL_CONFIG).read_text()
    config = config.replace("imports: []", f"imports:\n- {module}").replace(
        "name: base", f"name: {module}", 1
    )
    (directory / MODEL_CONFIG).write_text(config)
    return directory, marker


def test_imports_of_a_model_directory_are_not_run_unless_trusted(
    saved, tmp_path, monkeypatch, capsys
) -> None:
    directory, marker = _with_imports(saved, tmp_path, "marker_adapter_one")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UntrustedImportsError, match="marker_adapter_one.*--trust-imports"):
        SpeechLLM.from_pretrained(directory)
    assert not marker.exists()
    wav = tmp_path / "a.wav"
    import soundfile as sf

    sf.write(wav, np.zeros(16000, dtype=np.float32) + 0.01, 16000)
    assert main(["transcribe", "--model", str(directory), str(wav)]) == 2
    assert "marker_adapter_one" in capsys.readouterr().err and not marker.exists()
    # Opting in imports it (a fresh interpreter, so the module really loads there).
    code = (
        "import sys; from speechllm.model import SpeechLLM; "
        "print(type(SpeechLLM.from_pretrained(sys.argv[1], trust_imports=True).adapter).__name__)"
    )
    env_path = f"{tmp_path}"
    out = subprocess.run(
        [sys.executable, "-c", code, str(directory)],
        capture_output=True,
        text=True,
        check=True,
        env={**__import__("os").environ, "PYTHONPATH": env_path},
    )
    assert out.stdout.strip().endswith("Marked") and marker.read_text() == "imported"


def _damage(directory: Path, rng: np.random.Generator) -> str:
    """One random kind of damage to a copy of a good model directory; returns its name."""
    kind = str(rng.choice(KINDS))
    target = directory / (MODEL_CONFIG if kind.startswith("config") else TRAINED_WEIGHTS)
    data = target.read_bytes()
    if kind.endswith("truncate"):
        target.write_bytes(data[: int(rng.integers(0, len(data)))])
    elif kind.endswith("flip header"):  # the YAML text, or safetensors' JSON header
        buf = bytearray(data)
        for i in rng.integers(0, min(len(buf), 200), size=3):
            buf[i] = int(rng.integers(0, 256))
        target.write_bytes(bytes(buf))
    elif kind.endswith("delete"):
        target.unlink()
    elif kind == "config garbage key":
        target.write_text(data.decode().replace("model:", "model:\n  not_a_key: 1", 1))
    elif kind == "config bad option":
        target.write_text(data.decode().replace("name: base", "name: base\n    kernel_size: 3", 1))
    elif kind == "config unknown adapter":
        target.write_text(data.decode().replace("name: base", "name: nonexistent", 1))
    elif kind == "config list":
        target.write_text("- model\n- imports\n")
    elif kind == "weights renamed":
        from safetensors.torch import load_file, save_file

        tensors = load_file(str(target))
        save_file({f"x.{k}": v for k, v in tensors.items()}, str(target))
    elif kind == "weights reshaped":
        from safetensors.torch import load_file, save_file

        tensors = load_file(str(target))
        key = sorted(tensors)[int(rng.integers(0, len(tensors)))]
        tensors[key] = tensors[key].reshape(-1)[: max(1, tensors[key].numel() - 1)].clone()
        save_file(tensors, str(target))
    return kind


KINDS = [
    "config truncate",
    "config flip header",
    "config delete",
    "config garbage key",
    "config bad option",
    "config unknown adapter",
    "config list",
    "weights truncate",
    "weights flip header",
    "weights delete",
    "weights renamed",
    "weights reshaped",
]


def test_two_hundred_damaged_model_directories_each_fail_clearly(saved, tmp_path) -> None:
    rng = np.random.default_rng(5)
    outcomes: dict[str, int] = {}
    for i in range(204):
        directory = tmp_path / f"m{i:03d}"
        shutil.copytree(saved, directory)
        kind = _damage(directory, rng)
        try:
            SpeechLLM.from_pretrained(directory)
        except (CheckpointError, FileNotFoundError) as err:
            message = str(err)
            assert str(directory) in message, (kind, message)
            outcomes[kind] = outcomes.get(kind, 0) + 1
        else:  # only damage a reader cannot see may load: bytes flipped inside YAML values
            assert kind in ("config flip header", "config truncate"), kind
        shutil.rmtree(directory)
    assert set(KINDS) - {"config flip header", "config truncate"} <= set(outcomes), outcomes
    assert sum(outcomes.values()) >= 150, outcomes


INTERPOLATIONS = ["${oc.env:SECRET_TOKEN}", "prefix ${oc.env:SECRET_TOKEN,x}", "${model.llm.path}"]


@pytest.mark.parametrize("value", INTERPOLATIONS)
def test_interpolations_in_a_model_directory_are_refused_not_evaluated(
    saved, tmp_path, tones_dir, monkeypatch, capsys, value
) -> None:
    """A model directory's config.yaml must not read the environment (into run.json) or other keys."""
    monkeypatch.setenv("SECRET_TOKEN", "hunter2")
    directory = tmp_path / "interpolating"
    shutil.copytree(saved, directory)
    config = (directory / MODEL_CONFIG).read_text()
    config = config.replace("model:\n", f"model:\n  system_prompt: '{value}'\n", 1)
    (directory / MODEL_CONFIG).write_text(config)
    with pytest.raises(CheckpointError, match=r"model\.system_prompt holds the interpolation"):
        SpeechLLM.from_pretrained(directory)
    wav = next((tones_dir / "wav").glob("*.wav"))
    assert main(["transcribe", "--model", str(directory), str(wav)]) == 2
    err = capsys.readouterr().err
    assert "holds the interpolation" in err and "hunter2" not in err
