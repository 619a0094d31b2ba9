"""The codebook researchers code stories with (`annotation/codebook.yaml`): typed, versioned, with its history.

A version is what a round was coded with: `codigit coding open` keeps a copy of every version it uses under
`<data>/coding/codebooks/`, and refuses a file that changed under a version already used (its codes would mean
something else in the earlier round). Renaming, splitting or merging codes makes a new version, and each code
that came out of such a change says so in its `history`, so a code's earlier names can be followed back.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from codigit.errors import CodigitError
from codigit.specs import NAME_PATTERN, QuestionSpec, _Strict, load_yaml

NONE = "none"  # the answer "None of these codes": the codes question is required (Argilla needs one)
NONE_TITLE = "None of these codes"
VERSION_PATTERN = r"^[0-9]+(\.[0-9]+)*$"


class Change(_Strict):
    version: str = Field(pattern=VERSION_PATTERN)  # the codebook version that made the change
    how: Literal["renamed", "split", "merged"]
    was: list[str] = Field(min_length=1)  # the earlier code name(s)
    note: str = ""  # why: what coders found when they used the earlier code(s)


class Code(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    title: str = Field(min_length=1)
    definition: str = Field(min_length=1)
    examples: list[str] = []
    not_this: str = ""  # when the code does not apply although it seems to
    history: list[Change] = []


class Codebook(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    version: str = Field(pattern=VERSION_PATTERN)
    title: str = Field(min_length=1)
    instructions: str = ""
    codes: list[Code] = Field(min_length=1)
    retired: dict[str, str] = {}  # earlier codes dropped without a successor -> why

    @model_validator(mode="after")
    def _consistent(self) -> Codebook:
        names = [c.name for c in self.codes]
        if len(set(names)) != len(names):
            raise ValueError("codes must have unique names")
        if NONE in names:
            raise ValueError(f"{NONE!r} is the answer 'None of these codes'; give the code another name")
        mine = _version_key(self.version)
        for code in self.codes:
            for change in code.history:
                if _version_key(change.version) > mine:
                    raise ValueError(f"code {code.name}: a change in version {change.version}, after this codebook's "
                                     f"version {self.version}")  # fmt: skip
                if current := sorted(set(change.was) & set(names) - {code.name}):
                    raise ValueError(f"code {code.name}: it came from {current[0]!r}, which is still a code")
                if change.how == "renamed" and len(change.was) != 1:
                    raise ValueError(f"code {code.name}: a rename has one earlier name, not {len(change.was)}")
                if change.how == "merged" and len(change.was) < 2:
                    raise ValueError(f"code {code.name}: a merge joins two or more earlier codes")
        splits: dict[tuple[str, str], list[str]] = {}
        for code in self.codes:
            for change in code.history:
                if change.how == "split":
                    splits.setdefault((change.version, change.was[0]), []).append(code.name)
        if lone := [f"{was} (version {v})" for (v, was), into in splits.items() if len(into) < 2]:
            raise ValueError(f"a split makes two or more codes; only one came from {lone[0]}")
        return self

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.codes]

    def sha256(self) -> str:
        """Of the codebook's content, whatever the file's layout or comments."""
        return hashlib.sha256(json.dumps(self.model_dump(), sort_keys=True).encode()).hexdigest()

    def lineage(self) -> dict[str, list[str]]:
        """Every earlier code name -> the current codes it became (one for a rename or merge, several for a split),
        following changes over several versions."""
        came_from: dict[str, set[str]] = {}
        for code in self.codes:
            for change in code.history:
                for was in change.was:
                    came_from.setdefault(was, set()).add(code.name)
        return {was: sorted(into) for was, into in sorted(came_from.items())}

    def questions(self) -> list[QuestionSpec]:
        labels = {c.name: c.title for c in self.codes} | {NONE: NONE_TITLE}
        return [
            QuestionSpec(name="codes", type="multi_label", required=True, title="Codes",
                         description="Every code that applies to the story (see the guidelines)", labels=labels),
            QuestionSpec(name="memo", type="text", title="Memo",
                         description="Optional: a hard choice, a near miss, a code the codebook lacks"),
        ]  # fmt: skip

    def guidelines(self) -> str:
        """The round's guidelines in Argilla: the instructions, then every code with its definition and examples."""
        parts = [f"# {self.title}", f"Codebook `{self.name}`, version {self.version}.", self.instructions.strip()]
        for code in self.codes:
            parts.append(f"## {code.title} (`{code.name}`)\n\n{code.definition.strip()}")
            if code.examples:
                parts.append("Examples:\n\n" + "\n".join(f"- {e}" for e in code.examples))
            if code.not_this:
                parts.append(f"Not this: {code.not_this.strip()}")
            for change in code.history:
                parts.append(f"*Version {change.version}: {change.how} from {', '.join(change.was)}.* {change.note}")
        parts.append(f"## {NONE_TITLE}\n\nChoose it when no code applies; then say in a memo what the story does.")
        return "\n\n".join(p for p in parts if p)


