"""Collect -> release at 10k and 100k synthetic stories x 3 reviews: is the pipeline linear, what memory does a
release take, and what does a roster of 10,000 names cost against one of 100?

For each size: database rows shaped exactly as `codigit collect` reads them (workspace, dataset, record, fields,
user, role, answer values, time) go through the real `build_snapshot` and `write_snapshot`, then the real
`make_release` reads that snapshot from disk, applies the study's policy, scans every story for personal data
against an 84-name roster, and writes parquet, manifest and card. Collect and release each run in a process of
their own, so the peak RSS printed is the release's (the rows are made once, outside the timing). The server's
own SQL read is not timed (one statement; `tests/test_workflow.py` runs it for real). Then the smaller snapshot is
released again with rosters of 100 and of 10,000 names, and the scan alone is timed with each.

`--before DIR` runs the same stages, on the same rows, with the codigit in DIR as well (an earlier commit:
`git archive COMMIT | tar -x -C DIR`), checks that both releases have the same dataset hash, and prints both.
Last line: `release_time_ratio_100k_vs_10k: X` (goal <= 12, i.e. linear with a little slack).

    .venv/bin/python benchmarks/release_scale.py [--sizes 10000 100000] [--quick] [--before DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORDS = ("care work family career nurse engineer river coat bridge choir lab coin sister route kind brave quiet "
         "morning letter garden train city story mother father child friend teacher doctor").split()  # fmt: skip
STAMP = "2026-05-01 10:00:00.000000"
OLD_SCAN_SAMPLE = 200  # stories the old scan reads with each roster: its 10,000-name alternation takes ~0.1 s each


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


def roster(path: Path, n: int) -> Path:
    path.write_text("name\n" + "".join(f"Given{k} Family{k}\n" for k in range(n)))
    return path


def child(job: dict) -> dict:
    """One stage, in this process, with the codigit on PYTHONPATH: its seconds and this process's peak RSS."""
    import resource

    import codigit
    from codigit.release.policy import load_policy
    from codigit.study import load_study

    assert Path(codigit.__file__).is_relative_to(job["code"]), codigit.__file__  # the codigit asked for
    study = load_study(REPO / "annotation" / "study.yaml")
    out: dict = {}
    if job["stage"] == "collect":
        from codigit.records import write_snapshot
        from codigit.snapshot import build_snapshot

        data = pickle.loads(Path(job["rows"]).read_bytes())
        t0, c0 = time.perf_counter(), time.process_time()
        snapshot = build_snapshot(data, study, "benchmark")
        out["snapshot"] = str(write_snapshot(snapshot, Path(job["out"])))
        out |= {"seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0, "reviews": len(snapshot.reviews)}
    elif job["stage"] == "release":
        from codigit.release.manage import make_release

        t0, c0 = time.perf_counter(), time.process_time()
        path, manifest, plan = make_release("1.0.0", Path(job["snapshot"]), load_policy(REPO / "annotation" /
                                            "policy.yaml"), study, Path(job["out"]), Path(job["roster"]))  # fmt: skip
        out |= {"seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0}
        assert not plan.blocked, plan.blocked[:3]
        out |= {"records": manifest.counts["train"] + manifest.counts["test"], "dataset_hash": manifest.dataset_hash,
                "parquet_mb": sum(p.stat().st_size for p in (path / "data").glob("*.parquet")) / 1e6}  # fmt: skip
    else:  # the scan alone, over the snapshot's stories (or the first `limit`), the roster's matcher included
        from codigit.records import read_snapshot
        from codigit.release.pii import names_pattern, roster_names, scan

        stories = read_snapshot(Path(job["snapshot"])).stories[: job.get("limit")]
        t0, c0 = time.perf_counter(), time.process_time()
        names = names_pattern(roster_names(Path(job["roster"])))
        c1 = time.process_time()
        found = sum(len(scan(f"{s.prompt}\n{s.story}", names)) for s in stories)
        out |= {"seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0, "build_cpu": c1 - c0,
                "stories": len(stories), "found": found}  # fmt: skip
    return out | {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run(job: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": job["code"]}
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)], env=env, capture_output=True,
                          text=True, check=False)  # fmt: skip
    if done.returncode:
        raise SystemExit(f"{job['stage']} with {job['code']} failed:\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])


def sizes(n: int, work: Path, codes: dict[str, str]) -> dict[str, dict]:
    """Collect and release n stories with each codigit, on the same rows."""
    rows_file = work / f"rows-{n}.pkl"
    rows_file.write_bytes(pickle.dumps(rows(n, random.Random(n))))
    out = {}
    for label, code in codes.items():
        base = {"code": code, "roster": str(roster(work / "roster-84.csv", 84))}
        c = run(base | {"stage": "collect", "rows": str(rows_file), "out": str(work / f"{label}-snapshots-{n}")})
        r = run(base | {"stage": "release", "snapshot": c["snapshot"], "out": str(work / f"{label}-releases-{n}")})
        out[label] = {k: r[k] for k in ("records", "parquet_mb", "dataset_hash")} | {
            "stories": n, "reviews": c["reviews"], "collect_s": c["seconds"], "release_s": r["seconds"],
            "total_s": c["seconds"] + r["seconds"], "release_peak_rss_mb": r["peak_rss_mb"], "snapshot": c["snapshot"],
            "collect_cpu_s": c["cpu"], "release_cpu_s": r["cpu"], "total_cpu_s": c["cpu"] + r["cpu"],
        }  # fmt: skip
    rows_file.unlink()
    if "before" in out:
        assert out["before"]["dataset_hash"] == out["after"]["dataset_hash"], "the releases differ"
    return out


def rosters(snapshot: str, work: Path, codes: dict[str, str]) -> dict[str, float]:
    """Release and scan CPU seconds with 100 and with 10,000 roster names, on the same snapshot (the scan's the
    best of 3: on a shared machine its fraction of a second is easily disturbed)."""
    out = {}
    for k in (100, 10_000):
        job = {"code": codes["after"], "snapshot": snapshot, "roster": str(roster(work / f"roster-{k}.csv", k))}
        out[f"release_cpu_s {k} names"] = run(job | {"stage": "release", "out": str(work / f"rosters-{k}")})["cpu"]
        scanned = min((run(job | {"stage": "scan"}) for _ in range(3)), key=lambda r: r["cpu"])
        out[f"scan_cpu_s {k} names"] = scanned["cpu"]
        out[f"roster_build_cpu_s {k} names"] = scanned["build_cpu"]
        out[f"scan_cpu_us_per_story {k} names"] = (scanned["cpu"] - scanned["build_cpu"]) / scanned["stories"] * 1e6
        if "before" in codes:  # the old scan on a sample, scaled to all stories
            old = run(job | {"stage": "scan", "code": codes["before"], "limit": OLD_SCAN_SAMPLE})
            out[f"before scan_cpu_s {k} names"] = old["cpu"] / old["stories"] * scanned["stories"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[10_000, 100_000])
    parser.add_argument("--quick", action="store_true", help="1k and 10k stories (about a minute)")
    parser.add_argument("--before", type=Path, help="a folder holding an earlier codigit/ to compare with")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    small, large = (1_000, 10_000) if args.quick else args.sizes
    codes = {"after": str(REPO)} | ({"before": str(args.before.resolve())} if args.before else {})
    with tempfile.TemporaryDirectory() as tmp:
        results = {n: sizes(n, Path(tmp), codes) for n in (small, large)}
        roster_cost = rosters(results[small]["after"]["snapshot"], Path(tmp), codes)
    for n, by_code in results.items():
        r = by_code["after"]
        print(
            f"{n:>7} stories, {r['reviews']:>7} reviews -> {r['records']:>7} records ({r['parquet_mb']:.1f} MB parquet)"
        )
        for label, r in by_code.items():
            print(f"  {label:>6}: collect {r['collect_s']:.1f} s, release {r['release_s']:.1f} s, total "
                  f"{r['total_s']:.1f} s (CPU {r['total_cpu_s']:.1f} s); release peak RSS "
                  f"{r['release_peak_rss_mb']:.0f} MB")  # fmt: skip
    if args.before:
        print("same dataset hash before and after at both sizes")
    ratio = {label: results[large][label]["total_s"] / results[small][label]["total_s"] for label in codes}
    c = roster_cost
    scan_ratio = c["scan_cpu_s 10000 names"] / c["scan_cpu_s 100 names"]
    release_ratio = c["release_cpu_s 10000 names"] / c["release_cpu_s 100 names"]
    print(f"roster of 10,000 names vs 100, {small} stories, CPU: release {release_ratio:.2f}x; scan "
          f"{c['scan_cpu_s 10000 names']:.2f} s vs {c['scan_cpu_s 100 names']:.2f} s ({scan_ratio:.2f}x): reading the "
          f"roster and building its automaton {c['roster_build_cpu_s 10000 names']:.2f} s vs "
          f"{c['roster_build_cpu_s 100 names']:.2f} s, then {c['scan_cpu_us_per_story 10000 names']:.0f} vs "
          f"{c['scan_cpu_us_per_story 100 names']:.0f} µs a story")  # fmt: skip
    if args.before:
        print(f"  before: scan {c['before scan_cpu_s 10000 names']:.0f} s vs {c['before scan_cpu_s 100 names']:.1f} s "
              f"(from {OLD_SCAN_SAMPLE} stories, scaled)")  # fmt: skip
    print(f"size ratio {large / small:.0f}x; goal: time ratio <= 12 for 10x")
    print(f"release_time_ratio_{_k(large)}_vs_{_k(small)}: {ratio['after']:.2f}")
    from record import machine, record

    keys = ("records", "parquet_mb", "collect_s", "release_s", "total_s", "total_cpu_s", "release_peak_rss_mb")
    figures = {f"{'before ' if label == 'before' else ''}{_k(n)} {key}": round(r[key], 1) for n, by_code in
               results.items() for label, r in by_code.items() for key in keys}  # fmt: skip
    figures |= {f"roster {key}": round(v, 2) for key, v in roster_cost.items()}
    figures |= {"roster 10000/100 names scan ratio": round(scan_ratio, 2),
                "roster 10000/100 names release ratio": round(release_ratio, 2)}  # fmt: skip
    record("release_scale", {**figures, f"release_time_ratio_{_k(large)}_vs_{_k(small)}": round(ratio["after"], 2)},
           machine())  # fmt: skip


def _k(n: int) -> str:
    return f"{n // 1000}k"


if __name__ == "__main__":
    main()
