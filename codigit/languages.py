"""The study in the participant's language, one file per language named in `translations:` of the study file:
what codigit shows itself (sign-in words, the study home, consent on the study home, the guidelines, the server's
refusals) and the participant's own Argilla forms (writing, about-you: titles, descriptions, options, guidelines,
the writing invitations). A translation must be complete: every text, question, option and invitation.

The review form is one form shared by everyone in a round: it shows each of its words in every study language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from codigit.errors import CodigitError
from codigit.specs import ParticipantTexts, QuestionSpec, _Strict, load_yaml, read_text

if TYPE_CHECKING:
    from codigit.study import Study

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


class QuestionWords(_Strict):
    title: str = Field(min_length=1)
    description: str | None = None
    labels: dict[str, str] | None = None


class FormWords(_Strict):
    fields: dict[str, str]  # field name -> title
    questions: dict[str, QuestionWords]


class StoryFormWords(FormWords):
    invitations: dict[str, str]  # invitation id -> its text (markdown)


class GuidedFormWords(FormWords):
    guidelines: Path


class ContributionFormWords(GuidedFormWords):
    invitation: str = Field(min_length=1)  # shown on every slot
    review: GuidedFormWords | None = None  # needed when the study's texts are peer reviewed


class FormsWords(_Strict):
    stories: StoryFormWords
    positionality: GuidedFormWords
    review: GuidedFormWords
    contributions: ContributionFormWords | None = None  # needed when the study asks for texts


class Translation(_Strict):
    name: str = Field(min_length=1)  # the language's own name, as the study home offers it ("Español")
    title: str = Field(min_length=1, max_length=120)
    description: str = Field(min_length=1, max_length=300)
    contact: str = Field(min_length=3)
    consent_text: Path
    guidelines: Path
    consent_questions: dict[str, QuestionWords]
    texts: ParticipantTexts
    forms: FormsWords


@dataclass(frozen=True)
class Localised:
    """Everything codigit itself shows participants, in one language."""

    language: str
    name: str  # the language's own name
    title: str
    description: str
    contact: str
    texts: dict[str, str]
    consent_questions: list[QuestionSpec]
    consent_text: str
    guidelines: str
    story_fields: dict[str, str]  # the participant's own forms, in this language: field titles,
    story_questions: list[QuestionSpec]  # questions (with their limits), the writing invitations,
    invitations: dict[str, str]
    about_fields: dict[str, str]  # and the about-you form
    about_questions: list[QuestionSpec]
    about_guidelines: str
    review_fields: dict[str, str]  # the review form (shared: see shared_review_form)
    review_questions: list[QuestionSpec]
    review_guidelines: str
    contributions: ContributionWords | None = None  # when the study asks for whole texts


@dataclass(frozen=True)
class ContributionWords:
    """The contributions form in one language."""

    fields: dict[str, str]
    questions: list[QuestionSpec]
    guidelines: str
    invitation: str
    review: tuple[dict[str, str], list[QuestionSpec], str] | None = None  # the text review form: fields, questions,
    # guidelines (shared by everyone in a round: see shared_review_form)


def choose(study: Study, wanted: str | None) -> str:
    """The study language closest to what the participant asked for ("es-MX" -> "es"), else the study's own."""
    wanted = (wanted or "").lower()
    for code in (wanted, wanted.split("-")[0]):
        if code == study.language or code in study.translations:
            return code
    return study.language


def every_language(study: Study) -> dict[str, Localised]:
    """What the study shows participants in each of its languages, its own first (each file read once)."""
    return {code: localise(study, code) for code in (study.language, *study.translations)}


