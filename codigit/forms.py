"""The study's forms on Argilla: the shared and organiser workspaces (`codigit init`) and each participant's own
workspace with their stories, consent and about-you forms (`codigit participants add`, refreshed by `init`).

Everything here is idempotent: it creates what is missing, adds records that are new (a new invitation, a new
consent version), updates guidelines, and never deletes or rewrites anything a participant answered.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from codigit.errors import CodigitError
from codigit.study import FieldSpec, QuestionSpec, Study

if TYPE_CHECKING:
    import argilla as rg

LEDGER_FIELDS = ("event", "participant", "at", "reason")


def question(spec: QuestionSpec):
    import argilla as rg

    common = {"name": spec.name, "title": spec.title, "description": spec.description, "required": spec.required}
    if spec.type == "text":
        return rg.TextQuestion(**common, use_markdown=spec.use_markdown)
    if spec.type == "label":
        return rg.LabelQuestion(**common, labels=spec.labels)
    if spec.type == "multi_label":
        return rg.MultiLabelQuestion(**common, labels=spec.labels)
    return rg.RatingQuestion(**common, values=spec.values)


def settings(
    fields: Iterable[FieldSpec], questions: Iterable[QuestionSpec], guidelines: str | None, min_submitted: int
) -> rg.Settings:
    import argilla as rg

    return rg.Settings(
        guidelines=guidelines,
        fields=[rg.TextField(name=f.name, title=f.title, use_markdown=f.use_markdown) for f in fields],
        questions=[question(q) for q in questions],
        distribution=rg.TaskDistribution(min_submitted=min_submitted),
    )


def story_questions(study: Study) -> list[QuestionSpec]:
    """The writing form's questions, each limited one saying its limit (from the study, in its words)."""
    note, spec = study.participant_words()["limit_note"], study.stories
    limits = {"prompt": spec.max_prompt_chars, "story": spec.max_story_chars}
    return [
        q.model_copy(update={"description": " ".join(filter(None, [q.description, note.format(limit=limits[q.name])]))})
        if q.name in limits
        else q
        for q in spec.questions
    ]


def ensure_workspace(client: rg.Argilla, name: str) -> tuple[rg.Workspace, bool]:
    import argilla as rg

    workspace = client.workspaces(name)
    if workspace is not None:
        return workspace, False
    return rg.Workspace(name=name, client=client).create(), True


def ensure_dataset(
    client: rg.Argilla, workspace: rg.Workspace, name: str, wanted: rg.Settings, records: list[dict]
) -> tuple[rg.Dataset, str]:
    """The dataset with these settings and at least these records (by id); returns it and what was done."""
    import argilla as rg

    dataset = client.datasets(name, workspace=workspace)
    done = []
    if dataset is None:
        dataset = rg.Dataset(name=name, workspace=workspace, settings=wanted, client=client).create()
        done.append("created")
    else:
        _check_compatible(dataset, wanted, workspace.name)
        if (dataset.settings.guidelines or "").strip() != (wanted.guidelines or "").strip():
            dataset.settings.guidelines = wanted.guidelines
            dataset.update()
            done.append("guidelines updated")
    existing = {r.id for r in dataset.records(with_responses=False)} if "created" not in done else set()
    new = [r for r in records if r["id"] not in existing]
    if new:
        log_records(dataset, new)
        done.append(f"{len(new)} records added")
    return dataset, f"{workspace.name}/{name}: {', '.join(done) or 'up to date'}"


def log_records(dataset: rg.Dataset, records: list[dict]) -> None:
    """`records.log` without the SDK's own progress bar: codigit's commands draw their own or none."""
    with contextlib.redirect_stderr(io.StringIO()):
        dataset.records.log(records)


def _check_compatible(dataset: rg.Dataset, wanted: rg.Settings, workspace: str) -> None:
    """Fields and questions of a dataset that already holds answers cannot change; say so instead of guessing."""
    want = {f.name for f in wanted.fields} | {q.name for q in wanted.questions}
    have = {f.name for f in dataset.settings.fields} | {q.name for q in dataset.settings.questions}
    if want != have:
        raise CodigitError(
            f"dataset {workspace}/{dataset.name} exists with fields/questions {sorted(have)}, but the study asks "
            f"for {sorted(want)}; Argilla cannot change them once created: rename the dataset in the study file"
        )


def ledger_settings() -> rg.Settings:
    fields = [FieldSpec(name=n) for n in LEDGER_FIELDS]
    # Argilla will not publish a dataset without a required question; nobody answers this one.
    note = QuestionSpec(name="note", type="text", required=True, title="Organiser note (not used)")
    return settings(fields, [note], "Append-only record of withdrawals, written by `codigit participants withdraw`.", 1)


def init_study(client: rg.Argilla, study: Study) -> Iterator[str]:
    """Create or bring up to date the workspaces, the ledger and every existing participant's forms."""
    texts = study.guidelines()
    for name in (study.workspace, study.organiser_workspace):
        _, created = ensure_workspace(client, name)
        yield f"{'created' if created else 'exists'}: workspace {name}"
    organisers = client.workspaces(study.organiser_workspace)
    yield ensure_dataset(client, organisers, study.ledger_dataset, ledger_settings(), [])[1]
    for user in participants(client):
        if client.workspaces(user.username) is not None:
            yield from private_forms(client, study, user, texts)


def participants(client: rg.Argilla) -> list[rg.User]:
    return [u for u in client.users if str(getattr(u.role, "value", u.role)) == "annotator"]


def private_forms(client: rg.Argilla, study: Study, user: rg.User, texts: dict[str, str] | None = None) -> list[str]:
    """The participant's own workspace (named by their pseudonym) with stories, consent and about-you."""
    texts = texts or study.guidelines()
    workspace, _ = ensure_workspace(client, user.username)
    members = {u.username for u in workspace.users}
    if others := sorted(members - {user.username}):  # organisers (owners) see every workspace without membership
        raise CodigitError(f"workspace {user.username} should be {user.username}'s alone, but has members {others}")
    if user.username not in members:
        user.add_to_workspace(workspace)
    s, c, p = study.stories, study.consent, study.positionality
    consent_field = FieldSpec(name="consent_text", title="Consent", use_markdown=True)
    about_field = FieldSpec(name="about", title="About these questions", use_markdown=True)
    forms = [
        (
            s.dataset,
            settings(s.fields, story_questions(study), texts["stories"], 1),
            [i.model_dump() for i in s.invitations],
        ),  # fmt: skip
        (
            c.dataset,
            settings([consent_field], c.questions, texts["consent"], 1),
            [{"id": f"consent-{c.version}", "consent_text": texts["consent"]}],
        ),
        (
            p.dataset,
            settings([about_field], p.questions, texts["positionality"], 1),
            [{"id": "about-you", "about": texts["positionality"]}],
        ),
    ]
    return [ensure_dataset(client, workspace, name, wanted, records)[1] for name, wanted, records in forms]
