"""Contributed texts -> corpus release: preprocessing decisions, the contribution log, determinism, integrity."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from codigit.corpus.prepare import CorpusSettings, normalise, prepare, text_sha256
from codigit.corpus.release import DATA_FILE, LOG_CSV, LOG_JSONL, make_corpus_release, verify_corpus
from codigit.errors import CodigitError
from codigit.records import Consent, Contribution, Snapshot, SnapshotMeta, mirror_withdrawal, write_snapshot

AT = "2026-05-01T10:00:{:02d}.000000Z"

LIGHTHOUSE = """The lighthouse keeper climbed the spiral stairs every evening at the same hour, counting the steps as
his father had taught him. There were one hundred and twelve of them, worn smooth in the middle by two centuries of
boots. At the top he trimmed the wick, polished the great lens with a soft cloth, and watched the first beam swing
out across the water. Ships he would never meet passed in the dark and turned away from the rocks because of him.
He liked to think of their captains, tired and cold, seeing his light and feeling for a moment that someone was
awake on their behalf. In winter the storms came in from the west and shook the tower until the glass sang. He
kept a logbook of every night, the wind and the weather and the ships he saw, and he wrote in it with a pencil
because ink froze in January. When the company wrote to say that the light would soon be automatic, he read the
letter twice, folded it into the logbook, and went up the stairs as usual. The sea did not care who lit the lamp,
he told his sister on the telephone, but he did. On his last night he counted the steps again and found that
there were still one hundred and twelve, which surprised him, because he felt he had climbed a great many more."""

# the same story with three words changed: a re-submission, not a new text
LIGHTHOUSE_AGAIN = (
    LIGHTHOUSE.replace("soft cloth", "clean cloth").replace("cold, seeing", "weary, seeing").replace("pencil", "crayon")
)

MARKET = """On Saturdays the square filled with stalls before the sun was properly up. The baker arrived first, then
the woman who sold honey from her own hives, then the old man with his crates of apples and his radio that only
played brass bands. Children ran between the tables with coins hot in their hands, deciding and undeciding what to
buy. By ten the cheese seller had given away more samples than she had sold, and she said so to everyone, smiling.
Nobody remembered when the market had started, and nobody could imagine the town without it."""

GARDEN = """My grandmother kept a garden that looked wild to strangers and perfectly ordered to her. Every plant had a
reason to be where it was: the marigolds kept insects from the beans, the tall sunflowers shaded the lettuces in
August, and the mint lived in an old bucket because otherwise it would take over the world. She talked to the
plants while she weeded, not in a sentimental way, but the way you talk to colleagues. When she died we found her
notebooks, forty years of sowing dates and first frosts, written in a small careful hand."""

TRAIN = """The night train left the capital at eleven and arrived at the coast a little after dawn. I always booked
the top bunk so that I could lie awake and watch the lights of small stations slide past the window. Somewhere in
the middle of the country the train would stop for a long time in the dark, for no reason anyone ever explained,
and the whole carriage would hold its breath. Then the engine would sigh, the couplings would clank one after
another down the length of the train, and we would move again, slowly at first, towards the sea."""

CONTACT = """I started the reading group in the back room of the library with six people and a box of biscuits.
Within a year there were thirty of us, and we had to move to the community hall on Thursdays. We read novels,
mostly, but once a month someone brings a poem and we spend the whole evening on it, arguing happily. If you would
like to join us, or to suggest a book, write to me at reading.group.host@example.org and I will add you to the list.
Everyone is welcome, whether or not they have finished the book, and the biscuits are still free."""

FRENCH = """Le matin, la ville se réveillait lentement. Les boulangers ouvraient leurs portes les premiers, et l'odeur
du pain chaud se répandait dans les rues encore vides. Puis venaient les marchands de journaux, les cafés qui
sortaient leurs terrasses, et enfin les enfants qui couraient vers l'école avec leurs cartables trop lourds. Ma
grand-mère disait toujours que l'on pouvait deviner la saison rien qu'à la couleur de la lumière sur les toits, et
elle avait raison, même si je ne l'ai compris que bien plus tard, quand j'ai quitté la ville pour toujours."""

SECRET = """This story is about the winter my brother and I built a boat in our parents' garage. Neither of us knew
anything about boats, and the library had only one book on the subject, from 1952, with instructions that assumed
you owned a steam-bending box and a great deal of patience. We had neither. What we had was a lot of plywood, a
borrowed saw, and a conviction that the river would be kind to us. It was not, but we floated for eleven glorious
minutes before we had to swim, and our mother still has the photograph on her kitchen wall."""

MEADOW = """In the meadow behind the school the grass grew taller than we were by the end of June, and we made
tunnels through it that only we knew how to find. Our teacher pretended not to notice when we came back from the
lunch break with seeds in our hair. I remember the sound of the bees more than anything, a steady hum that seemed
to come from the ground itself, and the smell of the hay when the farmer finally cut it in July and our tunnels
disappeared overnight. We mourned them for a week and then started planning the next summer's maze."""

