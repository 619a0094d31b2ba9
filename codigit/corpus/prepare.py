"""Preprocessing of contributed texts for continued pretraining: every text is normalised, checked and either
kept or left out with a reason, and every decision is recorded (the contribution log is made from it).

The checks run in this order, the first that applies being the reason: consent, peer review (texts given
through the form, when the settings ask for reviews), length, language, personal data, exact duplicate, near
duplicate. Duplicates come last so that a text left out for another reason never
shadows a copy that would have qualified (a re-submission with the email address taken out, say).
Details are written for the public log: they name texts by their key (a prefix of the sha256 of the normalised
text), never by contribution id or author, and personal-data findings only by kind, never the matched text.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from codigit.corpus.dedup import NearDuplicates
from codigit.errors import CodigitError
from codigit.records import Consent, Contribution, TextReview
from codigit.release.pii import names_pattern, scan

# Why a text is not in the corpus, in the order the checks run; the manifest and the card count each.
REASONS = ("no_consent", "not_reviewed", "rejected", "too_short", "too_long", "language", "personal_data", "duplicate",
           "near_duplicate")  # fmt: skip
BEFORE_SCAN = REASONS[: REASONS.index("personal_data")]  # a text left out for one of these never reaches the scan
KEY_CHARS = 16  # a text's key: this many hex digits of its sha256 (as the stories' record ids)


class CorpusSettings(BaseModel):
    """How a corpus release selects its texts; recorded in the manifest and part of the dataset hash."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    languages: list[str] = Field(default=["en"], min_length=1)  # ISO 639-1 codes py3langid detects
    min_words: int = Field(default=50, ge=0)  # fewer words than this: too short to teach a base model much
    max_chars: int = Field(default=5_000_000, ge=1)  # of the normalised text; larger ones need a look by hand
    near_duplicate_threshold: float = Field(default=0.8, gt=0, le=1)  # exact Jaccard of word shingles
    num_perm: int = Field(default=128, ge=16)  # MinHash permutations: more finds candidates more reliably, slower
    shingle_words: int = Field(default=5, ge=1)
    seed: int = 1  # MinHash's: fixed, so the same texts always give the same candidates
    license: str = Field(default="other", min_length=1)  # the corpus as a whole; each text keeps its own licence
    # peer review of texts given through the form (imported files are the organisers' own responsibility): at least
    # this many reviews by others, more than half saying include, and no reviewer raising a blocking flag
    min_reviews: int = Field(default=0, ge=0)  # 0: a text nobody reviewed passes
    blocking_flags: list[str] = ["harmful", "not_theirs"]
    personal_data_flag: str = "personal_data"  # a reviewer's flag that holds the text for an organiser's decision

    def hashed(self) -> dict:
        return self.model_dump(mode="json")


@dataclass(frozen=True)
class Prepared:
    """One contribution after preprocessing. `findings` (personal data with the matched text) are for the
    organiser's eyes only and never written to a release."""

    contribution: Contribution
    text: str  # normalised
    sha256: str
    language: str
    language_probability: float
    words: int
    reason: str | None = None  # None: included
    detail: str = ""
    findings: tuple[str, ...] = ()
    title_flagged: bool = False  # the personal-data scan found something in the title itself

    @property
    def key(self) -> str:
        return self.sha256[:KEY_CHARS]

    @property
    def included(self) -> bool:
        return self.reason is None


@dataclass
class Preparation:
    items: list[Prepared] = field(default_factory=list)  # in submission order (then contribution id)
    decisions: dict[str, str] = field(default_factory=dict)  # text key -> "keep"/"exclude" the run applied

    @property
    def included(self) -> list[Prepared]:
        return [p for p in self.items if p.included]

    def excluded(self) -> dict[str, int]:
        counts = Counter(p.reason for p in self.items if p.reason)
        return {reason: counts.get(reason, 0) for reason in REASONS}

    def awaiting_decision(self) -> list[Prepared]:
        """Texts the personal-data scan holds with no organiser decision yet: what to decide on."""
        return [p for p in self.items if p.reason == "personal_data" and p.key not in self.decisions]


