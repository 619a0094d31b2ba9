"""The study configuration in `annotation/study.yaml`: typed, validated, with errors naming the file and the key.

Study content (texts, questions, labels) is data. The code only fixes the few names it acts on: the consent
scopes, the review questions that agreement and release policy read, and the positionality `use` question.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from codigit.rules import OTHER_OPEN, OWN_WORK
from codigit.specs import (
    LANGUAGE_PATTERN,
    NAME_PATTERN,
    PREFER_NOT,
    FieldSpec,
    ParticipantTexts,
    QuestionSpec,
    _Strict,
    load_yaml,
    read_text,
)
from codigit.usecases import UseCasesSpec


def _require(questions: list[QuestionSpec], wanted: dict[str, tuple[str, set[str] | None]], required=()) -> None:
    """The questions the code reads must exist with the right type (and, where it matters, option values)."""
    have = {q.name: q for q in questions}
    for name, (kind, options) in wanted.items():
        q = have.get(name)
        if q is None or q.type != kind:
            raise ValueError(f"needs a {kind} question named {name!r}")
        if name in required and not q.required:
            raise ValueError(f"question {name!r} must be required: true")
        if options is not None and set(q.options()) != options:
            raise ValueError(f"question {name!r} must have exactly the options {sorted(options)}")


def _unique(items: list, what: str) -> list:
    names = [getattr(i, "name", None) or i.id for i in items]
    if len(names) != len(set(names)):
        raise ValueError(f"{what} must have unique names")
    return items


class Invitation(_Strict):
    id: str = Field(pattern=NAME_PATTERN)
    invitation: str = Field(min_length=1)


class StoriesSpec(_Strict):
    """Each participant's writing desk, in their own workspace: one record per invitation, one pair per record."""

    dataset: str = Field(pattern=NAME_PATTERN)
    guidelines: Path
    fields: list[FieldSpec] = Field(min_length=1)
    questions: list[QuestionSpec] = Field(min_length=1)
    invitations: list[Invitation]  # none: a study that asks only for whole texts (`contributions`)
    max_prompt_chars: int = Field(ge=1)
    max_story_chars: int = Field(ge=1)

    @property
    def limits(self) -> dict[str, int]:
        """Question -> the most characters its answer may have."""
        return {"prompt": self.max_prompt_chars, "story": self.max_story_chars}

    @model_validator(mode="after")
    def _check(self) -> StoriesSpec:
        _unique(self.invitations, "invitations")
        if [f.name for f in self.fields] != ["invitation"]:
            raise ValueError("the stories dataset has one field, `invitation` (the text of each invitation)")
        _require(self.questions, {"prompt": ("text", None), "story": ("text", None)}, required={"prompt", "story"})
        return self


class TextReviewSpec(_Strict):
    """Peer review of the texts given through the form, in rounds beside the stories' (`codigit review open`): each
    text with its title, a decision whether it goes into the collection, flags and a comment. Texts an organiser
    imported from files are the organisers' responsibility and are not put to review."""

    dataset_prefix: str = Field(default="texts-review", pattern=NAME_PATTERN)
    guidelines: Path
    reviews_per_text: int = Field(default=2, ge=1)
    questions: list[QuestionSpec]

    @field_validator("questions")
    @classmethod
    def _known(cls, questions: list[QuestionSpec]) -> list[QuestionSpec]:
        _require(questions, {"decision": ("label", {"include", "exclude"}), "flags": ("multi_label", None)},
                 required={"decision"})  # fmt: skip
        if extra := sorted({q.name for q in questions} - {"decision", "flags", "comment"}):
            raise ValueError(f"unknown text review question(s) {extra}: snapshots read only decision, flags, comment")
        return _unique(questions, "text review questions")


