"""Collect -> release at 10k and 100k synthetic stories x 3 reviews, in one run; is the pipeline linear?

For each size: database rows shaped exactly as `codigit collect` reads them (workspace, dataset, record, fields,
user, role, answer values, time) go through the real `build_snapshot` and `write_snapshot`, then the real
`make_release` reads that snapshot from disk, applies the study's policy, scans every story for personal data
against an 84-name roster, and writes parquet, manifest and card. The server's own SQL read is not timed (it is
one statement; `tests/test_workflow.py` runs it for real). Last line: `release_time_ratio_100k_vs_10k: X`
(goal <= 12, i.e. linear with a little slack).

    .venv/bin/python benchmarks/release_scale.py [--sizes 10000 100000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
import uuid
from pathlib import Path

from codigit.records import write_snapshot
from codigit.release.manage import make_release
from codigit.release.policy import load_policy
from codigit.snapshot import build_snapshot
from codigit.study import load_study

REPO = Path(__file__).resolve().parents[1]
WORDS = ("care work family career nurse engineer river coat bridge choir lab coin sister route kind brave quiet "
         "morning letter garden train city story mother father child friend teacher doctor").split()  # fmt: skip
STAMP = "2026-05-01 10:00:00.000000"


def rows(n: int, rng: random.Random) -> list[tuple]:
    """n stories by n/12 participants (about 12 each), each with consent, 3 reviews by other participants."""
    people = [f"p-{k:010x}" for k in range(max(4, n // 12))]
    out = []
    for who in people:
        consent = {"training": "yes", "public": rng.choice(["yes", "no"]), "attribution": "none"}
        out.append((who, "consent", uuid.uuid4().hex, "consent-1.0", "{}", who, "annotator", _vals(consent), STAMP))
        about = {"use": "yes", "gender_identity": rng.choice(["woman", "man", "non_binary"])}
        out.append((who, "about-you", uuid.uuid4().hex, "about-you", "{}", who, "annotator", _vals(about), STAMP))
    for i in range(n):
        author = people[i % len(people)]
        prompt = f"Question {i}: " + " ".join(rng.choices(WORDS, k=12)) + "?"
        story = " ".join(rng.choices(WORDS, k=rng.randint(150, 450))) + "."
        record = uuid.uuid4()
        values = _vals({"prompt": prompt, "story": story})
        out.append((author, "stories", record.hex, f"inv-{i}", "{}", author, "annotator", values, STAMP))
        fields = json.dumps({"prompt": prompt, "story": story})
        for reviewer in rng.sample([p for p in people if p != author], 3):
            rating = rng.choice([3, 4, 4, 5, 5, 2])
            review = {"rating": rating, "decision": "include" if rating >= 3 else "exclude",
                      "themes": rng.sample(["work", "family_care", "identity"], 1)}  # fmt: skip
            out.append(("codigit", "review-1", uuid.uuid4().hex, str(record), fields, reviewer, "annotator",
                        _vals(review), STAMP))  # fmt: skip
    return out


def _vals(answers: dict) -> str:
    return json.dumps({k: {"value": v} for k, v in answers.items()})


def run(n: int, work: Path) -> dict:
    study = load_study(REPO / "annotation" / "study.yaml")
    policy = load_policy(REPO / "annotation" / "policy.yaml")
    roster = work / "roster.csv"
    roster.write_text("name\n" + "".join(f"Given{k} Family{k}\n" for k in range(84)))
    data = rows(n, random.Random(n))
    t0 = time.perf_counter()
    snapshot = build_snapshot(data, study, "benchmark")
    snap_dir = write_snapshot(snapshot, work / f"snapshots-{n}")
    t1 = time.perf_counter()
    path, manifest, plan = make_release("1.0.0", snap_dir, policy, study, work / f"releases-{n}", roster)
    t2 = time.perf_counter()
    assert not plan.blocked, plan.blocked[:3]
    return {"stories": n, "reviews": len(snapshot.reviews), "collect_s": t1 - t0, "release_s": t2 - t1,
            "total_s": t2 - t0, "records": manifest["counts"]["train"] + manifest["counts"]["test"],
            "parquet_mb": sum(p.stat().st_size for p in (path / "data").glob("*.parquet")) / 1e6}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[10_000, 100_000])
    parser.add_argument("--quick", action="store_true", help="1k and 10k stories (about half a minute)")
    args = parser.parse_args()
    small, large = (1_000, 10_000) if args.quick else args.sizes
    with tempfile.TemporaryDirectory() as tmp:
        results = [run(n, Path(tmp)) for n in (small, large)]
    for r in results:
        print(f"{r['stories']:>7} stories, {r['reviews']:>7} reviews -> {r['records']:>7} records "
              f"({r['parquet_mb']:.1f} MB parquet): collect {r['collect_s']:.1f} s, release {r['release_s']:.1f} s, "
              f"total {r['total_s']:.1f} s")  # fmt: skip
    ratio = results[1]["total_s"] / results[0]["total_s"]
    print(f"size ratio {large / small:.0f}x; goal: time ratio <= 12 for 10x")
    print(f"release_time_ratio_{_k(large)}_vs_{_k(small)}: {ratio:.2f}")
    from record import machine, record

    figures = {f"{_k(r['stories'])} {key}": round(r[key], 1) for r in results
               for key in ("records", "parquet_mb", "collect_s", "release_s", "total_s")}  # fmt: skip
    record("release_scale", {**figures, f"release_time_ratio_{_k(large)}_vs_{_k(small)}": round(ratio, 2)}, machine())


def _k(n: int) -> str:
    return f"{n // 1000}k"


if __name__ == "__main__":
    main()