def localise(study: Study, language: str | None = None) -> Localised:
    language = choose(study, language)
    s, p = study.stories, study.positionality
    if language == study.language:
        texts, words = study.guidelines(), study.participant_words()
        return Localised(
            language, study.language_name, study.title, study.description, study.contact, words,
            list(study.consent.questions), texts["consent"], texts["stories"], {f.name: f.title or f.name for f in
            s.fields}, _with_limits(s.questions, study, words), {i.id: i.invitation for i in s.invitations},
            {"about": ABOUT_FIELD}, list(p.questions), texts["positionality"], dict(REVIEW_FIELDS),
            list(study.review.questions), texts["review"], _contributions(study, words),
        )  # fmt: skip
    path = study.root / study.translations[language]
    t = _translation(study, language, study.translations[language])
    return Localised(
        language, t.name, t.title, t.description, t.contact, t.texts.root,
        _worded(study.consent.questions, t.consent_questions),
        read_text(path.parent / t.consent_text, f"the consent text of {path}"),
        read_text(path.parent / t.guidelines, f"the guidelines of {path}"),
        t.forms.stories.fields, _with_limits(_worded(s.questions, t.forms.stories.questions), study, t.texts.root),
        t.forms.stories.invitations if s.invitations else {}, t.forms.positionality.fields,
        _worded(p.questions, t.forms.positionality.questions),
        read_text(path.parent / t.forms.positionality.guidelines, f"the about-you guidelines of {path}"),
        t.forms.review.fields, _worded(study.review.questions, t.forms.review.questions),
        read_text(path.parent / t.forms.review.guidelines, f"the review guidelines of {path}"),
        _contributions(study, t.texts.root, t.forms.contributions, path),
    )  # fmt: skip


def _contributions(study: Study, texts: dict[str, str], words: ContributionFormWords | None = None,
                   path: Path | None = None) -> ContributionWords | None:  # fmt: skip
    """The contributions form in the study's language (no `words`), or in a translation's."""
    c = study.contributions
    if c is None:
        return None
    note = texts["limit_note"].format(limit=c.max_text_chars)
    worded = c.questions if words is None else _worded(c.questions, words.questions)
    questions = [q.model_copy(update={"description": " ".join(filter(None, [q.description, note]))})
                 if q.name == "text" else q for q in worded]  # fmt: skip
    if words is None:
        guides = study.guidelines()
        review = (dict(TEXT_REVIEW_FIELDS), list(c.review.questions), guides["texts_review"]) if c.review else None
        return ContributionWords({f.name: f.title or f.name for f in c.fields}, questions, guides["contributions"],
                                 c.invitation, review)  # fmt: skip
    guidelines = read_text(path.parent / words.guidelines, f"the contributions guidelines of {path}")
    review = None
    if c.review is not None and words.review is not None:  # (a translation without it is refused at loading)
        read = read_text(path.parent / words.review.guidelines, f"the text review guidelines of {path}")
        review = (words.review.fields, _worded(c.review.questions, words.review.questions), read)
    return ContributionWords(words.fields, questions, guidelines, words.invitation, review)


def shared_review_form(study: Study, texts: bool = False) -> tuple[dict[str, str], list[QuestionSpec], str]:
    """The review form's field titles, questions and guidelines with every word in every study language, the study's
    own first ("Include / Incluir"): a review round is one form for everyone, whatever language each chose.
    `texts`: the form of the contributed texts' rounds instead of the stories'."""
    shown = [
        s.contributions.review if texts else (s.review_fields, s.review_questions, s.review_guidelines)
        for s in every_language(study).values()
    ]

    def joined(texts) -> str | None:
        texts = list(dict.fromkeys(t for t in texts if t))  # in order, once each
        return " / ".join(texts) or None

    fields = {name: joined(s[0][name] for s in shown) for name in (TEXT_REVIEW_FIELDS if texts else REVIEW_FIELDS)}
    questions = []
    for i, q in enumerate(study.contributions.review.questions if texts else study.review.questions):
        each = [s[1][i] for s in shown]
        labels = {v: joined((e.labels or {})[v] for e in each) for v in q.labels or {}} or None
        words = {"title": joined(e.title for e in each), "description": joined(e.description for e in each)}
        questions.append(q.model_copy(update={**words, "labels": labels}))
    return fields, questions, "\n\n---\n\n".join(s[2] for s in shown)


