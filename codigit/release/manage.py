"""Everything around a release folder: make, verify, diff, personal-data decisions, approvals, publish, affected."""

from __future__ import annotations

import json
from pathlib import Path

from codigit.errors import CodigitError
from codigit.handoff import Manifest, read_manifest, read_provenance
from codigit.home import append_jsonl, locked
from codigit.records import read_snapshot, require_hashes, resolve_snapshot, utc_now
from codigit.release import card
from codigit.release.build import (
    SEMVER,
    SPLITS,
    Plan,
    dataset_hash,
    manifest_hash,
    plan_release,
    record_hash,
    record_id,
    semver_key,
    sha256_file,
    split_file,
    write_release,
)
from codigit.release.pii import roster_names
from codigit.release.policy import Policy, check_policy
from codigit.snapshot import paused_gc
from codigit.study import Study

DECISIONS_FILE = "decisions.jsonl"
APPROVALS_FILE = "approvals.jsonl"


def releases(root: Path) -> dict[str, Path]:
    """Existing releases under root by version, oldest first (folders not named by a semantic version are not)."""
    found = {}
    for p in Path(root).glob("*"):
        if SEMVER.match(p.name) and (p / "manifest.json").is_file():
            found[p.name] = p
    return {v: found[v] for v in sorted(found, key=semver_key)}


def read_jsonl(path: Path, what: str, keys: tuple[str, ...]) -> list[dict]:
    """A codigit JSON Lines file; a damaged one is a one-line error naming the line."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    try:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                entry = json.loads(line)
                if not isinstance(entry, dict) or any(k not in entry for k in keys):
                    raise ValueError(f"line {n} lacks {', '.join(keys)}")
                out.append(entry)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise CodigitError(f"{path}: damaged {what} ({e}); restore it from a backup") from None
    return out


def read_decisions(root: Path) -> dict[str, dict]:
    """The latest decision per story (the file keeps them all, in order)."""
    keys = ("story_id", "text_sha", "decision", "by")
    return {d["story_id"]: d for d in read_jsonl(Path(root) / DECISIONS_FILE, "decisions file", keys)}


def all_withdrawn(snapshots_root: Path) -> set[str]:
    """Withdrawals seen in any snapshot: a release from an older snapshot must still leave them out."""
    out: set[str] = set()
    for file in Path(snapshots_root).glob("*/withdrawals.jsonl"):
        out |= {w["participant"] for w in read_jsonl(file, "snapshot withdrawals", ("participant",))}
    return out


@paused_gc()  # the snapshot's records live throughout a release
def make_release(
    version: str, snapshot_path: Path, policy: Policy, study: Study, out: Path, names_from: Path | None
) -> tuple[Path, Manifest | None, Plan]:
    """Plan and write a release. With stories awaiting a personal-data decision nothing is written and the plan
    (with `blocked`) is returned. `names_from` None means the roster scan was turned off on purpose. The policy
    must name only what the study has, and the snapshot must be as `collect` wrote it."""
    semver_key(version)
    if (Path(out) / version).exists():
        raise CodigitError(f"release {version} already exists at {Path(out) / version}; releases are never overwritten")
    check_policy(policy, study)
    snapshot = read_snapshot(snapshot_path)
    require_hashes(snapshot, snapshot_path)
    withdrawn = all_withdrawn(resolve_snapshot(snapshot_path).parent)
    names = roster_names(names_from) if names_from is not None else []
    p = plan_release(snapshot, policy, read_decisions(out), names, withdrawn)
    if p.blocked:
        return Path(out) / version, None, p
    earlier = [path for v, path in releases(out).items() if semver_key(v) < semver_key(version)]
    # a release made before codigit wrote public views has none: the public changelog compares with the latest one
    earlier_public = [e / "public" for e in earlier if (e / "public" / "manifest.json").is_file()]

    def texts(manifest: Manifest, public: bool) -> dict[str, str]:
        authors = p.public_authors if public else p.authors
        groups = card.collectives([r for r in p.rows if r["public"] or not public], p.row_authors,
                                  policy.min_group_size)  # fmt: skip
        previous = (earlier_public if public else earlier)[-1:]
        before = read_manifest(previous[0]) if previous else None
        return {
            "README.md": card.dataset_card(manifest, policy, snapshot, authors, study, groups),
            "CHANGELOG.md": card.changelog(manifest, before, reasons=not public),
            "CONTRIBUTORS.md": card.contributors(manifest, snapshot, authors),
        }

    path = write_release(out, version, p, policy, snapshot, texts)
    return path, read_manifest(path), p


def verify(path: Path) -> Manifest:
    """Recompute every hash of a release folder (and of its public/ view); the first mismatch is a CodigitError."""
    import pyarrow.parquet as pq

    path = Path(path)
    manifest = read_manifest(path)
    try:
        if manifest_hash(manifest) != manifest.manifest_hash:
            raise CodigitError(f"{path}: manifest.json was edited after the release was made")
        listed_files = set(manifest.files)
        for name, digest in manifest.files.items():
            file = path / name
            if not file.is_file():
                raise CodigitError(f"{path}: {name} is missing")
            if sha256_file(file) != digest:
                raise CodigitError(f"{path}: {name} was modified after the release was made")
        for file in sorted(path.rglob("*")):
            name = str(file.relative_to(path))
            if file.is_file() and name not in listed_files and name not in ("manifest.json", APPROVALS_FILE):
                raise CodigitError(f"{path}: {name} is not part of the release (added later?)")
        listed = {r.id: r for r in manifest.records}
        seen = set()
        for split in SPLITS:
            if not manifest.counts.get(split):
                continue
            for row in pq.read_table(split_file(path, split)).to_pylist():
                rid = row["id"]
                if rid not in listed or listed[rid].split != split:
                    raise CodigitError(f"{path}: record {rid} is not in the manifest's {split} split")
                if record_id(row["prompt"], row["response"]) != rid:
                    raise CodigitError(f"{path}: record {rid}: its text does not hash to its id")
                if record_hash(row) != listed[rid].hash:
                    raise CodigitError(f"{path}: record {rid} differs from the manifest")
                seen.add(rid)
        if missing := sorted(listed.keys() - seen):
            raise CodigitError(f"{path}: {len(missing)} records of the manifest are missing (first: {missing[0]})")
        if dataset_hash([r.hash for r in manifest.records], manifest.policy) != manifest.dataset_hash:
            raise CodigitError(f"{path}: the dataset hash does not match the records and policy in the manifest")
    except (KeyError, TypeError, AttributeError) as e:
        raise CodigitError(f"{path}/manifest.json: malformed ({type(e).__name__}: {e})") from None
    if not manifest.public and (path / "public").is_dir():
        verify(path / "public")
    return manifest


def diff(a: Path, b: Path) -> dict:
    """What changed from release a to b. With a public view on either side records are matched by id (a public
    view has no story ids, so an edited story is a removal and an addition) and authors are not counted."""
    old, new = read_manifest(a), read_manifest(b)
    organisers = not (old.public or new.public)
    out = {"from": old.version, "to": new.version, "changelog": card.changelog(new, old, reasons=organisers)}
    if organisers:
        before, after = set(old.pseudonyms), set(new.pseudonyms)
        out |= {"pseudonyms_added": len(after - before), "pseudonyms_removed": len(before - after)}
    return out


def decide(out: Path, snapshot_path: Path, story_id: str, decision: str, by: str, note: str) -> dict:
    """Record an organiser's decision on a story the personal-data gate stopped; bound to its current text."""
    from codigit.rules import text_sha

    if decision not in ("keep", "exclude"):
        raise CodigitError(f"decision must be keep or exclude, not {decision!r}")
    if not by.strip():
        raise CodigitError("--by must name the organiser who decides")
    snapshot = read_snapshot(snapshot_path)
    story = next((s for s in snapshot.stories if s.story_id == story_id), None)
    if story is None:
        raise CodigitError(f"no story {story_id!r} in snapshot {snapshot.meta.snapshot_id}")
    record = {"story_id": story_id, "text_sha": text_sha(story.prompt, story.story), "decision": decision,
              "by": by.strip(), "note": note.strip(), "at": utc_now()}  # fmt: skip
    Path(out).mkdir(parents=True, exist_ok=True)
    with locked(out):
        append_jsonl(Path(out) / DECISIONS_FILE, record, mode=0o600)
    return record