PEOPLE = {  # pseudonym -> the credit name they chose, or None
    "p-001": "Ada L.",
    "p-002": None,
    "p-003": "Grace H.",
    "p-004": None,
    "p-005": "Rosalind F.",
    "p-006": "Hidden Person",  # gave a credit name but never consented to training
}


def contribution(n: int, author: str, title: str, text: str, source: str = "form", **extra) -> Contribution:
    cid = f"00000000-0000-0000-0000-{n:012d}" if source == "form" else "import-" + text_sha256(text)[:16]
    return Contribution(contribution_id=cid, author=author, title=title, text=text, licence="own_work",
                        attribution_name=PEOPLE[author], keep=n % 2 == 0, source=source,
                        submitted_at=AT.format(n), **extra)  # fmt: skip


def contributions() -> list[Contribution]:
    return [
        contribution(1, "p-001", "The Lighthouse", LIGHTHOUSE),
        contribution(2, "p-002", "Lighthouse (again)", LIGHTHOUSE_AGAIN),  # near duplicate: later, removed
        contribution(3, "p-003", "Market Day", MARKET),
        contribution(4, "p-002", "Market day, pasted", MARKET.replace("\n", "  \r\n") + "\n\n\n\n"),  # exact duplicate
        contribution(5, "p-004", "La ville", FRENCH),
        contribution(6, "p-001", "A short one", "Ten words are not enough to teach a model anything."),
        contribution(7, "p-005", "Reading group", CONTACT),  # an email address: held by the personal-data scan
        contribution(8, "p-006", "The boat", SECRET),  # no consent to training
        contribution(9, "p-003", "Grandmother's garden", GARDEN, source="import"),
        contribution(10, "p-004", "Night train", TRAIN, licence_name="", source="import"),
        contribution(11, "p-001", "=Meadow", MEADOW),  # a title a spreadsheet would run as a formula
    ]


def consents() -> list[Consent]:
    return [Consent(participant=p, version="1.0", training=p != "p-006", public=True, attribution_name=name,
                    given_at=AT.format(0)) for p, name in PEOPLE.items()]  # fmt: skip


def snapshot_dir(root: Path) -> Path:
    meta = SnapshotMeta(snapshot_id="20260501T100000Z", created_at=AT.format(0), source="test", codigit_version="0",
                        consent_version="1.0", counts={})  # fmt: skip
    snap = Snapshot(meta=meta, stories=[], reviews=[], consent=consents(), positionality=[], withdrawals=[],
                    contributions=contributions())  # fmt: skip
    return write_snapshot(snap, root / "snapshots")


KEEP_CONTACT = {"00000000-0000-0000-0000-000000000007": "keep"}


def words(n: int) -> int:  # a cheap tokenizer for tests that do not look at token counts: one token per word
    return n


def reasons(items) -> dict[str, str | None]:
    return {p.contribution.title: p.reason for p in items}


def test_normalise_keeps_paragraphs_and_cleans_the_rest():
    raw = "  Caf\u0065\u0301 au lait \r\n\r\nsecond\x00 line\t \rthird\n\n\n\n\nlast  \n"
    assert normalise(raw) == "Caf\u00e9 au lait\n\nsecond line\nthird\n\nlast"
    assert normalise(normalise(raw)) == normalise(raw)


def test_every_filter_decides_and_says_why():
    prep = prepare(contributions(), consents(), CorpusSettings(languages=["en"]))
    assert reasons(prep.items) == {
        "The Lighthouse": None,
        "Lighthouse (again)": "near_duplicate",
        "Market Day": None,
        "Market day, pasted": "duplicate",
        "La ville": "language",
        "A short one": "too_short",
        "Reading group": "personal_data",
        "The boat": "no_consent",
        "Grandmother's garden": None,
        "Night train": None,
        "=Meadow": None,
    }
    by_title = {p.contribution.title: p for p in prep.items}
    kept = by_title["The Lighthouse"].key
    near = by_title["Lighthouse (again)"].detail
    assert near.startswith(f"near copy of {kept} (Jaccard 0.") and float(near.split()[-1].rstrip(")")) >= 0.8
    assert by_title["Market day, pasted"].detail == f"same text as {by_title['Market Day'].key}"
    assert by_title["La ville"].language == "fr" and "detected fr" in by_title["La ville"].detail
    assert all(p.language == "en" for p in prep.items if p.included)
    assert "@" not in by_title["Reading group"].detail and "email" in by_title["Reading group"].detail
    assert [p.contribution.title for p in prep.awaiting_decision()] == ["Reading group"]
    # an organiser's decision to keep lets it in; French is in when French is allowed
    prep = prepare(contributions(), consents(), CorpusSettings(languages=["en", "fr"]), KEEP_CONTACT)
    assert reasons(prep.items)["Reading group"] is None and reasons(prep.items)["La ville"] is None
    assert prep.decisions == {by_title["Reading group"].key: "keep"} and not prep.awaiting_decision()


