"""Study files that extend others (`extends:`, dotted keys), and what a study asking for texts must say: each
mistake one line naming the file and the key."""

from __future__ import annotations

import shutil

import pytest
from conftest import REPO

from codigit.errors import CodigitError
from codigit.languages import localise, shared_review_form
from codigit.study import load_study


@pytest.fixture
def annotation(tmp_path):
    folder = tmp_path / "annotation"
    shutil.copytree(REPO / "annotation", folder)
    return folder


def write(folder, name: str, text: str):
    (folder / name).write_text(text, encoding="utf-8")
    return folder / name


def test_a_chain_of_extends_with_a_dotted_key_replaces_only_that_key(annotation):
    study = load_study(write(annotation, "only.yaml", "extends: texts-only-study.yaml\ntitle: Only texts, again\n"))
    assert study.title == "Only texts, again" and study.stories.invitations == []
    assert study.stories.max_story_chars == load_study(annotation / "study.yaml").stories.max_story_chars
    assert study.contributions.review.reviews_per_text == 2  # from texts-study.yaml, two files up
    assert study.consent.questions[0].title.startswith("May what you give")  # a list item, replaced by index
    assert study.consent.questions[0].labels == {"yes": "Yes", "no": "No"}  # the rest of the item stays
    assert localise(study, "es").invitations == {}  # the shared translation's invitations are not offered


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"a.yaml": "extends: b.yaml\n", "b.yaml": "extends: a.yaml\n"}, "b.yaml: extends a.yaml, which extends it"),
        ({"a.yaml": "extends: a.yaml\n"}, "a.yaml: extends a.yaml, which extends it"),
        (
            {"a.yaml": "extends: study.yaml\nnothing.here: 1\n"},
            "a.yaml: nothing.here: the extended file has no nothing",
        ),  # fmt: skip
        (
            {"a.yaml": "extends: study.yaml\nconsent.questions.9.title: x\n"},
            "a.yaml: consent.questions.9.title: the extended file has no consent.questions.9",
        ),
        (
            {"a.yaml": "extends: study.yaml\nstories.invitations: []\n"},
            "stories.invitations is empty and the study asks for no texts",
        ),  # fmt: skip
        (
            {"a.yaml": "extends: texts-study.yaml\ncontributions.review.dataset_prefix: review-texts\n"},
            "must not start alike",
        ),
        (
            {"a.yaml": "extends: texts-study.yaml\ncontributions.review.questions: []\n"},
            "needs a label question named 'decision'",
        ),
    ],
    ids=["cycle", "itself", "no-section", "no-item", "nothing-to-write", "prefix-clash", "no-decision"],
)
def test_bad_study_files_are_one_line_each(annotation, files, message):
    for name, text in files.items():
        write(annotation, name, text)
    with pytest.raises(CodigitError) as caught:
        load_study(annotation / "a.yaml")
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_translation_must_word_the_text_review_form(annotation):
    es = annotation / "translations" / "es-texts.yaml"
    text = es.read_text(encoding="utf-8")
    es.write_text(text[: text.index("  review:\n    guidelines: texts-review.es.md")], encoding="utf-8")
    with pytest.raises(CodigitError, match="forms.contributions.review is missing"):
        load_study(annotation / "texts-study.yaml")
    load_study(annotation / "study.yaml")  # a study without texts does not need it


def test_the_text_review_form_shows_every_study_language():
    fields, questions, guidelines = shared_review_form(load_study(REPO / "annotation" / "texts-study.yaml"), True)
    assert fields == {"title": "Title / Título", "text": "Text / Texto"}
    assert {q.name: q.labels for q in questions}["decision"] == {"include": "Include it / Incluirlo",
                                                                 "exclude": "Leave it out / Dejarlo fuera"}  # fmt: skip
    assert "# Reviewing the community's texts" in guidelines and "# Revisar los textos de la comunidad" in guidelines