def approvals(path: Path) -> list[dict]:
    return read_jsonl(Path(path) / APPROVALS_FILE, "approvals file", ("by", "dataset_hash"))


def approval_status(path: Path, manifest: Manifest, policy: Policy) -> tuple[list[str], int]:
    """Who on the current board has approved this exact release (its dataset hash), and how many approvals
    publishing needs: the stricter of the release's own policy and the current one. Approve and publish both
    count this way, so what approve reports is what publish will find."""
    needed = max(policy.required_approvals, manifest.policy.get("required_approvals", 0))
    if needed > len(policy.board):
        raise CodigitError(
            f"publishing release {manifest.version} needs {needed} board approvals but the release policy's "
            f"board lists {len(policy.board)} names: add the members under `board:`"
        )
    spelled = {n.casefold(): n for n in policy.board}
    mine = [a["by"].casefold() for a in approvals(path) if a["dataset_hash"] == manifest.dataset_hash]
    return sorted({spelled[n] for n in mine if n in spelled}), needed


def approve(path: Path, by: str, policy: Policy) -> tuple[list[str], bool, int]:
    """One board member's approval of this exact release (its dataset hash); verified first. Once per person.
    Returns the approvals that count, whether this one is new, and how many publishing needs."""
    manifest = verify(path)
    if not by.strip():
        raise CodigitError("--by must name the board member who approves")
    name = policy.board_member(by)  # one person typing two names must not make two approvals
    with locked(path):
        have, needed = approval_status(path, manifest, policy)
        if name in have:
            return have, False, needed
        entry = {"by": name, "at": utc_now(), "dataset_hash": manifest.dataset_hash}
        append_jsonl(Path(path) / APPROVALS_FILE, entry)
    return sorted([*have, name]), True, needed


