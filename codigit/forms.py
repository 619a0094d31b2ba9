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
from codigit.languages import Localised, choose, every_language, localise
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
    # private: listed in codigit/upstream.py
    if dataset is not None and dataset._model.status != "ready":
        # A create cut short (Ctrl-C) leaves a draft: fields or questions missing, unpublished, unusable. Argilla
        # takes no records before publishing, so it holds nothing to keep: make it again, whole.
        dataset.delete()
        dataset = None
        done.append("half-made by an interrupted run")
    if dataset is None:
        dataset = rg.Dataset(name=name, workspace=workspace, settings=wanted, client=client).create()
        done.append("created")
        existing = set()
    else:
        _check_compatible(dataset, wanted, workspace.name)
        if (dataset.settings.guidelines or "").strip() != (wanted.guidelines or "").strip():
            dataset.settings.guidelines = wanted.guidelines
            dataset.update()
            done.append("guidelines updated")
        existing = {r.id for r in dataset.records(with_responses=False)}
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


def init_study(client: rg.Argilla, study: Study, chosen: dict[str, str] | None = None) -> Iterator[str]:
    """Create or bring up to date the workspaces, the ledger and every existing participant's forms (in the
    language each chose on the study home, `chosen`: participant -> language)."""
    texts, shown = study.guidelines(), every_language(study)
    for name in (study.workspace, study.organiser_workspace):
        _, created = ensure_workspace(client, name)
        yield f"{'created' if created else 'exists'}: workspace {name}"
    organisers = client.workspaces(study.organiser_workspace)
    yield ensure_dataset(client, organisers, study.ledger_dataset, ledger_settings(), [])[1]
    for user in participants(client):
        if client.workspaces(user.username) is not None:
            language = choose(study, (chosen or {}).get(user.username))
            yield from private_forms(client, study, user, texts, shown[language])


def privacy_check(client: rg.Argilla, study: Study) -> list[str]:
    """What `init` states about who can reach what, read back from the server; a participant who can reach
    another's forms or the organisers' ledger is an error naming them (a hand-made membership, say)."""
    annotators = {u.username for u in participants(client)}  # researchers too: none may read the ledger
    people = participant_names(client, study)
    organisers = client.workspaces(study.organiser_workspace)
    inside = sorted(annotators & {u.username for u in organisers.users})
    if inside:
        raise CodigitError(f"participant(s) {', '.join(inside)} are members of {study.organiser_workspace}, where "
                           "the withdrawal ledger is: remove them from that workspace, then rerun `init`")  # fmt: skip
    research = client.workspaces(study.research_workspace)
    researchers = {u.username for u in research.users} if research is not None else set()
    if inside := sorted(people & researchers):
        raise CodigitError(f"participant(s) {', '.join(inside)} are members of {study.research_workspace}, where "
                           "researchers code stories: remove them from that workspace, then rerun `init`")  # fmt: skip
    shared = client.workspaces(study.workspace)
    others = sorted(d.name for d in shared.datasets if not d.name.startswith(study.review.dataset_prefix + "-"))
    crossing = sorted(
        f"{u.username} in {name}" for name in people if (w := client.workspaces(name)) is not None
        for u in w.users if u.username in annotators and u.username != name
    )  # fmt: skip
    if crossing:
        raise CodigitError(f"participants in another's own workspace ({'; '.join(crossing[:5])}): remove them")
    return [
        f"privacy: the withdrawal ledger is in {study.organiser_workspace}, which no participant joins",
        f"privacy: {len(people)} participant(s), each the only participant in their own workspace (stories, consent, "
        "about-you answers)",
        f"privacy: the shared workspace {study.workspace} holds review rounds"
        + (f" and also {', '.join(others)}: every participant can read those" if others else " only"),
        f"privacy: {len(researchers)} researcher(s) code stories in {study.research_workspace}, which no participant "
        "joins; they see no positionality answers",
    ]


def participants(client: rg.Argilla) -> list[rg.User]:
    return [u for u in client.users if str(getattr(u.role, "value", u.role)) == "annotator"]


def participant_names(client: rg.Argilla, study: Study) -> set[str]:
    """Annotators who are participants: members of the shared study workspace, or with a workspace of their own
    (researchers who code stories are annotators too, in the research workspace only)."""
    shared = client.workspaces(study.workspace)
    members = {u.username for u in shared.users} if shared is not None else set()
    workspaces = {w.name for w in client.workspaces}
    return {u.username for u in participants(client) if u.username in members or u.username in workspaces}


