"""The codebook: typed, versioned, every version a round used kept, and a code's history followable."""

from __future__ import annotations

import pytest
import yaml
from conftest import REPO, codigit

from codigit.coding.codebook import NONE, Codebook, keep, kept_versions, load_codebook
from codigit.errors import CodigitError

SHIPPED = REPO / "annotation" / "codebook.yaml"


def version(number: str, codes: list[dict], **extra) -> Codebook:
    return Codebook.model_validate({"name": "cb", "version": number, "title": "t", "codes": codes, **extra})


def code(name: str, *history: dict) -> dict:
    return {"name": name, "title": name.title(), "definition": f"about {name}", "history": list(history)}


def test_the_shipped_codebook_loads_and_its_history_is_followable():
    codebook = load_codebook(SHIPPED)
    assert codebook.version == "2" and len(codebook.codes) >= 6
    assert codebook.lineage() == {"caregiving": ["care_work"],
                                  "stereotypes": ["stereotype_challenged", "stereotype_reproduced"]}  # fmt: skip
    codes, memo = codebook.questions()
    assert codes.type == "multi_label" and codes.required and list(codes.labels)[-1] == NONE
    assert memo.type == "text" and not memo.required
    guidelines = codebook.guidelines()
    for c in codebook.codes:  # every code's definition and examples are before the coder
        assert c.definition.strip() in guidelines and all(e in guidelines for e in c.examples)


def test_kept_versions_cannot_change_and_a_new_one_must_account_for_every_code(tmp_path):
    v1 = version("1", [code("caregiving"), code("stereotypes"), code("work")])
    keep(v1, tmp_path)
    assert keep(v1, tmp_path).name == "cb-v1.json"  # the same content again: fine
    changed = version("1", [code("caregiving"), code("stereotypes"), code("jobs")])
    with pytest.raises(CodigitError, match="changed since a round used it"):
        keep(changed, tmp_path)
    lost = version("2", [code("care_work", {"version": "2", "how": "renamed", "was": ["caregiving"]}), code("work")])
    with pytest.raises(CodigitError, match="code 'stereotypes' of version 1 is gone without a trace"):
        keep(lost, tmp_path)
    unknown = version("2", [code("care_work", {"version": "2", "how": "renamed", "was": ["caring"]}),
                            code("stereotypes"), code("work")])  # fmt: skip
    with pytest.raises(CodigitError, match="names 'caring', which version 1 does not have"):
        keep(unknown, tmp_path)
    v2 = version("2", [
        code("care_work", {"version": "2", "how": "renamed", "was": ["caregiving"]}),
        code("challenged", {"version": "2", "how": "split", "was": ["stereotypes"]}),
        code("reproduced", {"version": "2", "how": "split", "was": ["stereotypes"]}),
    ], retired={"work": "no coder used it"})  # fmt: skip
    keep(v2, tmp_path)
    assert [c.version for c in kept_versions(tmp_path, "cb")] == ["1", "2"]
    assert v2.lineage() == {"caregiving": ["care_work"], "stereotypes": ["challenged", "reproduced"]}


@pytest.mark.parametrize(
    ("codes", "message"),
    [
        ([code("a"), code("a")], "unique names"),
        ([code(NONE)], "'None of these codes'"),
        ([code("b", {"version": "3", "how": "renamed", "was": ["a"]})], "after this codebook's version"),
        ([code("a"), code("b", {"version": "2", "how": "renamed", "was": ["a"]})], "which is still a code"),
        ([code("b", {"version": "2", "how": "split", "was": ["a"]})], "a split makes two or more codes"),
        ([code("b", {"version": "2", "how": "merged", "was": ["a"]})], "a merge joins two or more"),
    ],
)  # fmt: skip
def test_a_bad_codebook_is_one_line_naming_the_problem(tmp_path, codes, message):
    path = tmp_path / "codebook.yaml"
    path.write_text(yaml.safe_dump({"name": "cb", "version": "2", "title": "t", "codes": codes}))
    result = codigit("coding", "codebook", "--codebook", str(path), "--coding", str(tmp_path / "coding"))
    assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_codigit_coding_codebook_shows_codes_history_and_versions_used(tmp_path):
    keep(load_codebook(SHIPPED), tmp_path / "codebooks")
    result = codigit("coding", "codebook", "--coding", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "v2 split from stereotypes" in result.stdout and "versions used by rounds: 2" in result.stdout