class ContributionsSpec(_Strict):
    """Whole texts contributors give (for continued pretraining), in their own workspace beside their stories: one
    record per slot, one text per record, with its title, licence, the name to credit and whether it may be kept
    for future events."""

    dataset: str = Field(pattern=NAME_PATTERN)
    guidelines: Path
    invitation: str = Field(min_length=1)  # shown on every slot (markdown)
    slots: int = Field(default=5, ge=1, le=100)
    max_text_chars: int = Field(default=200_000, ge=1)  # a longer text is imported by an organiser from its file
    fields: list[FieldSpec] = Field(min_length=1)
    questions: list[QuestionSpec]
    review: TextReviewSpec | None = None  # None: texts go into a corpus release without peer review

    @model_validator(mode="after")
    def _check(self) -> ContributionsSpec:
        if [f.name for f in self.fields] != ["invitation"]:
            raise ValueError("the contributions dataset has one field, `invitation`")
        _require(self.questions, {"title": ("text", None), "text": ("text", None), "licence": ("label", None),
                                  "licence_name": ("text", None), "attribution_name": ("text", None),
                                  "keep": ("label", {"yes", "no"})},
                 required={"title", "text", "licence", "keep"})  # fmt: skip
        licences = set(next(q for q in self.questions if q.name == "licence").options())
        if not {OWN_WORK, OTHER_OPEN} <= licences:
            raise ValueError(f"question 'licence' needs the options {OWN_WORK!r} and {OTHER_OPEN!r}")
        _unique(self.questions, "contribution questions")
        return self

    @property
    def slot_ids(self) -> list[str]:
        return [f"text-{n}" for n in range(1, self.slots + 1)]


class ConsentSpec(_Strict):
    dataset: str = Field(pattern=NAME_PATTERN)
    version: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    text: Path
    questions: list[QuestionSpec]
    max_name_chars: int = Field(default=100, ge=1)

    @field_validator("questions")
    @classmethod
    def _scopes(cls, questions: list[QuestionSpec]) -> list[QuestionSpec]:
        yes_no = {"yes", "no"}
        _require(
            questions,
            {
                "training": ("label", yes_no),
                "public": ("label", yes_no),
                "attribution": ("label", {"none", "name"}),
                "attribution_name": ("text", None),
            },
            required={"training", "public", "attribution"},
        )
        return _unique(questions, "consent questions")


class PositionalitySpec(_Strict):
    dataset: str = Field(pattern=NAME_PATTERN)
    guidelines: Path
    questions: list[QuestionSpec]

    @field_validator("questions")
    @classmethod
    def _optional(cls, questions: list[QuestionSpec]) -> list[QuestionSpec]:
        _require(questions, {"use": ("label", {"yes", "no"})})
        for q in questions:
            if q.name != "use" and q.required:
                raise ValueError(f"question {q.name!r}: positionality questions are all optional (required: false)")
            if q.name != "use" and q.type in ("label", "multi_label") and PREFER_NOT not in (q.labels or {}):
                raise ValueError(f"question {q.name!r} needs a {PREFER_NOT!r} label")
        return _unique(questions, "positionality questions")


class ReviewSpec(_Strict):
    dataset_prefix: str = Field(pattern=NAME_PATTERN)
    guidelines: Path
    reviews_per_story: int = Field(default=3, ge=1)
    # after `codigit review close ROUND`, authors see the anonymous ratings, decisions and comments on their stories
    feedback_to_authors: bool = False
    questions: list[QuestionSpec]

    @field_validator("questions")
    @classmethod
    def _known(cls, questions: list[QuestionSpec]) -> list[QuestionSpec]:
        _require(
            questions,
            {
                "rating": ("rating", None),
                "decision": ("label", {"include", "revise", "exclude"}),
                "themes": ("multi_label", None),
                "flags": ("multi_label", None),
                "comment": ("text", None),
            },
            required={"rating", "decision"},
        )
        if extra := sorted({q.name for q in questions} - {"rating", "decision", "themes", "flags", "comment"}):
            raise ValueError(f"unknown review question(s) {extra}: snapshots and releases read only the five above")
        return _unique(questions, "review questions")