ABOUT_FIELD = "About these questions"  # the about-you form's one field, in the study's own language
REVIEW_FIELDS = {"prompt": "Prompt", "story": "Story"}  # the review form's two fields, likewise
TEXT_REVIEW_FIELDS = {"title": "Title", "text": "Text"}  # and the text review form's


def _worded(questions: list[QuestionSpec], words: dict[str, QuestionWords]) -> list[QuestionSpec]:
    return [q.model_copy(update=words[q.name].model_dump(exclude_none=True)) for q in questions]


def _with_limits(questions: list[QuestionSpec], study: Study, texts: dict[str, str]) -> list[QuestionSpec]:
    """The writing form's questions, each limited one saying its limit in the study's words."""
    limits, note = study.stories.limits, texts["limit_note"]
    return [
        q.model_copy(update={"description": " ".join(filter(None, [q.description, note.format(limit=limits[q.name])]))})
        if q.name in limits
        else q
        for q in questions
    ]


def check_translations(study: Study) -> None:
    """Load every translation now, so a missing text or label is an error at `init`, naming the file."""
    every_language(study)


def _complete(path: Path, where: str, questions: list[QuestionSpec], words: dict[str, QuestionWords]) -> None:
    wanted = {q.name: q for q in questions}
    if set(words) != set(wanted):
        raise CodigitError(f"{path}: {where} must translate exactly {sorted(wanted)}")
    for name, given in words.items():
        if set(given.labels or {}) != set(wanted[name].labels or {}):
            raise CodigitError(f"{path}: {where}.{name}.labels must translate exactly "
                               f"{sorted(wanted[name].labels or {})}")  # fmt: skip


def _translation(study: Study, code: str, relative: Path) -> Translation:
    path = study.root / relative
    t = load_yaml(path, Translation, f"the {code} translation (translations.{code})")
    for where, questions, words in [
        ("consent_questions", study.consent.questions, t.consent_questions),
        ("forms.stories.questions", study.stories.questions, t.forms.stories.questions),
        ("forms.positionality.questions", study.positionality.questions, t.forms.positionality.questions),
        ("forms.review.questions", study.review.questions, t.forms.review.questions),
    ]:
        _complete(path, where, questions, words)
    if study.contributions is not None:
        if t.forms.contributions is None:
            raise CodigitError(f"{path}: forms.contributions is missing: the study asks for texts")
        _complete(path, "forms.contributions.questions", study.contributions.questions,
                  t.forms.contributions.questions)  # fmt: skip
        if set(t.forms.contributions.fields) != {"invitation"}:
            raise CodigitError(f"{path}: forms.contributions.fields must translate exactly ['invitation']")
        if (review := study.contributions.review) is not None:
            if (words := t.forms.contributions.review) is None:
                raise CodigitError(f"{path}: forms.contributions.review is missing: the study's texts are reviewed")
            _complete(path, "forms.contributions.review.questions", review.questions, words.questions)
            if set(words.fields) != set(TEXT_REVIEW_FIELDS):
                raise CodigitError(f"{path}: forms.contributions.review.fields must translate exactly "
                                   f"{sorted(TEXT_REVIEW_FIELDS)}")  # fmt: skip
    for where, wanted, given in [
        ("forms.stories.fields", {f.name for f in study.stories.fields}, t.forms.stories.fields),
        # a study asking only for texts (no invitations) may share a translation written for one with stories
        (
            "forms.stories.invitations",
            {i.id for i in study.stories.invitations},
            t.forms.stories.invitations if study.stories.invitations else (),
        ),
        ("forms.positionality.fields", {"about"}, t.forms.positionality.fields),
        ("forms.review.fields", set(REVIEW_FIELDS), t.forms.review.fields),
    ]:
        if set(given) != wanted:
            raise CodigitError(f"{path}: {where} must translate exactly {sorted(wanted)}")
    for key, text in study.participant_words().items():  # codigit fills these in: a renamed one would fail later
        if sorted(_PLACEHOLDER.findall(text)) != sorted(_PLACEHOLDER.findall(t.texts.root[key])):
            raise CodigitError(f"{path}: texts.{key} must keep the placeholders {_PLACEHOLDER.findall(text)}")
    return t
