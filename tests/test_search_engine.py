"""Contract tests for codigit's search engine (`codigit/server/search.py`), through the real argilla-server API.

Every expectation is what argilla-server's Elasticsearch engine (`search_engine/commons.py`) answers for the same
data: simple_query_string AND semantics with bm25, terms/range filters, per-user response views, missing values
sorted last, cosine similarity scored (1 + cos) / 2. Datasets live in their own workspace, created once per module.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import httpx
import pytest
from search_api import (
    LABEL,
    PENDING_QUEUE,
    Dataset,
    add_annotator,
    by,
    create_dataset,
    ok,
    range_,
    search,
    terms,
    where,
)

WORKSPACE = "search-contract"
# Fixed annotator ids, so that their annotation queues (a rotation starting at a per-user point, see
# `user_rotation_start`) start about half the id space apart: the "different orders" check cannot be luck.
ANNOTATOR_IDS = {"a": "5ea4c000-0000-4000-8000-000000000002", "b": "5ea4c000-0000-4000-8000-000000000008"}

TEXTS = {  # external id: (title, body)
    "k0": ("apple harvest", "apple apple orchard report today"),
    "k1": ("banana bread", "banana apple recipe with walnuts"),
    "k2": ("fox story", "the quick brown fox jumps"),
    "k3": ("fox fable", "the fox was quick and brown"),
    "k4": ("market news", "bananas and apples prices rise"),
    "k5": ("zebra report", "a zebra near the water"),
    "k6": ("river news", "a heron near the river"),
    "k7": ("river walk", "the river bank at dawn and dusk"),
    "k8": ("lorem", "lorem ipsum dolor sit amet"),
    "k9": ("apple", "cherry"),
}
META = {  # k7 has no genre and no words, k8 no ratio
    "k0": dict(genre="news", topics=["tech", "politics"], words=5, ratio=0.05),
    "k1": dict(genre="blog", topics=["arts"], words=10, ratio=0.15),
    "k2": dict(genre="review", topics=["sports"], words=15, ratio=0.25),
    "k3": dict(genre="review", topics=["sports", "arts"], words=20, ratio=0.35),
    "k4": dict(genre="news", topics=["politics"], words=25, ratio=0.45),
    "k5": dict(genre="news", words=30, ratio=0.55),
    "k6": dict(genre="blog", words=35, ratio=0.65),
    "k7": dict(ratio=0.75),
    "k8": dict(genre="news", words=45),
    "k9": dict(genre="review", words=50, ratio=0.95),
}
VECTORS = {  # "emb"; k8 has none
    "k0": [1, 0, 0],
    "k1": [0.9, 0.1, 0],
    "k2": [0, 1, 0],
    "k3": [0.5, 0.5, 0],
    "k4": [-1, 0, 0],
    "k5": [0.1, 0, 1],
    "k6": [1, 1, 1],
    "k7": [0.2, -0.3, 0.9],
    "k9": [0.7, 0.7, 0.1],
}
SUGGESTIONS = {  # external id: [(question, value, agent, score)]
    "k0": [("label", "pos", "model-a", 0.9)],
    "k1": [("label", "neg", "model-a", 0.4)],
    "k2": [("label", "pos", "model-b", 0.3)],
    "k3": [("tags", ["a", "b"], "model-b", [0.2, 0.8])],
    "k4": [("tags", ["c"], "model-c", [0.6])],
}
RESPONSES = [  # (annotator, external id, status, values); min_submitted=1, so a submission completes the record
    ("a", "k0", "submitted", dict(label="pos", tags=["a"], quality=5)),
    ("a", "k1", "submitted", dict(label="neg", tags=["a", "b"], quality=2)),
    ("b", "k1", "submitted", dict(label="neg", tags=["b"], quality=3)),
    ("a", "k2", "draft", dict(label="pos", quality=4)),
    ("b", "k3", "discarded", {}),
    ("b", "k4", "submitted", dict(label="neu", tags=["c"], quality=1)),
]
QUESTIONS = {
    "label": LABEL,
    "tags": {"type": "multi_label_selection", "options": [{"value": v, "text": v} for v in "abc"]},
    "quality": {"type": "rating", "options": [{"value": v} for v in range(1, 6)]},
}
METADATA = {"genre": "terms", "topics": "terms", "words": "integer", "ratio": "float"}
ALL = set(TEXTS)


@pytest.fixture(scope="module")
def workspace(owner) -> str:
    return ok(owner.post("/workspaces", json={"name": WORKSPACE}))["id"]


@pytest.fixture(scope="module")
def annotators(server, owner, workspace) -> dict[str, httpx.Client]:
    clients = {
        name: add_annotator(server, owner, workspace, f"contract-{name}", uid) for name, uid in ANNOTATOR_IDS.items()
    }
    yield clients
    for client in clients.values():
        client.close()


@pytest.fixture(scope="module")
def main(owner, workspace, annotators) -> Dataset:
    items = [
        {
            "external_id": ext,
            "fields": {"title": title, "body": body},
            "metadata": META[ext],
            **({"vectors": {"emb": VECTORS[ext]}} if ext in VECTORS else {}),
            "suggestions": [
                {"question": q, "value": v, "agent": a, "score": s} for q, v, a, s in SUGGESTIONS.get(ext, [])
            ],
        }
        for ext, (title, body) in TEXTS.items()
    ]
    ds = create_dataset(owner, workspace, "contract", items, questions=QUESTIONS, metadata=METADATA, vectors=3)
    for who, ext, status, values in RESPONSES:
        body = {"values": {q: {"value": v} for q, v in values.items()}, "status": status}
        ok(annotators[who].post(f"/records/{ds.ids[ext]}/responses", json=body))
    return ds


# -- text search ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "q, field, expected",
    [
        ("apple", None, ["k0", "k9", "k1"]),  # bm25: 3 hits > 1 hit in a short text > 1 hit in a longer one
        ("zebra | river", None, ["k5", "k6", "k7"]),  # same tf and length: the rarer term ranks higher
        ("APPLE banana", None, ["k1"]),  # every term is required; case folds
        ("apple cherry", None, ["k9"]),  # terms may match in different fields
        ("quick brown", None, ["k2", "k3"]),
        ('"quick brown fox"', None, ["k2"]),
        ('"quick fox"~1', None, ["k2", "k3"]),  # slop, as FTS5 NEAR: k3 has the words in the other order
        ("apple~1", None, ["k0", "k9", "k1"]),  # fuzziness: the exact term at least
        ('"apple cherry"', None, []),  # a phrase does not span two fields
        ('"harvest apple"', None, []),
        ("apple -banana", None, ["k0", "k9"]),
        ("-apple", None, {"k2", "k3", "k4", "k5", "k6", "k7", "k8"}),  # no stemming: "apples" is not "apple"
        ("banan*", None, {"k1", "k4"}),
        ("apple*", None, {"k0", "k1", "k4", "k9"}),
        ("apple", "title", ["k9", "k0"]),  # per field: "apple" alone is the shorter title
        ("apple", "body", ["k0", "k1"]),
        ("river -heron", "body", ["k7"]),
        ("xylophone", None, []),
        ("apple xylophone", None, []),
    ],
)
def test_text_search(owner, main, q, field, expected):
    got, total = search(owner, main, {"query": {"text": {"q": q, **({"field": field} if field else {})}}})
    assert (set(got) if isinstance(expected, set) else got) == expected
    assert total == len(expected)


def test_text_search_scores_and_unknown_field(owner, main):
    result = ok(owner.post(f"/datasets/{main.id}/records/search", json={"query": {"text": {"q": "apple"}}}))
    scores = [item["query_score"] for item in result["items"]]
    assert scores == sorted(scores, reverse=True) and scores[-1] > 0 and len(set(scores)) == 3
    body = {"query": {"text": {"q": "apple", "field": "nope"}}}
    assert owner.post(f"/datasets/{main.id}/records/search", json=body).status_code == 422


# -- filters -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "filters, expected",
    [
        ([terms("metadata", ["news"], metadata_property="genre")], {"k0", "k4", "k5", "k8"}),
        ([terms("metadata", ["blog", "review"], metadata_property="genre")], {"k1", "k2", "k3", "k6", "k9"}),
        ([terms("metadata", ["arts"], metadata_property="topics")], {"k1", "k3"}),  # any element of a list
        ([range_("metadata", 20, 35, metadata_property="words")], {"k3", "k4", "k5", "k6"}),  # bounds included
        ([range_("metadata", le=10, metadata_property="words")], {"k0", "k1"}),
        ([range_("metadata", 0.2, 0.4, metadata_property="ratio")], {"k2", "k3"}),
        ([range_("metadata", ge=0.9, metadata_property="ratio")], {"k9"}),
        (
            [terms("metadata", ["news"], metadata_property="genre"), range_("metadata", 20, metadata_property="words")],
            {"k4", "k5", "k8"},
        ),
        ([terms("suggestion", ["pos"], question="label")], {"k0", "k2"}),
        ([terms("suggestion", ["pos"], question="label", property="value")], {"k0", "k2"}),
        ([range_("suggestion", ge=0.5, question="label", property="score")], {"k0"}),
        ([range_("suggestion", le=0.4, question="label", property="score")], {"k1", "k2"}),
        ([terms("suggestion", ["model-b"], question="label", property="agent")], {"k2"}),  # k3's is on "tags"
        ([terms("suggestion", ["b"], question="tags")], {"k3"}),
        ([range_("suggestion", ge=0.7, question="tags", property="score")], {"k3"}),
        ([terms("response", ["submitted"], property="status")], {"k0", "k1", "k4"}),  # anyone's responses
        ([terms("response", ["draft", "discarded"], property="status")], {"k2", "k3"}),
        ([terms("response", ["pending"], property="status")], {"k5", "k6", "k7", "k8", "k9"}),  # nobody's
        ([terms("response", ["neg"], question="label")], {"k1"}),
        ([terms("response", ["a"], question="tags")], {"k0", "k1"}),
        ([range_("response", ge=3, question="quality")], {"k0", "k1", "k2"}),  # drafts count, as in Elasticsearch
        ([terms("record", ["completed"], property="status")], {"k0", "k1", "k4"}),
        ([terms("record", ["pending"], property="status")], ALL - {"k0", "k1", "k4"}),
    ],
)
def test_filters(owner, main, filters, expected):
    got, total = search(owner, main, where(*filters))
    assert set(got) == expected and len(got) == total == len(expected)


def test_filter_combined_with_text(owner, main):
    news = terms("metadata", ["news"], metadata_property="genre")
    assert search(owner, main, where(news, query={"text": {"q": "apple"}})) == (["k0"], 1)


def test_record_property_filters(owner, main):
    """Record ids and dates arrive as text (or epoch milliseconds), as Elasticsearch's keyword and date fields take."""
    listed = ok(owner.get(f"/datasets/{main.id}/records", params={"limit": 100}))["items"]
    inserted = {r["external_id"]: r["inserted_at"] for r in listed}
    by_id = terms("record", [main.ids["k1"], main.ids["k2"], "not-a-uuid"], property="id")
    assert sorted(search(owner, main, where(by_id))[0]) == ["k1", "k2"]
    assert sorted(search(owner, main, where(terms("record", ["k3", "k9"], property="external_id")))[0]) == ["k3", "k9"]
    span = range_("record", inserted["k2"], inserted["k4"], property="inserted_at")  # ISO 8601, bounds included
    assert search(owner, main, where(span, sort=[by("record", "asc", property="inserted_at")]))[0] == ["k2", "k3", "k4"]
    hour_before = (datetime.fromisoformat(inserted["k0"]) - timedelta(hours=1)).isoformat() + "Z"
    millis = datetime.fromisoformat(hour_before).timestamp() * 1000
    assert search(owner, main, where(range_("record", ge=hour_before, property="updated_at")))[1] == 10
    assert search(owner, main, where(range_("record", le=millis, property="inserted_at")))[1] == 0
    assert search(owner, main, where(range_("record", ge=millis, property="inserted_at")))[1] == 10


