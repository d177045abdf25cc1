"""The README's Python example runs as written (build from a config, train, transcribe)."""

from __future__ import annotations

import re

import pytest
from helpers.paths import REPO


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


def test_readme_example_trains_and_transcribes(tmp_path, monkeypatch, capsys):
    (example,) = python_blocks((REPO / "README.md").read_text())
    assert len([line for line in example.splitlines() if line.strip()]) <= 16
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipes").symlink_to(REPO / "recipes")
    monkeypatch.setenv("SPEECHLLM_CACHE", str(tmp_path / "cache"))  # presets build tiny models here
    exec(compile(example, "README.md", "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert printed.startswith("[") and printed.endswith("]")  # one transcript, a list of one string


@pytest.mark.parametrize("command", ["make test", "make demo"])
def test_readme_names_the_two_make_targets(command):
    readme = (REPO / "README.md").read_text()
    target = command.split()[1]
    assert command in readme
    assert re.search(rf"^{target}:", (REPO / "Makefile").read_text(), flags=re.M)
    if target == "test":
        assert "make test" in (REPO / ".ci" / "run").read_text()
