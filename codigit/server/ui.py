"""Edits to the web UI that argilla-server 2.8 serves, made to its per-start copy of the bundled files.

1. Participants' text is shown as text. Upstream, a text field without markdown is put into the page with
   `innerHTML`, or, when it looks like HTML, into an `<iframe srcdoc>` without a sandbox that reaches into the
   parent page: a story holding `<img onerror=…>` or `<script>` would run in every reviewer's browser, with their
   session. Here such fields (and chat bubbles) are set with `textContent`: the characters the participant typed,
   nothing rendered or run. Markdown fields are left as they are: codigit uses them only for the organisers' own
   texts (invitations, consent, guidelines), never for what participants write. Nor does codigit use span
   questions or custom (HTML template) fields, whose upstream rendering is left unchanged too.
2. No Google Fonts: the stylesheet's imports are dropped, so participants' browsers contact only the study's
   server. The UI falls back to local fonts.
"""

from __future__ import annotations

import re
from pathlib import Path

_REMOTE_FONTS = re.compile(rb"@import url\(https://fonts\.googleapis\.com/[^)]*\);?")
# V.isHTML ? H("Sandbox", {attrs: {content: V.fieldText}}) : H("div", {…, domProps: {innerHTML: V._s(V.fieldText)}})
# minified; V and H are whatever the minifier named the view model and the render function in each chunk
_TEXT_FIELD = re.compile(
    rb"([\w$]+)\.isHTML\?([\w$]+)\(\"Sandbox\",\{attrs:\{content:\1\.fieldText\}\}\):\2\(\"div\",\{class:\1\.classes,"
    rb"domProps:\{innerHTML:\1\._s\(\1\.fieldText\)\}\}\)"
)
_AS_TEXT = rb'\2("div",{class:\1.classes,domProps:{textContent:\1._s(\1.fieldText)}})'
# a chat message without markdown: `H("span",{domProps:{innerHTML:V._s(o)}})`, o the message's content
_CHAT_BUBBLE = re.compile(rb"([\w$]+)\(\"span\",\{domProps:\{innerHTML:([\w$]+)\._s\(([\w$]+)\)\}\}\),\[\1\(\"style\"")
_CHAT_AS_TEXT = rb'\1("span",{domProps:{textContent:\2._s(\3)}}),[\1("style"'


def _edit(files: list[Path], pattern: re.Pattern, replacement: bytes) -> int:
    done = 0
    for path in files:
        content = path.read_bytes()
        edited, n = pattern.subn(replacement, content)
        if n:
            path.write_bytes(edited)
            done += n
    return done


def patch_ui(ui_directory: Path) -> dict[str, int]:
    """Make both edits; returns how many places each changed. Fails if the text-field code is not found, so that
    a different argilla-server cannot quietly bring the unsafe rendering back."""
    scripts = sorted(ui_directory.rglob("*.js"))
    counts = {
        "text fields": _edit(scripts, _TEXT_FIELD, _AS_TEXT),
        "chat messages": _edit(scripts, _CHAT_BUBBLE, _CHAT_AS_TEXT),
        "font imports": _edit(sorted(ui_directory.rglob("*.css")), _REMOTE_FONTS, b""),
    }
    if not counts["text fields"]:
        raise RuntimeError(f"no text-field renderer to make safe in {ui_directory}; is this argilla-server 2.8.0?")
    return counts
