"""The docs build (`mkdocs build --strict`: no broken link, anchor or nav entry) and say what the code says: the
generated reference lists every command of the live parser with its options and every field of the study,
policy and recipe schemas; the benchmarks page has a row per recorded run; the README stays short and its links
lead somewhere."""

from __future__ import annotations

import argparse
import dataclasses
import html
import json
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=REPO,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return out


def page(site: Path, name: str) -> str:
    return (site / name / "index.html").read_text(encoding="utf-8")


def sections(text: str, levels: str) -> dict[str, str]:
    """Heading text -> the HTML up to the next heading of any of `levels` (e.g. "123": h1, h2 and h3)."""
    tags = "|".join(f"h{n}" for n in levels)
    parts = re.split(rf"(<(?:{tags})[ >].*?</(?:{tags})>)", text)
    return {plain(parts[i]).replace("¶", "").strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def plain(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ("codigit",)):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*path, name))


def test_reference_lists_every_command_with_its_options(site):
    from codigit.cli import build_parser

    by_heading = sections(page(site, "reference"), "123456")  # each command's own section, up to the next
    walked = list(commands(build_parser()))
    assert len(walked) > 20  # the walk reached the subcommands' own subcommands
    for path, parser in walked:
        name = " ".join(path)
        assert name in by_heading, f"no section for {name}"
        shown = plain(by_heading[name])
        for action in parser._actions:
            if action.help == argparse.SUPPRESS:
                continue
            # an option by its flags; a positional as its usage line shows it (a metavar, or its choices)
            shown_as = argparse.HelpFormatter(parser.prog)._metavar_formatter(action, action.dest)(1)[0]
            for flag in action.option_strings or [shown_as]:
                assert flag in shown, f"{name}: {flag} not in its reference section"


def models_under(root: type[BaseModel]) -> list[type[BaseModel]]:
    found, queue = [], [root]
    while queue:
        model = queue.pop(0)
        if model in found:
            continue
        found.append(model)
        for info in model.model_fields.values():
            stack = [info.annotation]
            while stack:
                kind = stack.pop()
                if isinstance(kind, type) and issubclass(kind, BaseModel):
                    queue.append(kind)
                stack += typing.get_args(kind)
    return found


@pytest.mark.parametrize("root, section", [("codigit.study:Study", "Study configuration"),
                                           ("codigit.release.policy:Policy", "Release policy")])  # fmt: skip
def test_reference_lists_every_schema_field(site, root, section):
    import importlib

    module, name = root.split(":")
    root_model = getattr(importlib.import_module(module), name)
    body = sections(page(site, "reference"), "12")[section]
    tables = sections(body, "123")
    models = models_under(root_model)
    assert len(models) > 1 or root_model.__name__ == "Policy"
    for model in models:
        assert model.__name__ in tables, f"{section}: no table for {model.__name__}"
        cells = set(re.findall(r"<td><code>([^<]+)</code></td>", tables[model.__name__]))
        wanted = {n for n, info in model.model_fields.items() if not info.exclude}
        assert wanted <= cells, f"{model.__name__}: missing {sorted(wanted - cells)}"


def test_reference_lists_every_recipe_key(site):
    from codigit.train.recipe import CodigitArgs

    recipe = sections(page(site, "reference"), "12")["Recipe"]
    cells = set(re.findall(r"<td><code>([^<]+)</code></td>", recipe))
    assert {f.name for f in dataclasses.fields(CodigitArgs)} <= cells
    # TRL's keys are linked, not copied; every key a shipped recipe sets is listed
    assert "huggingface.co/docs/trl" in recipe
    import yaml

    for path in (REPO / "experiments").glob("*.yaml"):
        assert set(yaml.safe_load(path.read_text(encoding="utf-8"))) <= cells, path.name


def test_benchmarks_page_has_a_row_per_recorded_run(site):
    lines = [ln for ln in (REPO / "benchmarks" / "results.jsonl").read_text(encoding="utf-8").splitlines() if ln]
    runs = [json.loads(ln) for ln in lines]
    assert all({"name", "date", "commit", "machine", "figures"} <= set(r) for r in runs)
    body = page(site, "benchmarks").split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    assert body.count("<tr>") == len(runs)


def test_readme_is_short_and_its_links_lead_somewhere():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 100
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    relative = [link for link in links if not re.match(r"^[a-z]+:", link) and not link.startswith("#")]
    assert relative, "the README links to the guides"
    for link in relative:
        assert (REPO / link.split("#")[0]).exists(), f"README.md links to {link}, which does not exist"
    for guide in ("organisers", "researchers", "participants", "index"):
        assert f"docs/{guide}.md" in relative