def test_length_limits_and_a_decision_to_exclude_bound_to_the_text():
    sha = text_sha256(CONTACT)
    prep = prepare(contributions(), consents(), CorpusSettings(max_chars=1000), {sha: "exclude"})
    by_title = {p.contribution.title: p for p in prep.items}
    assert by_title["The Lighthouse"].reason == "too_long" and "more than 1,000" in by_title["The Lighthouse"].detail
    # the later copy is no longer shadowed by a text that is out for another reason
    assert by_title["Lighthouse (again)"].reason == "too_long"
    assert by_title["Reading group"].detail == "email; excluded by an organiser's decision"
    assert prep.decisions == {sha[:16]: "exclude"} and not prep.awaiting_decision()


def test_withdrawn_people_leave_no_row_and_their_copy_no_longer_shadows_another(tmp_path: Path):
    snap = snapshot_dir(tmp_path)
    mirror_withdrawal(tmp_path / "snapshots", "p-003", AT.format(30))  # after the snapshot was taken
    path = make_corpus_release("0.1.0", snap, out_root=tmp_path / "corpus", tokenizer=str.split)
    log = [json.loads(line) for line in (path / LOG_JSONL).read_text().splitlines()]
    assert len(log) == len(contributions()) - 2 and "Grace H." not in (path / LOG_CSV).read_text()
    assert next(r for r in log if r["title"] == "Market day, pasted")["included"] == "yes"
    manifest = verify_corpus(path)
    assert manifest["excluded"]["withdrawn"] == 2 and manifest["excluded"]["duplicate"] == 0


def test_the_earlier_of_two_copies_is_kept_whoever_is_listed_first():
    prep = prepare(list(reversed(contributions())), consents())
    assert (
        reasons(prep.items)["The Lighthouse"] is None and reasons(prep.items)["Lighthouse (again)"] == "near_duplicate"
    )


def test_bad_settings_and_decisions_are_one_line_errors():
    with pytest.raises(CodigitError, match="cannot be detected by py3langid") as e:
        prepare(contributions(), consents(), CorpusSettings(languages=["xx"]))
    assert "\n" not in str(e.value)
    with pytest.raises(CodigitError, match="must be keep or exclude"):
        prepare(contributions(), consents(), decisions={"x": "maybe"})


def test_release_log_matches_the_data_and_names_no_pseudonym(tmp_path: Path):
    import pyarrow.parquet as pq

    snap = snapshot_dir(tmp_path)
    path = make_corpus_release("0.1.0", snap, CorpusSettings(), tmp_path / "corpus", decisions=KEEP_CONTACT)
    rows = {r["id"]: r for r in pq.read_table(path / DATA_FILE).to_pylist()}
    log = [json.loads(line) for line in (path / LOG_JSONL).read_text().splitlines()]
    with open(path / LOG_CSV, newline="") as f:
        table = list(csv.DictReader(f))
    assert len(log) == len(table) == len(contributions())  # one row per contribution, included or not
    assert [r["sha256"] for r in table] == [r["sha256"] for r in log]
    included = [r for r in log if r["included"] == "yes"]
    assert {r["id"] for r in included} == rows.keys() and len(rows) == 6
    for r in included:
        import hashlib

        assert hashlib.sha256(rows[r["id"]]["text"].encode()).hexdigest() == r["sha256"]
        assert rows[r["id"]]["tokens"] == r["tokens"] > 0
    assert all(r["tokens"] == 0 and r["reason"] for r in log if r["included"] == "no")
    assert {r["contributor"] for r in log} == {"Ada L.", "anonymous", "Grace H.", "Rosalind F."}
    boat = next(r for r in log if r["reason"] == "no_consent")
    assert boat["title"] == "(withheld)" and boat["contributor"] == "anonymous"
    assert next(r for r in table if r["title"].endswith("Meadow"))["title"] == "'=Meadow"  # inert in a spreadsheet
    assert rows[next(r["id"] for r in log if r["title"] == "The Lighthouse")]["attribution"] == "Ada L."
    manifest = json.loads((path / "manifest.json").read_text())
    out = {
        "no_consent": 1,
        "not_reviewed": 0,
        "rejected": 0,
        "too_short": 1,
        "too_long": 0,
        "language": 1,
        "personal_data": 0,
        "duplicate": 1,
    }
    assert manifest["excluded"] == {**out, "near_duplicate": 1, "withdrawn": 0}
    assert manifest["counts"]["tokens"] == sum(r["tokens"] for r in rows.values())
    assert manifest["tokenizer"].startswith("llama3") and manifest["source"]["snapshot_id"] == "20260501T100000Z"
    # nothing in the release ties a text to a person beyond the name they chose: no pseudonym, no contribution id
    secrets = [*PEOPLE, "Hidden Person", *(c.contribution_id for c in contributions()), "The boat"]
    for file in path.rglob("*"):
        if file.is_file():
            body = file.read_bytes()
            assert not [s for s in secrets if s.encode() in body], file.name
    card = (path / "README.md").read_text()
    assert card.startswith("---\nlicense: other\n") and "own_work" in card and "verbatim" in card