@pytest.mark.parametrize(
    "who, body, expected",
    [
        ("a", where(terms("response", ["submitted"], property="status")), {"k0", "k1"}),
        ("a", where(terms("response", ["draft"], property="status")), {"k2"}),
        ("a", where(terms("response", ["discarded"], property="status")), set()),
        ("b", where(terms("response", ["submitted"], property="status")), {"k1", "k4"}),
        ("b", where(terms("response", ["discarded"], property="status")), {"k3"}),
        ("a", where(terms("response", ["pending"], property="status")), ALL - {"k0", "k1", "k2"}),
        ("a", PENDING_QUEUE, ALL - {"k0", "k1", "k2", "k4"}),  # k4: completed by b
        ("b", PENDING_QUEUE, ALL - {"k0", "k1", "k3", "k4"}),  # k0: completed by a
        ("a", where(terms("response", ["pending", "draft"], property="status")), ALL - {"k0", "k1"}),
        ("a", where(range_("response", ge=3, question="quality")), {"k0", "k2"}),  # only a's own values
        ("b", where(range_("response", ge=3, question="quality")), {"k1"}),
        ("a", where(terms("response", ["b"], question="tags")), {"k1"}),
        ("b", where(terms("response", ["a"], question="tags")), set()),
    ],
)
def test_annotator_views(annotators, main, who, body, expected):
    got, total = search(annotators[who], main, body, me=True)
    assert set(got) == expected and len(got) == total == len(expected)