def private_forms(
    client: rg.Argilla, study: Study, user: rg.User, texts: dict[str, str] | None = None, shown: Localised | None = None
) -> list[str]:
    """The participant's own workspace (named by their pseudonym) with stories, consent and about-you; the writing
    and about-you forms in the language of `shown` (else the study's), their words brought up to date if they
    exist."""
    texts = texts or study.guidelines()
    shown = shown or localise(study)
    workspace, _ = ensure_workspace(client, user.username)
    members = {u.username for u in workspace.users}
    if others := sorted(members - {user.username}):  # organisers (owners) see every workspace without membership
        raise CodigitError(f"workspace {user.username} should be {user.username}'s alone, but has members {others}")
    if user.username not in members:
        user.add_to_workspace(workspace)
    s, c, p = study.stories, study.consent, study.positionality
    consent_field = FieldSpec(name="consent_text", title="Consent", use_markdown=True)
    about_field = FieldSpec(name="about", title=shown.about_fields["about"], use_markdown=True)
    story_fields = [f.model_copy(update={"title": shown.story_fields[f.name]}) for f in s.fields]
    invitations = [{"id": i, "invitation": text} for i, text in shown.invitations.items()]
    forms = [
        *([(s.dataset, story_fields, shown.story_questions, shown.guidelines, invitations)] if invitations else []),
        (c.dataset, [consent_field], c.questions, texts["consent"],
         [{"id": f"consent-{c.version}", "consent_text": texts["consent"]}]),
        (p.dataset, [about_field], shown.about_questions, shown.about_guidelines,
         [{"id": "about-you", "about": shown.about_guidelines}]),
    ]  # fmt: skip
    if (contributions := shown.contributions) is not None:  # a study that asks for whole texts too
        spec = study.contributions
        slots = [{"id": slot, "invitation": contributions.invitation} for slot in spec.slot_ids]
        fields = [FieldSpec(name=n, title=t_, use_markdown=True) for n, t_ in contributions.fields.items()]
        forms.append((spec.dataset, fields, contributions.questions, contributions.guidelines, slots))
    done = []
    for name, fields, questions, guidelines, records in forms:
        dataset, line = ensure_dataset(client, workspace, name, settings(fields, questions, guidelines, 1), records)
        if name != c.dataset:  # consent is given on the study home, in the participant's language
            line += sync_words(client, dataset, fields, questions, records)
        done.append(line)
    return done


def sync_words(
    client: rg.Argilla, dataset: rg.Dataset, fields: list[FieldSpec], questions: list[QuestionSpec], records: list[dict]
) -> str:
    """Bring an existing form's words up to date: field and question titles, descriptions, option texts, and the
    text fields of its records (by id). Answers are untouched: names, types and option values never change here."""
    http, changed = client.api.http_client, 0
    titles = {f.name: f.title or f.name for f in fields}
    for f in http.get(f"/api/v1/datasets/{dataset.id}/fields").raise_for_status().json()["items"]:
        if f["name"] in titles and f["title"] != titles[f["name"]]:
            http.patch(f"/api/v1/fields/{f['id']}", json={"title": titles[f["name"]]}).raise_for_status()
            changed += 1
    wanted = {q.name: q for q in questions}
    for q in http.get(f"/api/v1/datasets/{dataset.id}/questions").raise_for_status().json()["items"]:
        if (want := wanted.get(q["name"])) is None:
            continue
        now = {"title": q["title"], "description": q["description"]}
        update = {"title": want.title or want.name, "description": want.description}
        if want.labels and (options := q["settings"].get("options")):
            now["settings"] = {"type": q["settings"]["type"], "options": options}
            update["settings"] = {"type": q["settings"]["type"], "options": [
                {**o, "text": want.labels.get(o["value"], o["text"])} for o in options]}  # fmt: skip
        if update != now:
            http.patch(f"/api/v1/questions/{q['id']}", json=update).raise_for_status()
            changed += 1
    texts = {r["id"]: {k: v for k, v in r.items() if k != "id"} for r in records}
    for record in dataset.records(with_responses=False):
        want = texts.get(record.id)
        if want and any(record.fields.get(k) != v for k, v in want.items()):
            # private: listed in codigit/upstream.py
            http.patch(f"/api/v1/records/{record._server_id}", json={"fields": want}).raise_for_status()
            changed += 1
    return f", {changed} texts updated" if changed else ""


def responses_in(client: rg.Argilla, dataset: rg.Dataset) -> list[dict]:
    """Every response in a dataset, with its id, record (and its external id) and user: the owner's view."""
    http, found, offset = client.api.http_client, [], 0
    while True:
        page = http.get(f"/api/v1/datasets/{dataset.id}/records", params={"include": "responses", "offset": offset,
                        "limit": 1000}).raise_for_status().json()  # fmt: skip
        for record in page["items"]:
            found += [{**r, "external_id": record["external_id"]} for r in record.get("responses") or []]
        offset += len(page["items"])
        if not page["items"] or offset >= page["total"]:
            return found


def withdrawn_people(client: rg.Argilla, study: Study) -> set[str]:
    """Pseudonyms the withdrawal ledger names (read from the server)."""
    workspace = client.workspaces(study.organiser_workspace)
    ledger = workspace and client.datasets(study.ledger_dataset, workspace=workspace)
    if not ledger:
        return set()
    return {r.fields.get("participant") for r in ledger.records(with_responses=False)
            if r.fields.get("event") == "withdrawal"}  # fmt: skip
