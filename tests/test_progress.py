"""Long steps show a live count and ETA on a terminal, and one summary line on a pipe."""

from __future__ import annotations

import io
import re

from speechllm.progress import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_pipe_only_one_summary_line_is_written() -> None:
    stream = io.StringIO()
    with progress("cache train.jsonl.gz", 7, unit="cuts", stream=stream) as advance:
        for _ in range(7):
            advance(1)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert re.fullmatch(r"cache train\.jsonl\.gz: 7 cuts in \d+\.\d s", lines[0])


def test_a_summary_says_when_fewer_than_announced_were_done() -> None:
    stream = io.StringIO()
    try:
        with progress("evaluate", 10, unit="clips", stream=stream) as advance:
            advance(4)
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert stream.getvalue().startswith("evaluate: 4/10 clips in ")


def test_on_a_terminal_a_bar_shows_the_count_and_an_eta() -> None:
    stream = Terminal()
    with progress("transcribe", 3, unit="files", stream=stream) as advance:
        advance(2)
        advance(1)
    shown = stream.getvalue()
    assert "transcribe" in shown and "3/3" in shown and "eta" in shown
