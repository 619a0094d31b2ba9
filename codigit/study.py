"""The study configuration in `annotation/` and `codigit init`, which creates it on an Argilla server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from codigit.errors import CodigitError

if TYPE_CHECKING:
    import argilla as rg

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldSpec(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    title: str | None = None
    type: Literal["text"] = "text"
    use_markdown: bool = False
    required: bool = True


class QuestionSpec(FieldSpec):
    description: str | None = None


class Invitation(_Strict):
    id: str = Field(pattern=NAME_PATTERN)
    invitation: str = Field(min_length=1)


class AuthoringSpec(_Strict):
    dataset: str = Field(pattern=NAME_PATTERN)
    guidelines: Path
    min_submitted: int = Field(ge=1)
    fields: list[FieldSpec] = Field(min_length=1)
    questions: list[QuestionSpec] = Field(min_length=1)
    invitations: list[Invitation] = Field(min_length=1)

    @field_validator("invitations")
    @classmethod
    def _unique_ids(cls, invitations: list[Invitation]) -> list[Invitation]:
        ids = [i.id for i in invitations]
        if len(ids) != len(set(ids)):
            raise ValueError("invitation ids must be unique")
        return invitations


class Study(_Strict):
    workspace: str = Field(pattern=NAME_PATTERN)
    authoring: AuthoringSpec
    root: Path = Field(default=Path("."), exclude=True)

    def guidelines_text(self) -> str:
        return read_text(self.root / self.authoring.guidelines, "the guidelines (authoring.guidelines)")


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


def load_study(path: Path) -> Study:
    """Read and validate the study YAML; any problem is one CodigitError naming the file and the key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(read_text(path, "the study configuration (pass --study)"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise CodigitError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    if not isinstance(raw, dict):
        raise CodigitError(f"{path}: expected a mapping of keys at the top level")
    try:
        study = Study.model_validate({**raw, "root": path.parent})
    except ValidationError as e:
        # an unknown key is most often a misspelt known one: report it before the "missing" that follows from it
        err = sorted(e.errors(), key=lambda x: x["type"] != "extra_forbidden")[0]
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        raise CodigitError(f"{path}: {key}: {msg}") from None
    study.guidelines_text()
    return study


def _settings(study: Study) -> rg.Settings:
    import argilla as rg

    a = study.authoring
    return rg.Settings(
        guidelines=study.guidelines_text(),
        fields=[
            rg.TextField(name=f.name, title=f.title, use_markdown=f.use_markdown, required=f.required) for f in a.fields
        ],
        questions=[
            rg.TextQuestion(
                name=q.name, title=q.title, description=q.description, required=q.required, use_markdown=q.use_markdown
            )
            for q in a.questions
        ],
        distribution=rg.TaskDistribution(min_submitted=a.min_submitted),
    )


def init_study(client: rg.Argilla, study: Study) -> Iterator[str]:
    """Create or bring up to date the workspace, the authoring dataset and its invitations. Safe to rerun."""
    import argilla as rg

    workspace = client.workspaces(study.workspace)
    if workspace is None:
        workspace = rg.Workspace(name=study.workspace, client=client).create()
        yield f"created workspace {study.workspace}"
    else:
        yield f"workspace {study.workspace} exists"

    a = study.authoring
    dataset = client.datasets(a.dataset, workspace=workspace)
    if dataset is None:
        dataset = rg.Dataset(name=a.dataset, workspace=workspace, settings=_settings(study), client=client).create()
        yield f"created dataset {a.dataset}"
    else:
        _check_compatible(dataset, study)
        guidelines = study.guidelines_text()
        if (dataset.settings.guidelines or "").strip() != guidelines.strip():
            dataset.settings.guidelines = guidelines
            dataset.update()
            yield f"dataset {a.dataset} exists; updated its guidelines"
        else:
            yield f"dataset {a.dataset} exists"

    existing = {r.id for r in dataset.records(with_responses=False)}
    new = [{"id": i.id, "invitation": i.invitation} for i in a.invitations if i.id not in existing]
    if new:
        dataset.records.log(new)
    yield f"{len(new)} invitations added, {len(a.invitations) - len(new)} already there"


def _check_compatible(dataset: rg.Dataset, study: Study) -> None:
    """Fields and questions of a dataset that already holds answers cannot change; say so instead of guessing."""
    want = {f.name for f in study.authoring.fields} | {q.name for q in study.authoring.questions}
    have = {f.name for f in dataset.settings.fields} | {q.name for q in dataset.settings.questions}
    if want != have:
        raise CodigitError(
            f"dataset {dataset.name} exists with fields/questions {sorted(have)}, but the study asks for "
            f"{sorted(want)}; Argilla cannot change them once created: rename the dataset in the study file"
        )
