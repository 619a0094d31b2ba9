"""Everything around a release folder: make, verify, diff, personal-data decisions, approvals, publish, affected."""

from __future__ import annotations

import json
from pathlib import Path

from codigit.errors import CodigitError
from codigit.home import atomic_write
from codigit.records import Snapshot, read_snapshot, resolve_snapshot, utc_now
from codigit.release import card
from codigit.release.build import (
    SCHEMA_VERSION,
    SPLITS,
    Plan,
    dataset_hash,
    plan_release,
    record_hash,
    record_id,
    semver_key,
    sha256_file,
    split_file,
    write_release,
)
from codigit.release.pii import roster_names
from codigit.release.policy import Policy
from codigit.study import Study

DECISIONS_FILE = "decisions.jsonl"
APPROVALS_FILE = "approvals.jsonl"


def releases(root: Path) -> dict[str, Path]:
    """Existing releases under root by version, oldest first."""
    found = {p.name: p for p in Path(root).glob("*") if (p / "manifest.json").is_file()}
    return {v: found[v] for v in sorted(found, key=_safe_key)}


def _safe_key(version: str) -> tuple:
    try:
        return semver_key(version)
    except CodigitError:
        return (-1,)


def read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads((Path(path) / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CodigitError(f"{path}: not a release (no manifest.json)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CodigitError(f"{path}/manifest.json: unreadable ({e})") from None
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise CodigitError(f"{path}: release schema {manifest.get('schema_version')}, codigit reads {SCHEMA_VERSION}")
    return manifest


def read_decisions(root: Path) -> dict[str, dict]:
    """The latest decision per story (the file keeps them all, in order)."""
    path = Path(root) / DECISIONS_FILE
    latest: dict[str, dict] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                d = json.loads(line)
                latest[d["story_id"]] = d
    return latest


def all_withdrawn(snapshots_root: Path) -> set[str]:
    """Withdrawals seen in any snapshot: a release from an older snapshot must still leave them out."""
    out: set[str] = set()
    for meta in Path(snapshots_root).glob("*/withdrawals.jsonl"):
        out |= {json.loads(line)["participant"] for line in meta.read_text().splitlines() if line.strip()}
    return out


def plan(snapshot_path: Path, policy: Policy, out: Path, names_from: Path | None) -> tuple[Snapshot, Plan]:
    snapshot = read_snapshot(snapshot_path)
    root = resolve_snapshot(snapshot_path).parent
    return snapshot, plan_release(snapshot, policy, read_decisions(out), roster_names(names_from), all_withdrawn(root))


def make_release(
    version: str, snapshot_path: Path, policy: Policy, study: Study, out: Path, names_from: Path | None
) -> tuple[Path, dict, Plan]:
    semver_key(version)
    if (Path(out) / version).exists():
        raise CodigitError(f"release {version} already exists at {Path(out) / version}; releases are never overwritten")
    snapshot, p = plan(snapshot_path, policy, out, names_from)
    if p.blocked:
        return Path(out) / version, {}, p
    earlier = [v for v in releases(out) if semver_key(v) < semver_key(version)]
    previous = read_manifest(Path(out) / earlier[-1]) if earlier else None

    def texts(manifest: dict) -> dict[str, str]:
        return {
            "README.md": card.dataset_card(manifest, policy, snapshot, p.authors, study),
            "CHANGELOG.md": card.changelog(manifest, previous),
            "CONTRIBUTORS.md": card.contributors(manifest, snapshot, p.authors),
        }

    path = write_release(out, version, p, policy, snapshot, texts)
    return path, read_manifest(path), p


def verify(path: Path) -> dict:
    """Recompute every hash of a release folder; the first mismatch is a CodigitError."""
    import pyarrow.parquet as pq

    path = Path(path)
    manifest = read_manifest(path)
    for name, digest in manifest["files"].items():
        file = path / name
        if not file.is_file():
            raise CodigitError(f"{path}: {name} is missing")
        if sha256_file(file) != digest:
            raise CodigitError(f"{path}: {name} was modified after the release was made")
    listed = {r["id"]: r for r in manifest["records"]}
    seen = set()
    for split in SPLITS:
        if not manifest["counts"][split]:
            continue
        for row in pq.read_table(split_file(path, split)).to_pylist():
            rid = row["id"]
            if rid not in listed or listed[rid]["split"] != split:
                raise CodigitError(f"{path}: record {rid} is not in the manifest's {split} split")
            if record_id(row["prompt"], row["response"]) != rid:
                raise CodigitError(f"{path}: record {rid}: its text does not hash to its id")
            if record_hash(row) != listed[rid]["hash"]:
                raise CodigitError(f"{path}: record {rid} differs from the manifest")
            seen.add(rid)
    if missing := sorted(listed.keys() - seen):
        raise CodigitError(f"{path}: {len(missing)} records of the manifest are missing (first: {missing[0]})")
    if dataset_hash([r["hash"] for r in manifest["records"]], manifest["policy"]) != manifest["dataset_hash"]:
        raise CodigitError(f"{path}: the dataset hash does not match the records and policy in the manifest")
    return manifest


def diff(a: Path, b: Path) -> dict:
    old, new = read_manifest(a), read_manifest(b)
    text = card.changelog(new, old)
    return {"from": old["version"], "to": new["version"], "changelog": text,
            "pseudonyms_added": len(set(new["pseudonyms"]) - set(old["pseudonyms"])),
            "pseudonyms_removed": len(set(old["pseudonyms"]) - set(new["pseudonyms"]))}  # fmt: skip


def decide(out: Path, snapshot_path: Path, story_id: str, decision: str, by: str, note: str) -> dict:
    """Record an organiser's decision on a story the personal-data gate stopped; bound to its current text."""
    from codigit.collect import text_sha

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
    path = Path(out) / DECISIONS_FILE
    previous = path.read_text(encoding="utf-8") if path.exists() else ""
    Path(out).mkdir(parents=True, exist_ok=True)
    atomic_write(path, previous + json.dumps(record, ensure_ascii=False) + "\n", mode=0o600)
    return record


def approvals(path: Path) -> list[dict]:
    file = Path(path) / APPROVALS_FILE
    if not file.exists():
        return []
    return [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]


def approve(path: Path, by: str) -> tuple[list[dict], bool]:
    """One board member's approval of this exact release (its dataset hash); verified first. Once per person."""
    manifest = verify(path)
    by = by.strip()
    if not by:
        raise CodigitError("--by must name the board member who approves")
    current = [a for a in approvals(path) if a["dataset_hash"] == manifest["dataset_hash"]]
    if any(a["by"].casefold() == by.casefold() for a in current):
        return current, False
    entry = {"by": by, "at": utc_now(), "dataset_hash": manifest["dataset_hash"]}
    lines = "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in [*approvals(path), entry])
    atomic_write(Path(path) / APPROVALS_FILE, lines)
    return [*current, entry], True


def public_folder(path: Path, dest: Path) -> Path:
    """What publishing uploads: the public records only, with the card (its splits adjusted), changelog,
    contributors and manifest (which still lists every record's hash, so the public part can be checked)."""
    import shutil

    import pyarrow.parquet as pq
    import yaml

    from codigit.release.build import write_parquet

    manifest = verify(path)
    dest = Path(dest)
    (dest / "data").mkdir(parents=True, exist_ok=True)
    counts = {}
    for split in SPLITS:
        rows = pq.read_table(split_file(path, split)).to_pylist() if manifest["counts"][split] else []
        rows = [r for r in rows if r["public"]]
        counts[split] = len(rows)
        if rows:
            write_parquet(rows, split_file(dest, split))
    _, front, body = (path / "README.md").read_text(encoding="utf-8").split("---\n", 2)
    meta = {**yaml.safe_load(front), "configs": card.configs(counts)}
    text = f"---\n{yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)}---\n{body}"
    (dest / "README.md").write_text(text, encoding="utf-8")
    for name in ("CHANGELOG.md", "CONTRIBUTORS.md", "manifest.json"):
        shutil.copy2(path / name, dest / name)
    return dest


def publish(path: Path, repo: str, policy: Policy, dry_run_to: Path | None = None) -> str:
    """Push the public part to the Hugging Face Hub, only with the policy's board approvals of this exact hash."""
    import tempfile

    manifest = verify(path)
    have = {a["by"].casefold() for a in approvals(path) if a["dataset_hash"] == manifest["dataset_hash"]}
    if len(have) < policy.required_approvals:
        raise CodigitError(
            f"release {manifest['version']} has {len(have)} of the {policy.required_approvals} board approvals the "
            f"policy requires: `codigit release approve {manifest['version']} --by NAME`"
        )
    if dry_run_to is not None:
        public_folder(path, dry_run_to)
        return f"would upload {dry_run_to} to {repo}"
    from huggingface_hub import HfApi  # the real path; needs network and a token (HF_TOKEN)

    with tempfile.TemporaryDirectory() as tmp:
        folder = public_folder(path, Path(tmp) / "public")
        api = HfApi()
        api.create_repo(repo, repo_type="dataset", exist_ok=True, private=False)
        message = f"codigit release {manifest['version']} ({manifest['dataset_hash'][:12]})"
        api.upload_folder(repo_id=repo, repo_type="dataset", folder_path=str(folder), commit_message=message)
    return f"https://huggingface.co/datasets/{repo}"


def affected(pseudonym: str, releases_root: Path, runs_root: Path) -> tuple[list[dict], list[dict]]:
    """Every release that contains this person's text, and every run (from its provenance) trained on one."""
    hit = []
    for version, path in releases(releases_root).items():
        manifest = read_manifest(path)
        if pseudonym in manifest["pseudonyms"]:
            hit.append({"version": version, "dataset_hash": manifest["dataset_hash"], "path": str(path)})
    hashes = {h["dataset_hash"] for h in hit}
    runs = []
    for prov in sorted(Path(runs_root).glob("*/provenance.json")):
        try:
            release = json.loads(prov.read_text(encoding="utf-8")).get("release", {})
        except (OSError, json.JSONDecodeError):
            continue
        if release.get("dataset_hash") in hashes:
            runs.append({"run": prov.parent.name, "path": str(prov.parent), "release": release.get("version")})
    return hit, runs
