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
3. A refused answer stays on screen. Upstream, the focus view moves on to the next record after Submit or Discard
   whether or not the server took the answer (the error is caught and shown as a toast), so what the participant
   typed vanished when the server refused it. Here it moves on only when the record holds what the server saved
   (Argilla's `record.isModified` is false again after a successful save), so the text stays in the form.
4. The study's words: values of the UI's English table that participants would misread are replaced (data:
   ui_words.yaml), and every page loads codigit's own script and stylesheet (pages/codigit/), which add the study's
   title on sign-in, its rules' messages, a confirmation before discarding a story, character counts and the way
   to the study home, for participants only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

WORDS = Path(__file__).parent / "ui_words.yaml"
PAGE_TAGS = (
    b'<link rel="stylesheet" href="/codigit/ui.css"><script src="/codigit/session.js"></script>'
    b'<script src="/codigit/ui.js"></script></head>'
)

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


# `e.submit(e.record);case 2:e.$emit("on-submit-responses")` inside the focus view's regenerator, e minified
_MOVE_ON = re.compile(
    rb'([\w$]+)\.(submit|discard)\(\1\.record\);case (\d+):\1\.\$emit\("on-(submit|discard)-responses"\)'
)
_MOVE_ON_IF_SAVED = rb'\1.\2(\1.record);case \3:\1.record.isModified||\1.$emit("on-\4-responses")'


def _edit(files: list[Path], pattern: re.Pattern, replacement: bytes) -> int:
    done = 0
    for path in files:
        content = path.read_bytes()
        edited, n = pattern.subn(replacement, content)
        if n:
            path.write_bytes(edited)
            done += n
    return done


def replace_words(scripts: list[Path]) -> int:
    """Each entry of ui_words.yaml, exactly once in the UI's scripts, or a RuntimeError naming it."""
    contents = {path: path.read_bytes() for path in scripts}
    changed = set()
    entries = yaml.safe_load(WORDS.read_text(encoding="utf-8"))
    for entry in entries:
        old = f"{entry['key']}:{json.dumps(entry['upstream'], ensure_ascii=False)}".encode()
        new = f"{entry['key']}:{json.dumps(entry['codigit'], ensure_ascii=False)}".encode()
        found = [path for path, content in contents.items() if old in content]
        if len(found) != 1 or contents[found[0]].count(old) != 1:
            raise RuntimeError(f"the UI's word {entry['key']}={entry['upstream']!r} is not there exactly once; "
                               "is this argilla-server 2.8.0? (codigit/server/ui_words.yaml)")  # fmt: skip
        contents[found[0]] = contents[found[0]].replace(old, new)
        changed.add(found[0])
    for path in changed:
        path.write_bytes(contents[path])
    return len(entries)


def patch_ui(ui_directory: Path) -> dict[str, int]:
    """Make every edit; returns how many places each changed. Fails if the text-field code or a word is not found,
    so that a different argilla-server cannot quietly bring the unsafe rendering or the old words back."""
    # private: listed in codigit/upstream.py
    scripts = sorted(ui_directory.rglob("*.js"))
    pages = sorted(ui_directory.rglob("*.html"))
    counts = {
        "text fields": _edit(scripts, _TEXT_FIELD, _AS_TEXT),
        "chat messages": _edit(scripts, _CHAT_BUBBLE, _CHAT_AS_TEXT),
        "font imports": _edit(sorted(ui_directory.rglob("*.css")), _REMOTE_FONTS, b""),
        "move on only when saved": _edit(scripts, _MOVE_ON, _MOVE_ON_IF_SAVED),
        "words": replace_words(scripts),
        "pages with codigit's script": _edit(pages, re.compile(rb"</head>"), PAGE_TAGS),
    }
    if not counts["text fields"]:
        raise RuntimeError(f"no text-field renderer to make safe in {ui_directory}; is this argilla-server 2.8.0?")
    if not counts["move on only when saved"]:
        raise RuntimeError(f"no focus view to keep refused answers on screen in {ui_directory}")
    if not counts["pages with codigit's script"]:
        raise RuntimeError(f"no UI page to add codigit's script to in {ui_directory}")
    return counts
