"""The study in the participant's language: what codigit shows itself (sign-in words, the study home, consent on
the study home, the guidelines there, and the server's refusals) can be translated, one file per language named in
`translations:` of the study file. A translation must be complete: every text, every consent question and label.

Argilla's own forms (writing, about-you, review) are created once, in the study's language: a review round is one
form shared by everyone, so it cannot show each person their own language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from codigit.errors import CodigitError
from codigit.study import ParticipantTexts, QuestionSpec, Study, _Strict, load_yaml, read_text

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


class QuestionWords(_Strict):
    title: str = Field(min_length=1)
    description: str | None = None
    labels: dict[str, str] | None = None


class Translation(_Strict):
    name: str = Field(min_length=1)  # the language's own name, as the study home offers it ("Español")
    title: str = Field(min_length=1, max_length=120)
    description: str = Field(min_length=1, max_length=300)
    contact: str = Field(min_length=3)
    consent_text: Path
    guidelines: Path
    consent_questions: dict[str, QuestionWords]
    texts: ParticipantTexts


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


def choose(study: Study, wanted: str | None) -> str:
    """The study language closest to what the participant asked for ("es-MX" -> "es"), else the study's own."""
    wanted = (wanted or "").lower()
    for code in (wanted, wanted.split("-")[0]):
        if code == study.language or code in study.translations:
            return code
    return study.language


def localise(study: Study, language: str | None = None) -> Localised:
    language = choose(study, language)
    texts = study.guidelines()
    if language == study.language:
        return Localised(language, study.language_name, study.title, study.description, study.contact,
                         study.participant_words(), list(study.consent.questions), texts["consent"],
                         texts["stories"])  # fmt: skip
    path = study.root / study.translations[language]
    t = _translation(study, language, study.translations[language])
    questions = [
        q.model_copy(update=t.consent_questions[q.name].model_dump(exclude_none=True)) for q in study.consent.questions
    ]
    return Localised(
        language, t.name, t.title, t.description, t.contact, t.texts.root, questions,
        read_text(path.parent / t.consent_text, f"the consent text of {path}"),
        read_text(path.parent / t.guidelines, f"the guidelines of {path}"),
    )  # fmt: skip


def check_translations(study: Study) -> None:
    """Load every translation now, so a missing text or label is an error at `init`, naming the file."""
    for code in study.translations:
        localise(study, code)


def _translation(study: Study, code: str, relative: Path) -> Translation:
    path = study.root / relative
    t = load_yaml(path, Translation, f"the {code} translation (translations.{code})")
    wanted = {q.name: q for q in study.consent.questions}
    if set(t.consent_questions) != set(wanted):
        raise CodigitError(f"{path}: consent_questions must translate exactly {sorted(wanted)}")
    for name, words in t.consent_questions.items():
        if set(words.labels or {}) != set(wanted[name].labels or {}):
            raise CodigitError(f"{path}: consent_questions.{name}.labels must translate exactly "
                               f"{sorted(wanted[name].labels or {})}")  # fmt: skip
    for key, text in study.participant_words().items():  # codigit fills these in: a renamed one would fail later
        if sorted(_PLACEHOLDER.findall(text)) != sorted(_PLACEHOLDER.findall(t.texts.root[key])):
            raise CodigitError(f"{path}: texts.{key} must keep the placeholders {_PLACEHOLDER.findall(text)}")
    return t