# -- sorts and pagination --------------------------------------------------------------------------------------------
WORDS_ASC = ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k8", "k9"]


@pytest.mark.parametrize(
    "sort, expected",
    [
        ([by("record", "asc", property="inserted_at")], list(TEXTS)),
        ([by("record", "desc", property="inserted_at")], list(reversed(TEXTS))),
        ([by("metadata", "asc", metadata_property="words")], WORDS_ASC + ["k7"]),  # missing last...
        ([by("metadata", "desc", metadata_property="words")], WORDS_ASC[::-1] + ["k7"]),  # ...either way
        (
            [by("metadata", "desc", metadata_property="ratio")],
            ["k9", "k7", "k6", "k5", "k4", "k3", "k2", "k1", "k0", "k8"],
        ),
        (
            [by("metadata", "asc", metadata_property="genre"), by("metadata", "desc", metadata_property="words")],
            ["k6", "k1", "k8", "k5", "k4", "k0", "k9", "k3", "k2", "k7"],
        ),
        (  # a list sorts by its least element ascending, its greatest descending
            [by("metadata", "asc", metadata_property="topics"), by("metadata", "asc", metadata_property="words")],
            ["k1", "k3", "k0", "k4", "k2", "k5", "k6", "k8", "k9", "k7"],
        ),
        (
            [by("metadata", "desc", metadata_property="topics"), by("metadata", "asc", metadata_property="words")],
            ["k0", "k2", "k3", "k4", "k1", "k5", "k6", "k8", "k9", "k7"],
        ),
        ([by("suggestion", "desc", question="label", property="score")], ["k0", "k1", "k2", ...]),
        ([by("suggestion", "desc", question="tags", property="score")], ["k3", "k4", ...]),  # 0.8 of [0.2, 0.8]
        ([by("suggestion", "asc", question="tags", property="score")], ["k3", "k4", ...]),  # 0.2
        (
            [
                by("suggestion", "asc", question="label", property="agent"),
                by("metadata", "asc", metadata_property="words"),
            ],
            ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k8", "k9", "k7"],
        ),
        ([by("response", "asc", question="quality")], ["k4", "k1", "k2", "k0", ...]),  # k1: mean of 2 and 3
        ([by("response", "desc", question="quality")], ["k0", "k2", "k1", "k4", ...]),
    ],
)
def test_sort(owner, main, sort, expected):
    got, total = search(owner, main, {"sort": sort})
    assert total == 10 and sorted(got) == sorted(TEXTS)
    if ... in expected:  # the rest, without values, may come in any order
        expected = expected[:-1]
        got = got[: len(expected)]
    assert got == expected