def test_same_inputs_same_bytes_and_verify_catches_a_changed_byte(tmp_path: Path):
    snap = snapshot_dir(tmp_path)
    a = make_corpus_release("0.1.0", snap, out_root=tmp_path / "a", decisions=KEEP_CONTACT, tokenizer=str.split)
    b = make_corpus_release("0.1.0", snap, out_root=tmp_path / "b", decisions=KEEP_CONTACT, tokenizer=str.split)
    for name in (DATA_FILE, LOG_CSV, LOG_JSONL, "README.md"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    ma, mb = verify_corpus(a), verify_corpus(b)
    assert ma["dataset_hash"] == mb["dataset_hash"] and ma["tokenizer"] == "str.split"
    other = make_corpus_release("0.1.0", snap, CorpusSettings(min_words=10), tmp_path / "c", KEEP_CONTACT, str.split)
    assert verify_corpus(other)["dataset_hash"] != ma["dataset_hash"]  # the settings are part of the hash
    with pytest.raises(CodigitError, match="already exists"):
        make_corpus_release("0.1.0", snap, out_root=tmp_path / "a", tokenizer=str.split)
    data = bytearray((a / DATA_FILE).read_bytes())
    data[len(data) // 2] ^= 0x01
    (a / DATA_FILE).write_bytes(bytes(data))
    with pytest.raises(CodigitError, match="was modified after the release was made") as e:
        verify_corpus(a)
    assert "\n" not in str(e.value)


def test_nothing_qualifies_is_one_line_and_leaves_no_folder(tmp_path: Path):
    snap = snapshot_dir(tmp_path)
    with pytest.raises(CodigitError, match="no text qualifies") as e:
        make_corpus_release("0.1.0", snap, CorpusSettings(min_words=10_000), tmp_path / "corpus", tokenizer=str.split)
    assert "\n" not in str(e.value) and not (tmp_path / "corpus" / "0.1.0").exists()


@pytest.mark.slow
def test_release_loads_with_plain_datasets(tmp_path: Path):
    path = make_corpus_release("0.1.0", snapshot_dir(tmp_path), out_root=tmp_path / "corpus", tokenizer=str.split)
    code = (
        "import sys, datasets\n"
        f"ds = datasets.load_dataset({str(path)!r})\n"
        "assert list(ds) == ['train'] and 'codigit' not in sys.modules\n"
        "print(ds['train'].num_rows, sorted(ds['train'].column_names))\n"
    )
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    n, columns = out.stdout.strip().splitlines()[-1].split(" ", 1)
    assert int(n) == 5 and "tokens" in columns and "attribution" in columns  # the email text awaits a decision


def test_the_cli_decides_by_the_key_it_shows_and_records_who_is_in_the_release(tmp_path):
    from conftest import codigit

    snap, out = snapshot_dir(tmp_path), tmp_path / "corpus"
    first = codigit("corpus", "release", "0.1.0", "--snapshot", str(snap), "--out", str(out), "--data", str(tmp_path))
    assert first.returncode == 0, first.stderr
    held = [line for line in first.stdout.splitlines() if line.startswith("personal data? text ")]
    assert len(held) == 1  # the reading group's email address
    key = held[0].split()[3]
    decided = codigit("corpus", "decide", key, "keep", "--by", "Organiser", "--out", str(out))
    assert decided.returncode == 0, decided.stderr
    second = codigit("corpus", "release", "0.2.0", "--snapshot", str(snap), "--out", str(out), "--data", str(tmp_path))
    assert second.returncode == 0 and "personal data?" not in second.stdout, second.stdout + second.stderr
    with (out / "0.2.0" / "contribution_log.csv").open(newline="", encoding="utf-8") as f:
        row = next(r for r in csv.DictReader(f) if r["title"] == "Reading group")
    assert row["included"] == "yes" and row["id"] == key
    who = json.loads((out / "contributors" / "0.2.0.json").read_text())
    assert "p-005" in who["pseudonyms"] and "p-006" not in who["pseudonyms"]  # p-006 gave no consent
    verified = codigit("corpus", "verify", str(out / "0.2.0"), "--data", str(tmp_path))
    assert verified.returncode == 0, verified.stderr