_BLANK_RUNS = re.compile(r"\n{3,}")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # Unicode's control characters (Cc) but tab and newline


def normalise(text: str) -> str:
    """Unicode NFC, one kind of line break, no control characters but newline and tab, no trailing spaces on a
    line, runs of blank lines as one blank line, trimmed. Paragraphs and everything else stay as written:
    continued pretraining should see the real text."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _BLANK_RUNS.sub("\n\n", text).strip()


def clean_title(title: str) -> str:
    """A title on one line: normalised, whitespace runs as one space."""
    return " ".join(normalise(title).split())


def text_sha256(text: str) -> str:
    """The sha256 of a text as the corpus stores it (normalised)."""
    return hashlib.sha256(normalise(text).encode()).hexdigest()


def _identifier(languages: list[str]):
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    unknown = sorted({_primary(lang) for lang in languages} - set(ident.labels))
    if unknown:
        raise CodigitError(
            f"corpus languages: {', '.join(unknown)} cannot be detected by py3langid; it knows "
            + ", ".join(sorted(ident.labels))
        )
    return ident


def _primary(tag: str) -> str:
    """ "en-GB" -> "en": the detector speaks only primary language subtags."""
    return tag.split("-")[0].lower()


def _decisions(decisions: Mapping[str, str] | None) -> dict[str, str]:
    out = {}
    for key, value in (decisions or {}).items():
        if value not in ("keep", "exclude"):
            raise CodigitError(f"personal-data decision for {key!r} must be keep or exclude, not {value!r}")
        out[key] = value
    return out


def prepare(
    contributions: Iterable[Contribution],
    consents: Iterable[Consent],
    settings: CorpusSettings | None = None,
    decisions: Mapping[str, str] | None = None,
    withdrawn: Iterable[str] = (),
    names: list[str] | None = None,
    reviews: Iterable[TextReview] = (),
) -> Preparation:
    """Normalise and check every contribution. `decisions` maps a contribution id, or the sha256 of its
    normalised text (which binds the decision to that exact text), to "keep" or "exclude" for texts the
    personal-data scan holds. Contributions by `withdrawn` people are dropped without a trace in the result.
    `names` (from the organiser's roster, `codigit.release.pii.roster_names`) are scanned for as in stories.
    `reviews`: the snapshot's text reviews, applied as `settings` ask."""
    settings = settings or CorpusSettings()
    decided = _decisions(decisions)
    names_rx = names_pattern(names or [])
    allowed = {_primary(lang) for lang in settings.languages}
    ident = _identifier(settings.languages)
    consent = {c.participant: c for c in consents}  # the latest consent per person (the snapshot keeps order)
    gone = set(withdrawn)
    counted = counted_text_reviews(reviews, gone)
    near = NearDuplicates(settings.near_duplicate_threshold, settings.num_perm, settings.seed, settings.shingle_words)
    seen: dict[str, str] = {}  # sha256 -> key of the text kept with it
    out = Preparation()
    ordered = sorted(
        (c for c in contributions if c.author not in gone), key=lambda c: (c.submitted_at, c.contribution_id)
    )
    for c in ordered:
        text = normalise(c.text)
        sha = hashlib.sha256(text.encode()).hexdigest()
        language, probability = ident.classify(text) if text else ("und", 0.0)
        words = len(text.split())
        base = dict(contribution=c, text=text, sha256=sha, language=language, language_probability=float(probability),
                    words=words)  # fmt: skip
        findings = scan(f"{c.title}\n{text}", names_rx)
        verdict = review_verdict(c, counted.get(c.contribution_id, []), settings)
        if verdict.flags.get(settings.personal_data_flag):  # a reviewer saw personal data: an organiser decides
            findings = [*findings, f"reviewer flag:{settings.personal_data_flag}"]
        title_flagged = bool(scan(c.title, names_rx))
        decision = decided.get(sha) or decided.get(sha[:KEY_CHARS]) or decided.get(c.contribution_id)  # key: as shown
        reason, detail = None, ""
        consented = consent.get(c.author)
        if consented is None or not consented.training:
            reason = "no_consent"
        elif verdict.reason is not None:
            reason, detail = verdict.reason
        elif words < settings.min_words:
            reason, detail = "too_short", f"{words} words, fewer than {settings.min_words}"
        elif len(text) > settings.max_chars:
            reason, detail = "too_long", f"{len(text):,} characters, more than {settings.max_chars:,}"
        elif _primary(language) not in allowed:
            reason = "language"
            detail = f"detected {language} (p={probability:.2f}); allowed: {', '.join(sorted(allowed))}"
        elif findings and decision != "keep":
            kinds = ", ".join(sorted({f.split(":")[0] for f in findings}))
            reason = "personal_data"
            detail = f"{kinds}; " + ("excluded by an organiser's decision" if decision else "no decision to keep it")
        elif sha in seen:
            reason, detail = "duplicate", f"same text as {seen[sha]}"
        elif (match := near.check(sha[:KEY_CHARS], text)) is not None:
            reason, detail = "near_duplicate", f"near copy of {match[0]} (Jaccard {match[1]:.3f})"
        else:
            seen[sha] = sha[:KEY_CHARS]
            if findings:
                detail = "personal-data scan: " + ", ".join(sorted({f.split(":")[0] for f in findings}))
                detail += "; kept by an organiser's decision"
        if findings and decision is not None and reason not in BEFORE_SCAN:  # the scan's turn came: it applied
            out.decisions[sha[:KEY_CHARS]] = decision
        out.items.append(Prepared(**base, reason=reason, detail=detail, findings=tuple(findings),
                                  title_flagged=title_flagged))  # fmt: skip
    return out


@dataclass(frozen=True)
class ReviewVerdict:
    reason: tuple[str, str] | None  # (reason, detail) when the reviews leave the text out
    flags: Counter  # flag -> reviewers who raised it (withdrawn reviewers' flags included)


def counted_text_reviews(reviews: Iterable[TextReview], withdrawn: set[str]) -> dict[str, list[TextReview]]:
    """Contribution id -> the reviews that count: by someone else, of the text as it is, by someone who has not
    withdrawn, each reviewer's latest only."""
    latest: dict[tuple[str, str], TextReview] = {}
    for r in sorted(reviews, key=lambda r: r.submitted_at):
        if not r.self_review and r.current_text and r.reviewer not in withdrawn:
            latest[(r.contribution_id, r.reviewer)] = r
    out: dict[str, list[TextReview]] = {}
    for (cid, _), r in sorted(latest.items()):
        out.setdefault(cid, []).append(r)
    return out


def review_verdict(c: Contribution, reviews: list[TextReview], settings: CorpusSettings) -> ReviewVerdict:
    """What the community's reviews say of one text under `settings`; imported texts need none."""
    flags = Counter(c.withdrawn_flags)
    for r in reviews:
        flags.update(r.flags)
    if c.source != "form":
        return ReviewVerdict(None, flags)
    n, includes = len(reviews), sum(r.decision == "include" for r in reviews)
    if blocked := [f for f in settings.blocking_flags if flags.get(f)]:  # one flag stops it, however many reviews
        return ReviewVerdict(("rejected", "flagged " + ", ".join(blocked) + " by a reviewer"), flags)
    if n < settings.min_reviews:
        return ReviewVerdict(("not_reviewed", f"{n} reviews, {settings.min_reviews} needed"), flags)
    if n and not includes * 2 > n:  # with min_reviews 0 an unreviewed text passes; reviews there still count
        return ReviewVerdict(("rejected", f"{includes} of {n} reviews say include"), flags)
    return ReviewVerdict(None, flags)
