"""What every study file is made of: strict models, the question and field shapes, the participants' texts, and
reading a YAML file into a model with one-line errors. `study` (the study configuration) and `languages` (its
translations) are both built from these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError, model_validator

from codigit.errors import CodigitError

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
LANGUAGE_PATTERN = r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$"  # BCP 47, lowercase: en, es, pt-br
PREFER_NOT = "prefer_not_to_say"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldSpec(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    title: str | None = None
    use_markdown: bool = False


class QuestionSpec(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    type: Literal["text", "label", "multi_label", "rating"]
    title: str | None = None
    description: str | None = None
    required: bool = False
    use_markdown: bool = False
    labels: dict[str, str] | None = None  # value -> text shown; label and multi_label only
    values: list[int] | None = None  # rating only

    @model_validator(mode="after")
    def _options_match_type(self) -> QuestionSpec:
        if (self.labels is not None) != (self.type in ("label", "multi_label")):
            raise ValueError(f"question {self.name}: `labels` is for label and multi_label questions, and needed there")
        if (self.values is not None) != (self.type == "rating"):
            raise ValueError(f"question {self.name}: `values` is for rating questions, and needed there")
        return self

    def options(self) -> list[str]:
        return list(self.labels or {}) or [str(v) for v in self.values or []]


class ParticipantTexts(RootModel[dict[str, str]]):
    """Every text codigit's own pages and refusals show: each key must be there; none may be unknown."""

    @model_validator(mode="after")
    def _complete(self) -> ParticipantTexts:
        from codigit.rules import ORGANISER

        wanted = set(PAGE_KEYS) | {f"rules.{rule}" for rule in ORGANISER} | set(REVIEW_RULE_KEYS)
        if missing := sorted(wanted - set(self.root)):
            raise ValueError(f"missing text(s) {missing}")
        if unknown := sorted(set(self.root) - wanted):
            raise ValueError(f"unknown text(s) {unknown}")
        return self


REVIEW_RULE_KEYS = ("rules.own_story", "rules.own_text", "rules.round_closed", "rules.withdrawn", "rules.not_a_coder")
PAGE_KEYS = (
    "signed_in_as", "sign_out", "steps_title", "step_consent", "step_about", "step_stories", "step_reviews",
    "consent_none", "consent_given", "consent_invalid", "consent_again", "consent_save", "consent_saved",
    "consent_read", "about_done", "about_todo", "about_open", "stories_counts", "stories_write", "story_counts",
    "story_draft", "story_discarded", "story_no_consent", "story_broken", "reviews_none", "reviews_round",
    "reviews_closed", "reviews_open", "feedback_title", "feedback_none", "guidelines", "contact", "withdraw_title",
    "withdraw_text", "withdraw_button", "withdraw_confirm_title", "withdraw_confirm_text", "withdraw_reason",
    "withdraw_yes", "cancel", "withdrawn_text", "error", "home_link", "discard_title", "discard_text",
    "discard_yes", "draft_note", "limit_note", "language", "step_texts", "texts_counts", "texts_write",
    "reviews_texts_round", "reviews_texts_closed", "step_reviews_texts", "usecases_title", "usecases_intro",
    "usecases_none", "usecases_propose", "usecase_title", "usecase_who", "usecase_purpose", "usecase_not_for",
    "usecase_send", "usecase_sent", "usecase_proposed", "usecase_approved", "usecase_declined", "usecase_mine",
    "rules.usecase_empty", "rules.usecase_too_long",
)  # fmt: skip


def read_text(path: Path, what: str) -> str:
    """A UTF-8 file the user named; any problem reading it is a CodigitError naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CodigitError(f"{path}: {what} not found") from None
    except UnicodeDecodeError:
        raise CodigitError(f"{path}: not UTF-8 text") from None
    except OSError as e:
        raise CodigitError(f"{path}: cannot read {what} ({e.strerror or e})") from None


def _raw(path: Path, what: str, seen: tuple[Path, ...] = ()) -> dict:
    """A YAML file's mapping; with `extends`, another file of the same kind beside it (itself perhaps extending
    another): its keys, then this file's on top."""
    try:
        raw = yaml.safe_load(read_text(path, what))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise CodigitError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    if not isinstance(raw, dict):
        raise CodigitError(f"{path}: expected a mapping of keys at the top level")
    if "extends" not in raw:
        return raw
    base = path.parent / str(raw.pop("extends"))
    if base.resolve() in (path.resolve(), *seen):
        raise CodigitError(f"{path}: extends {base.name}, which extends it in turn")
    merged = _raw(base, what, (*seen, path.resolve()))
    for key, value in raw.items():
        _override(merged, key, value, path)
    return merged


def _override(merged: dict, key: str, value: Any, path: Path) -> None:
    """A key of an extending file replaces the base's key of that name; a dotted one (`stories.invitations`,
    `consent.questions.0.title`) replaces just that key or list item inside the base. A key that itself holds dots
    (`texts.rules.own_story`: the key `rules.own_story` in `texts`) is found whole before it is split."""
    parts, target = str(key).split("."), merged
    while True:
        rest = ".".join(parts)
        if isinstance(target, dict) and (rest in target or len(parts) == 1):
            target[rest] = value
            return
        if isinstance(target, list) and len(parts) == 1 and rest.isdigit() and int(rest) < len(target):
            target[int(rest)] = value
            return
        head = parts.pop(0)
        if isinstance(target, list) and head.isdigit() and int(head) < len(target):
            target = target[int(head)]
        elif isinstance(target, dict) and head in target:
            target = target[head]
        else:
            done = str(key)[: len(str(key)) - len(rest)] + head
            raise CodigitError(f"{path}: {key}: the extended file has no {done}")


def load_yaml(path: Path, model: type[BaseModel], what: str, **extra):
    """Read a YAML file into a pydantic model; any problem is one CodigitError naming the file and the key."""
    path = Path(path)
    raw = _raw(path, what)
    try:
        return model.model_validate({**raw, **extra})
    except ValidationError as e:
        # an unknown key is most often a misspelt known one: report it before the "missing" that follows from it,
        # and a wrong value before a missing key
        err = sorted(e.errors(), key=lambda x: (x["type"] != "extra_forbidden", x["type"] == "missing"))[0]
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        raise CodigitError(f"{path}: {key}: {msg}") from None
