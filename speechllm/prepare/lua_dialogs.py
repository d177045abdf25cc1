"""Fish Fillets NG dialog scripts (``dialogs_<lang>.lua``) read without running Lua.

A dialog file is Lua source whose statements that matter are two calls::

    dialogId("let-m-divna", "font_small", "What kind of strange ship is that?")
    dialogStr("Wat is dit voor raar schip?")

``dialogId(id, font, english)`` names a line of dialog and gives its English subtitle (the
game's prime language); the ``dialogStr(text)`` after it gives the text in the file's language
(``dialogs_en.lua`` has none: the English is the subtitle). Arguments may span lines, use either
quote, Lua escapes (``\\"``, ``\\\\``, ``\\n``, ``\\ddd``) and ``..`` concatenation of literals.
Anything else in the file (comments, ``local``, a ``for`` loop calling ``dialogId("key"..i, ...)``)
is skipped; a call whose argument is computed is returned with that argument as None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from speechllm.data.manifest_check import ManifestError

_TOKEN = re.compile(
    r"""
    (?P<space>[ \t\r\f\v]+)
  | (?P<newline>\n)
  | (?P<comment>--(?:\[(?P<ceq>=*)\[.*?\](?P=ceq)\]|[^\n]*))
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<long>\[(?P<eq>=*)\[.*?\](?P=eq)\])
  | (?P<name>[A-Za-z_]\w*)
  | (?P<number>\d+(?:\.\d*)?)
  | (?P<concat>\.\.)
  | (?P<punct>[(),;={}\[\]+\-*/%^<>~#.:])
  | (?P<bad>.)
    """,
    re.S | re.X,
)
_ESCAPE = re.compile(r"\\(\d{1,3}|\n|.)", re.S)
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v", "\n": "\n"}
CALLS = ("dialogId", "dialogStr")


@dataclass(frozen=True)
class LuaCall:
    """One ``dialogId``/``dialogStr`` call: its name, the line it starts on, its arguments
    (a string, or None where the argument is not a string literal or concatenation of them)."""

    name: str
    line: int
    args: tuple[str | None, ...]


@dataclass
class Token:
    kind: str
    value: str
    line: int


def _unescape(body: str) -> str:
    """The value of a quoted Lua string's body (Lua 5.1: an unknown escape ``\\x`` is ``x``)."""

    def replace(match: re.Match[str]) -> str:
        escaped = match.group(1)
        if escaped.isdigit():
            return chr(int(escaped))
        return _SIMPLE_ESCAPES.get(escaped, escaped)

    return _ESCAPE.sub(replace, body)


def tokenize(source: str, where: str) -> list[Token]:
    """Lua tokens without spaces and comments; strings decoded.

    Raises:
        ManifestError: an unterminated string or a character Lua does not know (``where:line``).
    """
    tokens = []
    line = 1
    for match in _TOKEN.finditer(source):
        kind, text = match.lastgroup or "", match.group()
        if kind == "bad":
            what = "unterminated string" if text in "\"'" else f"unexpected character {text!r}"
            raise ManifestError(f"{where}:{line}: {what}")
        if kind == "string":
            tokens.append(Token("string", _unescape(text[1:-1]), line))
        elif kind == "long":
            body = text[text.index("[", 1) + 1 : -len(match.group("eq")) - 2]
            tokens.append(Token("string", body[1:] if body.startswith("\n") else body, line))
        elif kind not in ("space", "newline", "comment"):
            tokens.append(Token(kind, text, line))
        line += text.count("\n")
    return tokens


def _argument(tokens: list[Token]) -> str | None:
    """A string literal or a ``..`` concatenation of them; None for anything computed."""
    if not tokens or len(tokens) % 2 == 0:
        return None
    strings = tokens[0::2]
    if any(token.kind != "string" for token in strings) or any(t.kind != "concat" for t in tokens[1::2]):
        return None
    return "".join(token.value for token in strings)


def parse_calls(source: str, where: str) -> list[LuaCall]:
    """Every ``dialogId``/``dialogStr`` call of a Lua source, in order.

    Raises:
        ManifestError: a string or a call's parentheses not closed (``where:line``).
    """
    tokens = tokenize(source, where)
    calls = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if not (token.kind == "name" and token.value in CALLS):
            continue
        if index >= len(tokens) or tokens[index].value != "(":
            raise ManifestError(f"{where}:{token.line}: {token.value} without '(' after it")
        depth, args, current = 1, [], []
        index += 1
        while depth:
            if index >= len(tokens):
                raise ManifestError(f"{where}:{token.line}: {token.value}( is never closed")
            part = tokens[index]
            index += 1
            if part.kind == "punct" and part.value in "({[":
                depth += 1
            elif part.kind == "punct" and part.value in ")}]":
                depth -= 1
                if not depth:
                    break
            if depth == 1 and part.value == "," and part.kind == "punct":
                args.append(_argument(current))
                current = []
            else:
                current.append(part)
        if current or args:
            args.append(_argument(current))
        calls.append(LuaCall(token.value, token.line, tuple(args)))
    return calls


def read_lua_source(path: Path) -> str:
    """A dialog file's text (UTF-8; a byte-order mark tolerated).

    Raises:
        ManifestError: missing file, or not valid UTF-8 (naming the line).
    """
    if not path.is_file():
        raise ManifestError(f"{path}: dialog file not found")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ManifestError(f"{path}:{line}: not valid UTF-8 ({err.reason})") from None


@dataclass(frozen=True)
class DialogLine:
    """A ``dialogId`` with the ``dialogStr`` after it (``font`` names who speaks: ``font_small``
    the small fish, ``font_big`` the big one, ...): ``text`` is None where the file gives
    none (``dialogs_en.lua``, or an untranslated line); ``where`` is ``file:line``."""

    dialog_id: str
    font: str | None
    english: str | None
    text: str | None
    where: str


def read_dialog_file(path: str | Path) -> tuple[list[DialogLine], list[str]]:
    """The dialog lines of a ``dialogs_<lang>.lua``, and the ``file:line`` of each ``dialogId``
    whose id is computed (``dialogId("key"..i, "", "")`` in a loop: no text to read).

    Raises:
        ManifestError: bad UTF-8, an unclosed string or call, a ``dialogStr`` before any
            ``dialogId`` or with other than one argument (naming the file and line).
    """
    path = Path(path)
    lines: list[DialogLine] = []
    computed: list[str] = []
    current: DialogLine | None = None
    for call in parse_calls(read_lua_source(path), str(path)):
        where = f"{path}:{call.line}"
        if call.name == "dialogId":
            if current is not None:
                lines.append(current)
            current = None
            if len(call.args) != 3:
                raise ManifestError(
                    f"{where}: dialogId takes (id, font, subtitle), got {len(call.args)} arguments"
                )
            if call.args[0] is None:
                computed.append(where)
                continue
            current = DialogLine(call.args[0], call.args[1], call.args[2], None, where)
        else:
            if len(call.args) != 1:
                raise ManifestError(f"{where}: dialogStr takes one argument, got {len(call.args)}")
            if current is None:
                raise ManifestError(f"{where}: dialogStr without a dialogId before it")
            if current.text is not None:
                raise ManifestError(f"{where}: a second dialogStr for {current.dialog_id!r}")
            current = DialogLine(
                current.dialog_id, current.font, current.english, call.args[0] or "", current.where
            )
    if current is not None:
        lines.append(current)
    return lines, computed
