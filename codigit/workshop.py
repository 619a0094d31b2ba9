"""The demo's simulated workshop: invented participants and their pairs (annotation/demo/), checked against the
study, and a small workshop played with them on a server through the endpoints the annotation UI calls.

Everything is synthetic. Reviewers answer by the pair's intended quality, their own leniency and some noise, each
drawn from a hash of (seed, reviewer, prompt), so that reruns of the demo review alike.
"""

from __future__ import annotations

import hashlib
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from codigit.errors import CodigitError
from codigit.release.policy import Card
from codigit.study import Study, load_yaml

if TYPE_CHECKING:
    from codigit.demo_parts import Steps

ROUND = "1"


class DemoPerson(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(pattern=r"^demo-\d\d$")
    consent: dict[str, str] | None = None
    about_you: dict[str, str | list[str]] | None = None
    leniency: float = Field(default=0.0, ge=-2, le=2)
    reviews_own: bool = False
    withdraws: bool = False


class DemoPair(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)  # YAML blocks end in "\n"

    author: str
    invitation: str
    quality: int = Field(ge=1, le=5)
    themes: list[str]
    prompt: str = Field(min_length=1)
    story: str = Field(min_length=1)


class DemoPeople(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    card: Card
    min_group_size: int = Field(ge=2)  # the demo's k (see demo.yaml)
    people: list[DemoPerson] = Field(min_length=2)


class DemoPairs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pairs: list[DemoPair] = Field(min_length=1)


@dataclass
class Demo:
    card: Card
    min_group_size: int
    people: dict[str, DemoPerson]
    pairs: list[DemoPair]


def load_demo(folder: Path, study: Study) -> Demo:
    """The demo's people and pairs, checked against each other and against the study's forms (so that a changed
    study is a one-line error here, not a refusal by the server halfway through the demo)."""
    people = load_yaml(folder / "demo.yaml", DemoPeople, "the demo's participants")
    pairs = load_yaml(folder / "pairs.yaml", DemoPairs, "the demo's pairs").pairs
    by_key = {p.key: p for p in people.people}
    if len(by_key) != len(people.people):
        raise CodigitError(f"{folder / 'demo.yaml'}: two people have the same key")
    for person in people.people:
        where = f"{folder / 'demo.yaml'}: {person.key}"
        _check_answers(f"{where}: consent", person.consent or {}, study.consent.questions)
        _check_answers(f"{where}: about_you", person.about_you or {}, study.positionality.questions)
    review = {q.name: q for q in study.review.questions}
    needed = {"rating": {str(v) for v in range(1, 6)}, "flags": {"off_topic", "personal_data"}}
    for name, options in needed.items():  # what the simulated reviewers answer
        if missing := options - set(review[name].options()):
            raise CodigitError(f"the demo's reviewers need review {name} options {sorted(missing)} in the study")
    invitations = {i.id for i in study.stories.invitations}
    seen = set()
    for n, pair in enumerate(pairs):
        where = f"{folder / 'pairs.yaml'}: pairs.{n}"
        if pair.author not in by_key:
            raise CodigitError(f"{where}: author {pair.author!r} is not in demo.yaml")
        if pair.invitation not in invitations:
            raise CodigitError(f"{where}: invitation {pair.invitation!r} is not in the study")
        if unknown := set(pair.themes) - set(review["themes"].options()):
            raise CodigitError(f"{where}: unknown themes {sorted(unknown)}")
        if (pair.author, pair.invitation) in seen:  # one response per person and record, as in Argilla
            raise CodigitError(f"{where}: {pair.author} answers {pair.invitation} twice")
        seen.add((pair.author, pair.invitation))
    if len({p.prompt for p in pairs}) != len(pairs):  # the simulated reviewers know a story by its prompt
        raise CodigitError(f"{folder / 'pairs.yaml'}: two pairs have the same prompt")
    return Demo(people.card, people.min_group_size, by_key, pairs)


def _check_answers(where: str, answers: dict, questions: list) -> None:
    by_name = {q.name: q for q in questions}
    for name, value in answers.items():
        q = by_name.get(name)
        if q is None:
            raise CodigitError(f"{where}: {name}: no such question in the study")
        given = value if isinstance(value, list) else [value]
        if q.type in ("label", "multi_label") and (bad := set(given) - set(q.options())):
            raise CodigitError(f"{where}: {name}: {sorted(bad)} not among its options")


@dataclass
class Workshop:
    """What the simulated workshop did, for the summary and the checks."""

    usernames: dict[str, str] = field(default_factory=dict)  # demo key -> pseudonym on the server
    reviews: int = 0
    refusals: list[str] = field(default_factory=list)  # what the server said to answers the study's rules refuse


def _submit_or_refused(person, record_id: str, values: dict, done: Workshop, what: str) -> None:
    """Submit as the UI does; an answer the study's rules refuse is shown, as the UI shows it, and noted."""
    response = person.submit(record_id, values)
    if response.status_code == 422:
        done.refusals.append(f"{what}: {response.json()['detail']}")
        print(f"      refused, as the participant would see it: {done.refusals[-1]}")
    else:
        response.raise_for_status()


def _digest(*parts: object) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()


def review_values(pair: DemoPair, person: DemoPerson, rng: random.Random, theme_options: list[str]) -> dict:
    """One reviewer's answers: the pair's quality, their leniency and noise, so reviewers agree only roughly."""
    rating = min(5, max(1, round(pair.quality + person.leniency + rng.gauss(0, 0.7))))
    if rating >= 4:
        decision = "include" if rng.random() < 0.9 else "revise"
    elif rating == 3:
        decision = rng.choices(["include", "revise", "exclude"], [0.3, 0.5, 0.2])[0]
    else:
        decision = "exclude" if rng.random() < 0.85 else "revise"
    themes = [t for t in pair.themes if rng.random() < 0.8]
    if rng.random() < 0.15:
        themes.append(rng.choice(theme_options))
    values: dict = {"rating": rating, "decision": decision}
    if themes := sorted(set(themes)):
        values["themes"] = themes
    flags = []
    if pair.quality == 1 and rng.random() < 0.7:
        flags.append("off_topic")
    if "@" in pair.story and rng.random() < 0.5:  # some reviewers notice the contact detail, some do not
        flags.append("personal_data")
    if flags:
        values["flags"] = flags
    if rating <= 2 and rng.random() < 0.5:
        values["comment"] = "Does not answer the prompt the way the guidelines ask."
    return values


def play_workshop(url: str, home: Path, study: Study, demo: Demo, folder: Path, steps: Steps, seed: int) -> Workshop:
    """Accounts, consent, questionnaire and stories; a review round with simulated reviewers; one withdrawal."""
    import csv

    from tqdm import tqdm

    from codigit.client import connect
    from codigit.collect import take_snapshot
    from codigit.forms import init_study
    from codigit.participants import add_participants, withdraw
    from codigit.records import counts_line
    from codigit.review import open_round
    from codigit.roster import read_roster
    from codigit.simulate import Participant, api_client, sign_in

    done = Workshop()
    client = connect(home)
    with steps.step(f"the study's forms, and accounts for {len(demo.people)} invented participants"):
        for _ in init_study(client, study):
            pass
        roster = folder / "roster.csv"  # invented names; they stay in the demo folder, as a real roster would
        roster.write_text(
            "name,email\n" + "".join(f"Demo Participant {k[5:]},{k}@example.invalid\n" for k in demo.people),
            encoding="utf-8",
        )
        logins = add_participants(client, study, read_roster(roster), home).logins
        with logins.open(newline="", encoding="utf-8") as f:
            rows = {r["email"].split("@")[0]: r for r in csv.DictReader(f)}
        people = {k: Participant(rows[k]["username"], api_client(url, sign_in(url, rows[k]["username"],
                                 rows[k]["password"]))) for k in demo.people}  # fmt: skip
        done.usernames = {k: p.username for k, p in people.items()}

    with steps.step(f"consent, the optional questionnaire and {len(demo.pairs)} stories, through the UI's endpoints"):
        for key, person in demo.people.items():
            if person.consent:
                record = people[key].queue(people[key].dataset_id(study.consent.dataset))[0]
                _submit_or_refused(people[key], record["id"], person.consent, done, f"{key}'s consent")
            if person.about_you:
                people[key].answer(study.positionality.dataset, person.about_you)
        for pair in tqdm(demo.pairs, desc="stories", unit="story", disable=not sys.stderr.isatty()):
            people[pair.author].answer(
                study.stories.dataset, {"prompt": pair.prompt, "story": pair.story}, external_id=pair.invitation
            )

    with steps.step(f"review round {ROUND}: {study.review.reviews_per_story} anonymous reviews per consented story"):
        counts = open_round(client, study, take_snapshot(study, home), ROUND, study.review.reviews_per_story)
        counts.pop("dataset")
        print("      " + counts_line(counts))
        author = {(p.prompt, p.story): p for p in demo.pairs}  # the demo knows who wrote what; the round does not
        theme_options = next(q for q in study.review.questions if q.name == "themes").options()  # exists: study.py
        dataset = f"{study.review.dataset_prefix}-{ROUND}"
        ids = {k: p.dataset_id(dataset, study.workspace) for k, p in people.items()}
        progress = tqdm(desc="reviews", unit="review", disable=not sys.stderr.isatty())
        active = list(demo.people)
        while active:  # everyone reviews one story from their queue, in turn, until no queue has one for them
            for key in list(active):
                person = demo.people[key]
                queue = [
                    (author[(r["fields"]["prompt"], r["fields"]["story"])], r) for r in people[key].queue(ids[key])
                ]
                pool = [x for x in queue if x[0].author != key]  # the server never shows them their own
                if not pool:
                    active.remove(key)
                    continue
                # a fixed choice per (reviewer, story), so that reruns of the demo review alike
                pair, record = min(pool, key=lambda x: _digest(seed, key, x[0].prompt))  # noqa: B023
                rng = random.Random(_digest(seed, key, pair.prompt))
                people[key].submit(record["id"], review_values(pair, person, rng, theme_options)).raise_for_status()
                done.reviews += 1
                progress.update()
        progress.close()
        print(f"      {done.reviews} reviews")
        for key, person in demo.people.items():
            if person.reviews_own:  # looks for their own story in the round by hand, as a curious reviewer might
                copies = client.datasets(dataset, workspace=study.workspace).records(with_responses=False)
                theirs = {s.story_id for s in take_snapshot(study, home).stories if s.author == done.usernames[key]}
                record = next(r for r in copies if r.id in theirs)
                values = review_values(author[(record.fields["prompt"], record.fields["story"])], person,
                                       random.Random(seed), theme_options)  # fmt: skip
                # private: listed in codigit/upstream.py
                _submit_or_refused(people[key], str(record._server_id), values, done, f"{key} reviewing their own")

    for key, person in demo.people.items():
        if person.withdraws:
            with steps.step(f"{done.usernames[key]} withdraws from the study"):
                withdraw(client, study, done.usernames[key], "demo: changed their mind after the review round")
    for p in people.values():
        p.http.close()
    return done