def test_sort_by_own_response(annotators, main):
    got, _ = search(annotators["a"], main, {"sort": [by("response", "asc", question="quality")]}, me=True)
    assert got[:3] == ["k1", "k2", "k0"] and sorted(got) == sorted(TEXTS)
    got, _ = search(annotators["a"], main, {"sort": [by("response", "desc", question="quality")]}, me=True)
    assert got[:3] == ["k0", "k2", "k1"]


def test_pagination(owner, main):
    body = {"sort": [by("metadata", "desc", metadata_property="ratio")]}
    full, _ = search(owner, main, body)
    pages = [search(owner, main, body, offset=offset, limit=3) for offset in range(0, 12, 3)]
    assert [ext for page, _ in pages for ext in page] == full
    assert [total for _, total in pages] == [10] * 4 and len(pages[-1][0]) == 1
    assert search(owner, main, {"query": {"text": {"q": "apple"}}}, offset=1, limit=1) == (["k9"], 3)
    assert search(owner, main, body, offset=20, limit=3) == ([], 10)


@pytest.fixture(scope="module")
def queue(owner, workspace, annotators) -> Dataset:
    items = [{"external_id": f"q{i:02}", "fields": {"title": f"item {i}", "body": "queue"}} for i in range(40)]
    return create_dataset(owner, workspace, "contract-queue", items)