def follows(codebook: Codebook, previous: Codebook) -> None:
    """A new version must account for every code of the version before it: kept, renamed, split, merged or
    retired; and a change it records must name codes that version had."""
    if _version_key(codebook.version) <= _version_key(previous.version):
        raise CodigitError(f"codebook {codebook.name} version {codebook.version} is not after the version kept "
                           f"before it ({previous.version})")  # fmt: skip
    changed = {was for c in codebook.codes for ch in c.history if ch.version == codebook.version for was in ch.was}
    if unknown := sorted(changed - set(previous.names)):
        raise CodigitError(f"codebook {codebook.name} version {codebook.version}: its history names {unknown[0]!r}, "
                           f"which version {previous.version} does not have")  # fmt: skip
    if lost := sorted(set(previous.names) - set(codebook.names) - changed - set(codebook.retired)):
        raise CodigitError(
            f"codebook {codebook.name} version {codebook.version}: code {lost[0]!r} of version {previous.version} "
            "is gone without a trace: add a `history` entry to the code(s) it became, or list it under `retired`"
        )


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split("."))


def load_codebook(path: Path) -> Codebook:
    return load_yaml(path, Codebook, "the codebook (pass --codebook)")


def kept_path(folder: Path, name: str, version: str) -> Path:
    """Where the copy of a used codebook version is kept (in coding/codebooks/)."""
    return Path(folder) / f"{name}-v{version}.json"


def keep(codebook: Codebook, folder: Path) -> Path:
    """Keep a copy of this version in `folder` (coding/codebooks/), or check it is the copy already kept."""
    from codigit.home import atomic_write

    path = kept_path(folder, codebook.name, codebook.version)
    if path.exists():
        try:
            kept = Codebook.model_validate_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise CodigitError(f"{path}: the kept codebook is unreadable ({e}); restore it from a backup") from None
        if kept.sha256() != codebook.sha256():
            raise CodigitError(
                f"codebook {codebook.name} version {codebook.version} changed since a round used it ({path}): give "
                "it a new version, with a `history` entry on every code that was renamed, split or merged"
            )
        return path
    earlier = [
        c for c in kept_versions(folder, codebook.name) if _version_key(c.version) < _version_key(codebook.version)
    ]
    if earlier:
        follows(codebook, earlier[-1])
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, codebook.model_dump_json(indent=2) + "\n")
    return path


def kept_versions(folder: Path, name: str) -> list[Codebook]:
    """The versions of codebook `name` kept in `folder`, oldest first."""
    found = []
    for path in sorted(Path(folder).glob(f"{name}-v*.json")):
        try:
            found.append(Codebook.model_validate_json(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as e:
            raise CodigitError(f"{path}: the kept codebook is unreadable ({e}); restore it from a backup") from None
    return sorted(found, key=lambda c: _version_key(c.version))
