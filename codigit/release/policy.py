"""The release policy (`annotation/policy.yaml`) and what it says about one story's reviews."""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from codigit.errors import CodigitError
from codigit.records import Review, counted_reviews
from codigit.study import Study, load_yaml


class Card(BaseModel):
    """What the dataset card says that belongs to the study, not to codigit (markdown allowed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = Field(min_length=1)
    summary: str = Field(min_length=1)
    contact: str = Field(min_length=1)
    tags: list[str] = Field(min_length=1)  # the Hub's dataset tags
    motivation: str = Field(min_length=1)  # why the dataset was built
    uses: str = Field(min_length=1)  # what it is for, and not for
    text_characteristics: str = Field(min_length=1)  # what the texts are like


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_reviews: int = Field(ge=0)
    min_mean_rating: float = Field(ge=0)
    include_majority: bool
    revise_counts_as_include: bool = False
    blocking_flags: list[str] = []
    flag_min_reviewers: int = Field(default=1, ge=1)
    personal_data_flag: str = "personal_data"
    theme_min_share: float = Field(default=0.5, gt=0, le=1)
    test_fraction: float = Field(ge=0, lt=1)
    language: str = Field(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]+)*$")
    license: str = Field(min_length=1)
    required_approvals: int = Field(default=0, ge=0)
    # the smallest group of people any output counts or compares (card demographics, positionality)
    min_group_size: int = Field(ge=2)
    board: list[str] = []  # who may approve; governance, not selection: kept out of the release's hash (`hashed`)
    card: Card

    @field_validator("board")
    @classmethod
    def _distinct_names(cls, names: list[str]) -> list[str]:
        names = [n.strip() for n in names]
        if not all(names):
            raise ValueError("a board member's name is empty")
        if len({n.casefold() for n in names}) < len(names):
            raise ValueError("a name appears twice (names are compared ignoring case)")
        return names

    def hashed(self) -> dict:
        """The policy as a release records and hashes it. The board's names stay out: changing who sits on the
        board does not change what a release contains, and the public manifest must not list people."""
        return self.model_dump(mode="json", exclude={"board"})

    def board_member(self, name: str) -> str:
        """The board's own spelling of `name`; anyone else is a one-line error."""
        found = {n.casefold(): n for n in self.board}.get(name.strip().casefold())
        if found is None:
            if not self.board:
                raise CodigitError("the release policy lists no board: add the members' names under `board:`")
            raise CodigitError(f"{name.strip()!r} is not on the board in the release policy ({', '.join(self.board)})")
        return found


def load_policy(path: Path, study: Study | None = None) -> Policy:
    """The policy in `path`; with the study, also checked against it (`check_policy`)."""
    policy = load_yaml(path, Policy, "the release policy (pass --policy)")
    if study is not None:
        check_policy(policy, study, str(path))
    return policy


def check_policy(policy: Policy, study: Study, where: str = "the release policy") -> None:
    """Every value of the policy that names something of the study must name what is there: a misspelt blocking
    flag would block nothing, and the stories it was meant to stop would be released without a word."""
    questions = {q.name: q for q in study.review.questions}
    flags = questions["flags"].options()  # the study requires both questions (ReviewSpec)
    named = [("blocking_flags", f) for f in policy.blocking_flags] + [("personal_data_flag", policy.personal_data_flag)]
    for key, value in named:
        if value not in flags:
            close = difflib.get_close_matches(value, flags, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise CodigitError(
                f"{where}: {key}: {value!r} is not a flag of the study's review form{hint}; its flags: "
                + ", ".join(flags)
            )
    ratings = questions["rating"].values or []
    if ratings and policy.min_mean_rating > max(ratings):  # no story could ever reach it
        raise CodigitError(
            f"{where}: min_mean_rating: {policy.min_mean_rating} is above the review form's highest rating "
            f"({max(ratings)}); its ratings: {', '.join(map(str, ratings))}"
        )


@dataclass(frozen=True)
class Verdict:
    n_reviews: int
    mean_rating: float | None
    include: int
    revise: int
    exclude: int
    themes: list[str]
    flags: dict[str, int]
    rejected_because: str | None  # None: the policy accepts it
    personal_data_flagged: bool


def judge(reviews: list[Review], policy: Policy, withdrawn_flags: Mapping[str, int] | None = None) -> Verdict:
    """The policy's verdict on one story from its reviews (only those `counted_reviews` keeps). `withdrawn_flags`
    (flag -> reviewers) are flags on this text by reviewers who have since withdrawn: their reviews no longer
    count, but their flags still stop the story."""
    reviews = counted_reviews(reviews)
    n = len(reviews)
    decisions = {d: sum(r.decision == d for r in reviews) for d in ("include", "revise", "exclude")}
    mean = round(sum(r.rating for r in reviews) / n, 4) if n else None
    flags = Counter(withdrawn_flags or {})
    for r in reviews:
        flags.update(r.flags)
    themes: dict[str, int] = {}
    for r in reviews:
        for t in r.themes:
            themes[t] = themes.get(t, 0) + 1
    includes = decisions["include"] + (decisions["revise"] if policy.revise_counts_as_include else 0)
    reason = None
    if n < policy.min_reviews:
        reason = f"{n} reviews, policy needs {policy.min_reviews}"
    elif mean is not None and mean < policy.min_mean_rating:
        reason = f"mean rating {mean:.2f} below {policy.min_mean_rating}"
    elif policy.include_majority and not includes * 2 > n:
        reason = f"{includes} of {n} reviews say include"
    elif blocked := [f for f in policy.blocking_flags if flags.get(f, 0) >= policy.flag_min_reviewers]:
        reason = "flagged " + ", ".join(blocked)
    return Verdict(
        n_reviews=n,
        mean_rating=mean,
        themes=sorted(t for t, k in themes.items() if n and k / n >= policy.theme_min_share),
        flags=dict(sorted(flags.items())),
        rejected_because=reason,
        personal_data_flagged=flags.get(policy.personal_data_flag, 0) > 0,
        **decisions,
    )
