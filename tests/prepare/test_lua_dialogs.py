"""The Fish Fillets NG dialog-file reader: the Lua that the game's dialog files use, without Lua."""

from __future__ import annotations

from pathlib import Path

import pytest

from speechllm.data.manifest_check import ManifestError
from speechllm.prepare.lua_dialogs import parse_calls, read_dialog_file

# Written like the packages' files: blank lines, comments, a call over two lines, escapes, a
# concatenation, a long string, a loop calling dialogId with a computed id, an empty translation.
DIALOGS_NL = """
-- Init
dialogId("let-m-divna", "font_small", "What kind of strange ship is that?")
dialogStr("Wat is dit voor raar schip?")

dialogId("war-v-pohadka", "font_big", "In the C:\\\\WINDOWS directory we \\"talk\\".")
dialogStr(
"In de map \\/etc " .. 'praten ' .. [[wij.]])

local i
for i = 0, 2 do dialogId("key"..i, "", "") end
dialogId("bar-x-gr0", "font_white", "")
dialogStr("")
dialogId("let-v-oko", "font_big", "An eye.")
"""


def test_calls_are_read_with_lua_strings_decoded() -> None:
    calls = parse_calls(DIALOGS_NL, "dialogs_nl.lua")
    assert [(c.name, c.line) for c in calls[:4]] == [
        ("dialogId", 3),
        ("dialogStr", 4),
        ("dialogId", 6),
        ("dialogStr", 7),
    ]
    assert calls[2].args[2] == 'In the C:\\WINDOWS directory we "talk".'
    assert calls[3].args == ("In de map /etc praten wij.",)  # Lua 5.1: "\/" is "/"
    assert calls[4].args == (None, "", "")  # "key"..i is computed


def test_dialog_lines_pair_each_id_with_its_text(tmp_path: Path) -> None:
    path = tmp_path / "dialogs_nl.lua"
    path.write_text(DIALOGS_NL, encoding="utf-8")
    lines, computed = read_dialog_file(path)
    assert computed == [f"{path}:11"]
    by_id = {line.dialog_id: line for line in lines}
    assert list(by_id) == ["let-m-divna", "war-v-pohadka", "bar-x-gr0", "let-v-oko"]
    assert by_id["let-m-divna"].english == "What kind of strange ship is that?"
    assert by_id["let-m-divna"].text == "Wat is dit voor raar schip?"
    assert by_id["let-m-divna"].font == "font_small"
    assert by_id["let-m-divna"].where == f"{path}:3"
    assert by_id["bar-x-gr0"].text == ""
    assert by_id["let-v-oko"].text is None  # no dialogStr: not translated


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ('dialogId("a", "f", "ok")\ndialogStr("never closed)\n', r"dialogs_xx\.lua:2: unterminated string"),
        ('dialogId("a", "f", "ok")\ndialogStr("text"\n', r"dialogs_xx\.lua:2: dialogStr\( is never closed"),
        ('dialogStr("text")\n', r"dialogs_xx\.lua:1: dialogStr without a dialogId"),
        ('dialogId("a", "ok")\n', r"dialogs_xx\.lua:1: dialogId takes \(id, font, subtitle\), got 2"),
    ],
)
def test_a_broken_lua_line_is_an_error_naming_file_and_line(
    tmp_path: Path, source: str, message: str
) -> None:
    path = tmp_path / "dialogs_xx.lua"
    path.write_text(source, encoding="utf-8")
    with pytest.raises(ManifestError, match=message):
        read_dialog_file(path)


def test_bad_encoding_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "dialogs_cs.lua"
    path.write_bytes(b'dialogId("a", "font_big", "ok")\ndialogStr("lo\xef")\n')
    with pytest.raises(ManifestError, match=r"dialogs_cs\.lua:2: not valid UTF-8"):
        read_dialog_file(path)