def test_annotation_queue_order_per_user(annotators, queue):
    orders = {}
    for who, client in annotators.items():
        order, total = search(client, queue, PENDING_QUEUE, me=True)
        assert total == 40 and sorted(order) == sorted(queue.ids)
        assert search(client, queue, PENDING_QUEUE, me=True)[0] == order  # deterministic
        pages = [search(client, queue, PENDING_QUEUE, me=True, offset=o, limit=7)[0] for o in range(0, 42, 7)]
        assert [ext for page in pages for ext in page] == order  # pages walk the same order, across the wrap
        assert search(client, queue, {}, me=True)[0] == order
        orders[who] = order
    assert orders["a"] != orders["b"]
    assert search(annotators["a"], queue, {}, me=True, offset=40) == ([], 40)


# -- progress and metrics --------------------------------------------------------------------------------------------
def test_progress(owner, annotators, main):
    progress = ok(owner.get(f"/datasets/{main.id}/progress"))
    assert (progress["total"], progress["completed"], progress["pending"]) == (10, 3, 7)
    a = ok(annotators["a"].get(f"/me/datasets/{main.id}/metrics"))["responses"]
    assert a == {"total": 10, "submitted": 2, "discarded": 0, "draft": 1, "pending": 7}
    b = ok(annotators["b"].get(f"/me/datasets/{main.id}/metrics"))["responses"]
    assert b == {"total": 10, "submitted": 2, "discarded": 1, "draft": 0, "pending": 7}


def test_metadata_metrics(owner, main):
    def metrics(name):
        return ok(owner.get(f"/metadata-properties/{main.metadata[name]}/metrics"))

    def counts(*pairs):
        return [{"term": t, "count": n} for t, n in pairs]

    assert metrics("genre") == {"type": "terms", "total": 9, "values": counts(("news", 4), ("review", 3), ("blog", 2))}
    topics = counts(("arts", 2), ("politics", 2), ("sports", 2), ("tech", 1))  # count desc, then term
    assert metrics("topics") == {"type": "terms", "total": 7, "values": topics}
    assert metrics("words") == {"type": "integer", "min": 5, "max": 50}
    assert metrics("ratio") == {"type": "float", "min": 0.05, "max": 0.95}


# -- vector similarity ---------------------------------------------------------------------------------------------
def cosine_ranking(query: list[float], exclude: str | None = None) -> list[tuple[str, float]]:
    def cos(v):
        return sum(x * y for x, y in zip(query, v, strict=True)) / math.hypot(*query) / math.hypot(*v)

    scored = [(ext, cos(vec)) for ext, vec in VECTORS.items() if ext != exclude]
    return sorted(scored, key=lambda pair: -pair[1])


@pytest.mark.parametrize("order", ["most_similar", "least_similar"])
def test_vector_search_by_value(owner, main, order):
    body = {"query": {"vector": {"name": "emb", "value": [1, 0, 0], "order": order}}}
    result = ok(owner.post(f"/datasets/{main.id}/records/search", json=body, params={"limit": 1000}))
    expected = cosine_ranking([1, 0, 0])
    if order == "least_similar":  # Elasticsearch searches with the negated vector
        expected = [(ext, -c) for ext, c in reversed(expected)]
    assert [item["record"]["external_id"] for item in result["items"]] == [ext for ext, _ in expected]
    assert [item["query_score"] for item in result["items"]] == pytest.approx([(1 + c) / 2 for _, c in expected])


def test_vector_search_by_record_with_limits_and_filters(owner, main):
    body = {"query": {"vector": {"name": "emb", "record_id": main.ids["k6"]}}}
    ranking = [ext for ext, _ in cosine_ranking(VECTORS["k6"], exclude="k6")]  # the record itself is left out
    assert search(owner, main, body, limit=3) == (ranking[:3], 3)  # max_results: limit + offset
    news = where(terms("metadata", ["news"], metadata_property="genre"), query=body["query"])
    assert search(owner, main, news)[0] == [ext for ext in ranking if ext in {"k0", "k4", "k5"}]  # k8: no vector
    text = {"query": {**body["query"], "text": {"q": "apple"}}}
    assert search(owner, main, text)[0] == [ext for ext in ranking if ext in {"k0", "k1", "k9"}]
