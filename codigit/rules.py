"""The study's rules for what counts: one definition, used when a participant presses Submit (the embedded server
refuses the answer) and again by `collect` (an answer that slipped past, e.g. through an external Argilla, is left
out and reported). Each broken rule has a name; the words for it are data: the organisers' in `ORGANISER` below,
the participants' in the study's texts (`rules.<name>` in annotation/participant-texts.yaml).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from codigit.study import ConsentSpec, ContributionsSpec, StoriesSpec

ORGANISER = {
    "prompt_empty": "empty prompt",
    "story_empty": "empty story",
    "prompt_too_long": "prompt has {chars} characters, more than the study's {limit}",
    "story_too_long": "story has {chars} characters, more than the study's {limit}",
    "public_without_training": "public release without fine-tuning: a public dataset can be used to train models",
    "credit_without_name": "asks to be credited but gives no name",
    "credit_without_public": "asks to be credited but not for public release: there is nothing public to credit",
    "name_too_long": "the name to credit has {chars} characters, more than {limit}",
    "title_empty": "a contributed text without a title",
    "title_too_long": "a title of {chars} characters, more than {limit}",
    "text_empty": "an empty contributed text",
    "text_too_long": "a contributed text of {chars} characters, more than the study's {limit}",
    "licence_unnamed": '"another open licence" without its name',
}
TITLE_LIMIT = 300  # characters: a title is a line, not a paragraph
OWN_WORK, OTHER_OPEN = "own_work", "other_open"  # the licence answers the code reads: own writing, a named licence


@dataclass(frozen=True)
class Broken:
    """A rule an answer breaks, with the figures its message needs."""

    rule: str
    values: dict[str, Any] = field(default_factory=dict)

    def organiser_message(self) -> str:
        return ORGANISER[self.rule].format(**self.values)


def clean_text(value: Any) -> str:
    """An answer as text: stripped, and with anything that is not valid Unicode (lone surrogates) replaced."""
    if not isinstance(value, str):
        return ""
    return value.encode("utf-8", "replace").decode("utf-8").strip()


def text_sha(prompt: str, story: str) -> str:
    """The identity of one version of a story: a review or flag counts only for the text it saw."""
    return hashlib.sha256(f"{prompt}\0{story}".encode()).hexdigest()


def story_rule(prompt: Any, story: Any, spec: StoriesSpec) -> Broken | None:
    """The first rule a prompt-story pair breaks, or None if it counts."""
    prompt, story = clean_text(prompt), clean_text(story)
    if not prompt:
        return Broken("prompt_empty")
    if not story:
        return Broken("story_empty")
    if len(prompt) > spec.max_prompt_chars:
        return Broken("prompt_too_long", {"chars": len(prompt), "limit": spec.max_prompt_chars})
    if len(story) > spec.max_story_chars:
        return Broken("story_too_long", {"chars": len(story), "limit": spec.max_story_chars})
    return None


def credit_name(values: dict[str, Any]) -> str:
    return " ".join(clean_text(values.get("attribution_name")).split())


def consent_rule(values: dict[str, Any], spec: ConsentSpec) -> Broken | None:
    """The first impossible combination in a consent answer ({question: value}), or None if it is valid."""
    training, public = values.get("training") == "yes", values.get("public") == "yes"
    attribution, name = values.get("attribution", "none"), credit_name(values)
    if public and not training:
        return Broken("public_without_training")
    if attribution == "name" and not name:
        return Broken("credit_without_name")
    if attribution == "name" and not public:
        return Broken("credit_without_public")
    if len(name) > spec.max_name_chars:
        return Broken("name_too_long", {"chars": len(name), "limit": spec.max_name_chars})
    return None


def contribution_rule(values: dict[str, Any], spec: ContributionsSpec) -> Broken | None:
    """The first rule a contributed text breaks ({question: value}), or None if it counts."""
    title, text = " ".join(clean_text(values.get("title")).split()), clean_text(values.get("text"))
    if not title:
        return Broken("title_empty")
    if len(title) > TITLE_LIMIT:
        return Broken("title_too_long", {"chars": len(title), "limit": TITLE_LIMIT})
    if not text:
        return Broken("text_empty")
    if len(text) > spec.max_text_chars:
        return Broken("text_too_long", {"chars": len(text), "limit": spec.max_text_chars})
    if values.get("licence") == OTHER_OPEN and not clean_text(values.get("licence_name")):
        return Broken("licence_unnamed")
    return None