class Study(_Strict):
    title: str = Field(min_length=1, max_length=120)  # what participants see on sign-in and the study home
    description: str = Field(min_length=1, max_length=300)  # one line under the title
    contact: str = Field(min_length=3)  # how participants reach the organisers (shown on every study page)
    participant_texts: Path  # the words of codigit's pages and of refusals, in the study's own words
    language: str = Field(default="en", pattern=LANGUAGE_PATTERN)  # the language the study's files are written in
    language_name: str = Field(default="English", min_length=1)  # its own name, as the study home offers it
    translations: dict[str, Path] = {}  # language code -> a translation of what codigit shows (codigit.languages)
    workspace: str = Field(pattern=NAME_PATTERN)  # shared by everyone: review rounds
    organiser_workspace: str = Field(pattern=NAME_PATTERN)  # no participant is a member: the withdrawal ledger
    ledger_dataset: str = Field(pattern=NAME_PATTERN)
    # researchers' coding rounds (`codigit coding`): no participant is a member, and no coder is a participant
    research_workspace: str = Field(default="codigit-researchers", pattern=NAME_PATTERN)
    stories: StoriesSpec
    consent: ConsentSpec
    positionality: PositionalitySpec
    review: ReviewSpec
    contributions: ContributionsSpec | None = None  # whole texts, for continued pretraining (`codigit corpus`)
    use_cases: UseCasesSpec | None = None  # members propose uses of the model, the board decides (`codigit.usecases`)
    root: Path = Field(default=Path("."), exclude=True)

    @model_validator(mode="after")
    def _apart(self) -> Study:
        # names decide who can reach what: the ledger's workspace must never be the one every participant is in,
        # and each participant's own workspace holds the three private datasets side by side
        if self.research_workspace in (self.workspace, self.organiser_workspace):
            raise ValueError(f"research_workspace is {self.research_workspace!r}, the name of another study "
                             "workspace: researchers' coding rounds need a workspace of their own")  # fmt: skip
        if self.organiser_workspace == self.workspace:
            raise ValueError(
                f"organiser_workspace and workspace are both {self.workspace!r}: the withdrawal ledger would be "
                "readable by every participant; give the organisers a workspace of their own"
            )
        if not self.stories.invitations and self.contributions is None:
            raise ValueError("stories.invitations is empty and the study asks for no texts: participants would have "
                             "nothing to write; add an invitation or a `contributions` section")  # fmt: skip
        if self.contributions is not None and (texts := self.contributions.review) is not None:
            a, b = self.review.dataset_prefix + "-", texts.dataset_prefix + "-"
            if a.startswith(b) or b.startswith(a):  # a round's dataset name must say which kind of round it is
                raise ValueError(
                    f"contributions.review.dataset_prefix {texts.dataset_prefix!r} and "
                    f"review.dataset_prefix {self.review.dataset_prefix!r} must not start alike"
                )
        private = {"stories.dataset": self.stories.dataset, "consent.dataset": self.consent.dataset,
                   "positionality.dataset": self.positionality.dataset}  # fmt: skip
        if self.contributions is not None:
            private["contributions.dataset"] = self.contributions.dataset
        if len(set(private.values())) < len(private):
            same = ", ".join(f"{k}: {v}" for k, v in private.items())
            raise ValueError(f"each participant's datasets need different names ({same})")
        return self

    @field_validator("translations")
    @classmethod
    def _codes(cls, translations: dict[str, Path], info: ValidationInfo) -> dict[str, Path]:
        for code in translations:
            if not re.match(LANGUAGE_PATTERN, code):
                raise ValueError(f"{code!r} is not a language code (e.g. es, pt-br)")
            if code == info.data.get("language"):
                raise ValueError(f"{code!r} is the study's own language, not a translation")
        return translations

    def text(self, relative: Path, what: str) -> str:
        return read_text(self.root / relative, what)

    def review_round(self, dataset: str) -> tuple[str, str] | None:
        """For a review round's dataset (of stories, or of contributed texts): (the participants' own dataset its
        records copy, the round's name); None for any other dataset."""
        kinds = [(self.review.dataset_prefix, self.stories.dataset)]
        if self.contributions is not None and self.contributions.review is not None:
            kinds.append((self.contributions.review.dataset_prefix, self.contributions.dataset))
        for prefix, own in kinds:
            if dataset.startswith(prefix + "-"):
                return own, dataset[len(prefix) + 1 :]
        return None

    def guidelines(self) -> dict[str, str]:
        """Every markdown file the study names, read now so a missing one is reported before anything changes."""
        return {
            "stories": self.text(self.stories.guidelines, "the guidelines (stories.guidelines)"),
            "consent": self.text(self.consent.text, "the consent text (consent.text)"),
            "positionality": self.text(self.positionality.guidelines, "positionality.guidelines"),
            "review": self.text(self.review.guidelines, "the review guidelines (review.guidelines)"),
            **({"contributions": self.text(self.contributions.guidelines, "contributions.guidelines")}
               if self.contributions is not None else {}),
            **({"texts_review": self.text(self.contributions.review.guidelines, "contributions.review.guidelines")}
               if self.contributions is not None and self.contributions.review is not None else {}),
        }  # fmt: skip

    def participant_words(self) -> dict[str, str]:
        """The texts of participant_texts, every key the pages use present (a missing one names the key)."""
        path = self.root / self.participant_texts
        words = load_yaml(path, ParticipantTexts, "the participants' texts (participant_texts)")
        return words.model_dump()


def load_study(path: Path) -> Study:
    study = load_yaml(path, Study, "the study configuration (pass --study)", root=Path(path).parent)
    study.guidelines()
    study.participant_words()
    from codigit.languages import check_translations

    check_translations(study)
    return study
