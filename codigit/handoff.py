"""The files stages hand to each other after `collect` (whose snapshot is in `records`): one typed model and one
reader per file, used by every stage that reads it.

- releases/V/manifest.json and public/manifest.json: `Manifest`. Written by `release make`; read by release
  verify, diff, approve, publish and affected, by `train` and by the demo.
- runs/R/provenance.json: `Provenance`. Written by `train`; read by `train` (to resume), `generate`,
  `memorisation` and `release affected`.
- runs/R/analysis/memorisation.json: `MemorisationSummary`. Written by `memorisation`; read by `analyze`.
- runs/R/analysis/compare-ROUND.key.json: `CompareKey`. Written by `compare open`; read by `compare results`.
- runs/R/analysis/compare-ROUND.json: `CompareResult`. Written by `compare results`; read by `analyze`.

A key renamed on the writing side fails validation where the file is written, not later in another stage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from codigit.errors import CodigitError
from codigit.home import atomic_write

MANIFEST_SCHEMA = 1  # also in the dataset hash (`release.build.dataset_hash`): a new schema is a new release
_M = TypeVar("_M", bound=BaseModel)


class _Record(BaseModel):
    # NaN stays NaN (an empty probe has no rate), as json.dumps wrote it before these models
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")


class ManifestRecord(_Record):
    id: str  # hash of the normalised prompt and story
    hash: str  # of the whole row
    split: Literal["train", "test"]
    story_id: str | None = None  # organisers' view only: the public one names no story


class Manifest(_Record):
    """A release view's manifest. The organisers' view also carries who and why (pseudonyms, story ids,
    decisions); the public view (`scope: public`) carries none of it."""

    schema_version: int
    version: str
    dataset_hash: str
    policy: dict[str, Any]
    counts: dict[str, int]
    records: list[ManifestRecord]
    scope: Literal["public"] | None = None
    pseudonyms: list[str] = []
    public_pseudonyms: list[str] | None = None  # None in releases older than public views: treat as everyone
    excluded: dict[str, int] = {}
    excluded_stories: dict[str, str] = {}
    decisions: list[dict[str, Any]] = []
    consent_versions: dict[str, int] = {}
    source: dict[str, str] = {}
    created_at: str = ""
    codigit_version: str = ""
    files: dict[str, str] = {}  # file -> sha256, set when the view is written
    manifest_hash: str = ""  # over everything else but created_at, set last

    @property
    def public(self) -> bool:
        return self.scope == "public"

    def text(self) -> str:
        """manifest.json as written: the keys this manifest set (see `hashed`)."""
        return self.model_dump_json(indent=2, exclude_unset=True) + "\n"

    def hashed(self) -> dict:
        """What `manifest_hash` covers: the manifest as written (keys it did not set stay out, so a release made
        by an older codigit hashes as it did), without the hash itself and the creation time."""
        return self.model_dump(mode="json", exclude_unset=True, exclude={"manifest_hash", "created_at"})


class ReleaseUsed(_Record):
    path: str
    version: str
    dataset_hash: str
    split: str
    records: int
    kind: Literal["stories", "corpus"] | None = None  # None: written before corpus releases (a stories release)


class RecipeUsed(_Record):
    file: str  # the recipe file, or "(in-process)" for a `Recipe` built in code
    codigit: dict[str, Any]
    sft: dict[str, Any]
    model: dict[str, Any]


class Seeds(_Record):
    seed: int
    data_seed: int | None = None


class Code(_Record):
    git_commit: str | None
    git_dirty: bool
    versions: dict[str, str | None]


class Hardware(_Record):
    platform: str
    cpu_count: int | None
    gpus: list[str]


class Provenance(_Record):
    """Everything a training run was made from, written before its first step and again when it finishes."""

    release: ReleaseUsed
    recipe: RecipeUsed
    seeds: Seeds
    code: Code
    hardware: Hardware
    parameters: int | None = None
    eval_split: str | None = None  # the release split evaluated during training, if any
    started_at: str | None = None
    resumed_from: str | None = None
    finished_at: str | None = None
    train_loss: float | None = None
    global_step: int | None = None
    slurm_job_id: str | None = None  # the Slurm job that trained it (`codigit train --slurm`); absent in older runs


class Worst(_Record):
    record: int
    lcs_with_prefix: int
    ngram8_with_prefix: float


class MemorisationSummary(_Record):
    records: int
    extraction_rate: float
    extract_words: int
    prefix_words: int
    median_lcs_with_prefix: float
    worst: list[Worst]


class Pair(_Record):
    prompt_id: str
    sample: int
    a: Literal["tuned", "base"]  # which model answer A is


class CompareKey(_Record):
    dataset: str
    seed: int | None  # None: a key written before rounds were named by run
    generations: str | None
    pairs: dict[str, Pair]


class CompareResult(_Record):
    judgments: int
    pairs: int = 0
    judges: int = 0
    tuned: int = 0
    base: int = 0
    tie: int = 0
    tuned_win_rate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    alpha: float | None = None
    alpha_ci: list[float | None] = []


def read(model: type[_M], path: Path, complaint: str) -> _M:
    """`path` as a `model`; a missing, damaged or foreign file is the one-line `complaint` (with `{why}`)."""
    try:
        return model.model_validate_json(Path(path).read_bytes())
    except (OSError, ValidationError, UnicodeDecodeError) as e:
        why = _first_error(e) if isinstance(e, ValidationError) else (getattr(e, "strerror", None) or e)
        raise CodigitError(complaint.replace("{why}", str(why))) from None  # not format(): a path may hold braces


def _first_error(e: ValidationError) -> str:
    first = e.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]


def write(path: Path, record: BaseModel, mode: int = 0o644) -> None:
    atomic_write(path, record.model_dump_json(indent=2) + "\n", mode=mode)


def read_manifest(path: Path) -> Manifest:
    """The manifest of the release (view) in folder `path`."""
    file = Path(path) / "manifest.json"
    if not file.is_file():
        raise CodigitError(f"{path}: not a release (no manifest.json)")
    try:
        raw = json.loads(file.read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CodigitError(f"{file}: unreadable ({e})") from None
    if not isinstance(raw, dict) or raw.get("schema_version") != MANIFEST_SCHEMA:
        got = raw.get("schema_version") if isinstance(raw, dict) else None
        raise CodigitError(f"{path}: not a release manifest of schema {MANIFEST_SCHEMA} (found {got})")
    try:
        return Manifest.model_validate(raw)
    except ValidationError as e:
        raise CodigitError(f"{file}: malformed ({_first_error(e)})") from None


def read_provenance(run: Path) -> Provenance:
    """The provenance of the training run in folder `run`."""
    path = Path(run) / "provenance.json"
    return read(Provenance, path, f"{path}: not a finished codigit run ({{why}})")


def read_memorisation(run: Path) -> MemorisationSummary | None:
    path = Path(run) / "analysis" / "memorisation.json"
    if not path.is_file():
        return None
    return read(MemorisationSummary, path, f"{path}: unreadable ({{why}}); run `codigit memorisation` again")


def compare_key_path(run: Path, round_name: str) -> Path:
    return Path(run) / "analysis" / f"compare-{round_name}.key.json"


def compare_result_path(run: Path, round_name: str) -> Path:
    return Path(run) / "analysis" / f"compare-{round_name}.json"


def read_compare_key(run: Path, round_name: str) -> CompareKey:
    path = compare_key_path(run, round_name)
    try:
        raw = json.loads(path.read_bytes())
    except (OSError, ValueError) as e:
        raise CodigitError(f"{path}: unreadable key file ({e})") from None
    if isinstance(raw, dict) and raw and all(isinstance(v, dict) and "a" in v for v in raw.values()):
        # written by codigit before rounds were named by run: {pair id: ...}, dataset compare-ROUND; still scored
        raw = {"dataset": f"compare-{round_name}", "seed": None, "generations": None, "pairs": raw}
    try:
        return CompareKey.model_validate(raw)
    except ValidationError:
        raise CodigitError(f"{path}: not a key file of this codigit version; open a new --round") from None


def compare_results_of(run: Path) -> dict[str, CompareResult]:
    """Every blind comparison round's result for the run, by round name."""
    out = {}
    for path in sorted((Path(run) / "analysis").glob("compare-*.json")):
        if path.name.endswith(".key.json"):
            continue
        name = path.name.removeprefix("compare-").removesuffix(".json")
        complaint = f"{path}: unreadable ({{why}}); run `codigit compare results RUN --round {name}` again"
        out[name] = read(CompareResult, path, complaint)
    return out
