"""The README's two example blocks, run as written in a fresh copy of the repository's tracked
files, succeed and leave nothing untracked there (what a newcomer's clone would show)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers.paths import REPO

from speechllm.cli import main

ROOT = REPO
README = (ROOT / "README.md").read_text(encoding="utf-8")

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git for a checkout's status")


def _git(cwd: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=readme-test", "-c", "user.email=readme@test", *args]
    return subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True).stdout


def _clean_checkout(target: Path) -> Path:
    """The tracked files of this repository, committed in a new repository at ``target``."""
    try:
        tracked = _git(ROOT, "ls-files", "-z").split("\0")
    except subprocess.CalledProcessError:
        pytest.skip("the tests do not run from a git checkout")
    for name in filter(None, tracked):
        if (ROOT / name).is_file():  # a file deleted in the working tree is not copied
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    _git(target, "init", "-q")
    _git(target, "add", "-A")
    _git(target, "commit", "-q", "-m", "checkout")
    return target


def _untracked_or_changed(checkout: Path) -> list[str]:
    """``git status`` lines: new files that .gitignore does not cover, and changed tracked ones."""
    return _git(checkout, "status", "--porcelain", "--untracked-files=all").splitlines()


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tiny presets are built, outside the checkout and shared by both blocks."""
    return tmp_path_factory.mktemp("speechllm_cache")


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_cache: Path) -> Path:
    root = _clean_checkout(tmp_path / "speechllm")
    monkeypatch.chdir(root)
    monkeypatch.setenv("SPEECHLLM_CACHE", str(model_cache))
    return root


@pytest.mark.slow
def test_the_python_example_runs_as_written_and_leaves_nothing_untracked(checkout, capsys) -> None:
    (example,) = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    exec(compile(example, "README.md", "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert printed.startswith("[") and printed.endswith("]")  # one transcript, a list of one string
    assert _untracked_or_changed(checkout) == []


@pytest.mark.slow
def test_the_command_line_block_runs_as_written_and_leaves_nothing_untracked(checkout, capsys) -> None:
    (block,) = re.findall(r"The same from the command line:\s*```bash\n(.*?)```", README, flags=re.S)
    commands = [shlex.split(line) for line in block.splitlines() if line.strip()]
    assert [words[0] for words in commands] == ["speechllm"] * len(commands)
    for words in commands:
        assert main(words[1:]) == 0, " ".join(words)
    wav = commands[-1][-1]
    # split("\n"), not splitlines(): a random model's text may hold \x1c and its kin
    printed = capsys.readouterr().out.split("\n")
    assert any(line.startswith(f"{wav}\t") for line in printed)  # `transcribe` printed its line
    assert _untracked_or_changed(checkout) == []