def publish(path: Path, repo: str, policy: Policy, snapshots: Path, dry_run_to: Path | None = None) -> str:
    """Push the release's public/ view to the Hugging Face Hub: only with the board approvals of this exact hash
    (the stricter of the release's policy and the current one), and never once anyone in it has withdrawn."""
    import shutil

    path = Path(path)
    manifest = verify(path)
    have, needed = approval_status(path, manifest, policy)
    if len(have) < needed:
        raise CodigitError(
            f"release {manifest.version} has {len(have)} of the {needed} board approvals the policy requires: "
            f"`codigit release approve {manifest.version} --by NAME`"
        )
    if gone := set(manifest.pseudonyms) & all_withdrawn(snapshots):
        raise CodigitError(
            f"release {manifest.version} contains text by {len(gone)} participant(s) who have since withdrawn: "
            "make a new release and publish that"
        )
    public = path / "public"
    if not (public / "manifest.json").is_file():
        raise CodigitError(f"release {manifest.version} has no public view (public/): make a new release")
    if not read_manifest(public).records:
        raise CodigitError(f"release {manifest.version} has no records whose authors allowed public release")
    if dry_run_to is not None:
        if Path(dry_run_to).exists() and any(Path(dry_run_to).iterdir()):
            raise CodigitError(f"{dry_run_to} is not empty; give a new folder")
        shutil.copytree(public, dry_run_to, dirs_exist_ok=True)
        return f"would upload {dry_run_to} to {repo}"
    from huggingface_hub import HfApi, get_token  # the real path; needs network and a token (HF_TOKEN)
    from huggingface_hub.errors import HTTPError  # the base error of the hub's HTTP library, whichever it uses

    if get_token() is None:
        raise CodigitError("no Hugging Face token: set HF_TOKEN or run `hf auth login`, then publish again")
    api = HfApi()
    message = f"codigit release {manifest.version} ({manifest.dataset_hash[:12]})"
    try:
        api.create_repo(repo, repo_type="dataset", exist_ok=True, private=False)
        # delete_patterns: files of an earlier release that this one no longer has must not stay on the Hub
        api.upload_folder(repo_id=repo, repo_type="dataset", folder_path=str(public), commit_message=message,
                          delete_patterns="*")  # fmt: skip
    except (HTTPError, OSError, ValueError) as e:  # the hub's errors derive from these; a Hub commit is all or none
        why = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CodigitError(f"publishing release {manifest.version} to {repo} failed: {why}") from None
    return f"{api.endpoint}/datasets/{repo}"


def affected(pseudonym: str, releases_root: Path, runs_root: Path, corpus_root: Path | None = None,
             ) -> tuple[list[dict], list[dict], list[str]]:  # fmt: skip
    """Every release that contains this person's text, every run (from its provenance) trained on one or on its
    public view (which has its own dataset hash), and the provenance files that could not be read: those runs
    must be checked by hand, so they are reported, never skipped in silence."""
    hit = []
    trained_on: dict[str, tuple[str, str]] = {}  # dataset hash -> (version, view)
    for version, path in releases(releases_root).items():
        manifest = verify(path)  # an edited manifest must not hide anyone; verify checks public/ too
        if pseudonym not in manifest.pseudonyms:
            continue
        hit.append({"version": version, "dataset_hash": manifest.dataset_hash, "path": str(path)})
        trained_on[manifest.dataset_hash] = (version, "")
        public = path / "public"
        # releases older than `public_pseudonyms` are assumed to hold everyone in public/: over-report, never miss
        everyone = manifest.public_pseudonyms is None
        if (public / "manifest.json").is_file() and (everyone or pseudonym in manifest.public_pseudonyms):
            view = read_manifest(public)
            if view.records:  # when everyone allowed public release both views hold the same data, one hash
                trained_on.setdefault(view.dataset_hash, (version, " (public view)"))
    if corpus_root is not None:  # corpus releases of contributed texts, from the organisers' record of who is in each
        from codigit.corpus.contributors import contributors_of

        for version, (dataset_hash, pseudonyms) in contributors_of(corpus_root).items():
            if pseudonym in pseudonyms:
                hit.append({"version": f"corpus {version}", "dataset_hash": dataset_hash,
                            "path": str(Path(corpus_root) / version)})  # fmt: skip
                trained_on[dataset_hash] = (f"corpus {version}", "")
    runs, unreadable = [], []
    root = Path(runs_root)  # a run, or one adapter of a community garden (RUN/<collective>/)
    for prov in sorted({*root.glob("*/provenance.json"), *root.glob("*/*/provenance.json")}):
        try:
            used = read_provenance(prov.parent).release
        except CodigitError as e:
            unreadable.append(f"{e}; check that run by hand")
            continue
        if used.dataset_hash in trained_on:
            version, view = trained_on[used.dataset_hash]
            runs.append({"run": prov.parent.relative_to(root).as_posix(), "path": str(prov.parent),
                         "release": version + view})  # fmt: skip
    return hit, runs, unreadable
