"""mkdocs hook: the reference and benchmarks pages, generated at every build from the code and data they describe.

- reference.md: every command of `codigit.cli.build_parser()` (walked through its subparsers, so a command moved
  or added anywhere appears without an edit here), the study configuration (`codigit.study.Study` and the models
  it nests), the release policy (`codigit.release.policy.Policy`) and the recipe (`codigit.train.recipe.CodigitArgs`
  plus, for the keys the shipped recipes set, whose they are: TRL's keys are linked to TRL's docs, not copied).
- benchmarks.md: one table, a row per line of `benchmarks/results.jsonl`.

Nothing here imports torch, transformers or TRL: the parser, the pydantic models and the dataclass are light.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import html
import importlib.metadata
import importlib.util
import inspect
import io
import json
import os
import re
import textwrap
import tokenize
import typing
from pathlib import Path

from mkdocs.structure.files import File

REPO = Path(__file__).resolve().parents[1]
SFT_DOCS = "https://huggingface.co/docs/trl/sft_trainer#trl.SFTConfig"
MODEL_DOCS = "https://huggingface.co/docs/trl/clis"
TRAINING_ARGS_DOCS = "https://huggingface.co/docs/transformers/main_classes/trainer#transformers.TrainingArguments"


def on_files(files, config):
    for name, make in (("reference.md", reference_page), ("benchmarks.md", benchmarks_page)):
        files.append(File.generated(config, name, content=make()))
    return files


# --- the command line ---------------------------------------------------------------------------------------------


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ("codigit",), summary: str | None = None):
    """(path, parser, one-line help) for `parser` and every parser below it, in the order they were added."""
    yield path, parser, summary
    seen = set()
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {a.dest: a.help for a in action._choices_actions}
        for name, sub in action.choices.items():
            if id(sub) in seen:  # an alias of a command already listed
                continue
            seen.add(id(sub))
            yield from commands(sub, (*path, name), helps.get(name))


def cli_section() -> str:
    from codigit.cli import build_parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "110"  # argparse wraps at the terminal's width: the page must not depend on it
    try:
        parser = build_parser()
        out = ["## Commands", "", "Generated from `codigit --help` and each command's `--help`.", ""]
        for path, sub, summary in commands(parser):
            level = "#" * min(len(path) + 2, 6)  # codigit under "Commands", then one level per subcommand
            out += [f"{level} `{' '.join(path)}`", ""]
            if summary:
                out += [prose(summary[0].upper() + summary[1:]) + ".", ""]
            out += ["```text", sub.format_help().rstrip(), "```", ""]
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
    return "\n".join(out)


# --- pydantic models (study, policy) --------------------------------------------------------------------------------


def source_notes(cls) -> tuple[dict[str, str], dict[str, ast.AnnAssign]]:
    """Each field's comment (beside it, or on the lines just above) and its assignment node, from the source."""
    lines, _ = inspect.getsourcelines(cls)
    source = textwrap.dedent("".join(lines))
    comments = {}  # line number -> comment text, from Python's own tokenizer (a '#' inside a string is no comment)
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT and not tok.string.startswith("# fmt:"):
            comments[tok.start[0]] = (tok.string.lstrip("#").strip(), tok.line.strip().startswith("#"))
    notes, nodes = {}, {}
    for node in ast.parse(source).body[0].body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            nodes[node.target.id] = node
            above, i = [], node.lineno - 1
            while i in comments and comments[i][1]:
                above.insert(0, comments[i][0])
                i -= 1
            beside = [
                text for n, (text, alone) in comments.items() if node.lineno <= n <= node.end_lineno and not alone
            ]
            notes[node.target.id] = " ".join([*above, *beside]).strip()
    return notes, nodes


def yaml_notes(path: Path) -> dict[tuple[str, ...], str]:
    """Comments beside (or just above) each mapping key of a shipped YAML file, by key path; list items skipped.

    A comment that starts with extra spaces (`#   more`) continues the previous key's; a comment block just above
    a mapping's first key speaks of the mapping, so it goes to the parent key (the file's opening block, to none).
    """
    notes: dict[tuple[str, ...], list[str]] = {}
    stack: list[tuple[int, str]] = []
    above: list[str] = []
    last: tuple[str, ...] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        comment = re.match(r"^\s*#(\s*)(.*)$", line)
        if comment:
            if len(comment.group(1)) > 1 and last is not None:
                notes.setdefault(last, []).append(comment.group(2).strip())
            else:
                above.append(comment.group(2).strip())
            continue
        m = re.match(r"^( *)([A-Za-z_][\w-]*):(.*)$", line)
        if not m:
            above, last = [], None
            continue
        indent, key, rest = len(m.group(1)), m.group(2), m.group(3)
        first_child = not stack or indent > stack[-1][0]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = tuple(k for _, k in stack)
        if above and first_child:
            if parent and parent not in notes:
                notes[parent] = above
            above = []
        stack.append((indent, key))
        previous, last = last, tuple(k for _, k in stack)
        beside = re.search(r"\s#(\s*)(.*)$", rest) if rest.count('"') % 2 == 0 else None
        if beside and len(beside.group(1)) > 1 and previous is not None:  # the previous key's note, continued
            notes.setdefault(previous, []).append(beside.group(2).strip())
            beside = None
        text = [*above, beside.group(2).strip()] if beside else above
        if text:
            notes[last] = text
        above = []
    return {k: " ".join(v).strip() for k, v in notes.items() if " ".join(v).strip()}


def constraints(node: ast.AnnAssign | None, module) -> str:
    """The Field(...) constraints as written (names such as NAME_PATTERN resolved to their values)."""
    call = node.value if node is not None else None
    if not (isinstance(call, ast.Call) and getattr(call.func, "id", "") == "Field"):
        return ""
    parts = []
    for kw in call.keywords:
        if kw.arg in ("default", "default_factory", "description", "exclude"):
            continue
        value = kw.value
        if isinstance(value, ast.Name) and hasattr(module, value.id):
            shown = repr(getattr(module, value.id))
        else:
            shown = ast.unparse(value)
        parts.append(f"{kw.arg}={shown}")
    return ", ".join(parts)


def nested_models(annotation) -> list[type]:
    from pydantic import BaseModel

    found = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        found.append(annotation)
    for arg in typing.get_args(annotation):
        found += nested_models(arg)
    return found


def prose(text: str) -> str:
    """Text from the code as markdown: `<`, `>` and `&` escaped outside code spans (`<home>` is no HTML tag)."""
    parts = str(text).split("`")
    return "`".join(part if i % 2 else html.escape(part, quote=False) for i, part in enumerate(parts))


def cell(text: str) -> str:
    """Text for one table cell: one line, its pipes escaped except inside code spans (where they show as is)."""
    parts = prose(str(text).replace("\n", " ")).split("`")
    return "`".join(part if i % 2 else part.replace("|", "\\|") for i, part in enumerate(parts))


def model_tables(root: type, heading: str, shipped: Path) -> str:
    """One table per model, `root` first, then each model it nests (breadth first). A field the code leaves
    unexplained takes the comment beside it in the shipped file (`shipped`), when the model sits at one key path."""
    import sys

    shipped_notes = yaml_notes(shipped)
    out, queue, done = [], [(root, ())], set()
    while queue:
        model, where = queue.pop(0)
        if model in done:
            continue
        done.add(model)
        notes, nodes = source_notes(model)
        module = sys.modules[model.__module__]
        out += [f"{heading} `{model.__name__}`", ""]
        if model.__doc__ and not model.__doc__.startswith(("Usage docs", "!!!")):
            out += [prose(inspect.cleandoc(model.__doc__)), ""]
        out += ["| key | type | default | constraints | what |", "| --- | --- | --- | --- | --- |"]
        for name, info in model.model_fields.items():
            if info.exclude:  # set by codigit, not a key of the file
                continue
            node = nodes.get(name)
            kind = ast.unparse(node.annotation) if node is not None else str(info.annotation)
            if info.is_required():
                default = "required"
            elif info.default_factory is not None:
                default = f"`{info.default_factory()!r}`"
            else:
                default = f"`{info.default!r}`"
            what = info.description or notes.get(name) or ""
            if not what and where is not None:
                what = shipped_notes.get((*where, name), "")
            out.append(f"| `{name}` | {cell(f'`{kind}`')} | {cell(default)} | {cell(constraints(node, module))} | "
                       f"{cell(what)} |")  # fmt: skip
            inner = nested_models(info.annotation)
            direct = isinstance(info.annotation, type)  # a model in a list or dict has no single key path
            queue += [(m, (*where, name) if direct and where is not None else None) for m in inner if m not in done]
        out.append("")
    return "\n".join(out)


# --- the recipe -----------------------------------------------------------------------------------------------------


def dataclass_fields(path: Path, name: str) -> set[str]:
    """Field names of a dataclass read from its source, without importing it (TRL takes seconds to import)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return {n.target.id for n in node.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    return set()


def recipe_section() -> str:
    import yaml

    from codigit.train.recipe import CodigitArgs

    out = [
        "## Recipe",
        "",
        "A recipe (`experiments/*.yaml`) holds TRL's own keys, as `trl sft --config` takes them "
        f"([`SFTConfig`]({SFT_DOCS}), which extends transformers' [`TrainingArguments`]({TRAINING_ARGS_DOCS}), and "
        f"[`ModelConfig`]({MODEL_DOCS})), plus codigit's keys below. Any key can be overridden on the command line "
        "(`codigit train RECIPE --learning_rate 1e-4`); an unknown key is a one-line error.",
        "",
        "### codigit's keys (`CodigitArgs`)",
        "",
        "| key | type | default | what |",
        "| --- | --- | --- | --- |",
    ]
    ours = set()
    for f in dataclasses.fields(CodigitArgs):
        ours.add(f.name)
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        out.append(f"| `{f.name}` | {cell(f'`{f.type}`')} | `{default!r}` | {cell(f.metadata.get('help', ''))} |")
    spec = importlib.util.find_spec("trl")
    trl_dir = Path(spec.origin).parent if spec and spec.origin else None
    model_keys = dataclass_fields(trl_dir / "trainer" / "model_config.py", "ModelConfig") if trl_dir else set()
    try:
        version = f" (TRL {importlib.metadata.version('trl')} is installed here)"
    except importlib.metadata.PackageNotFoundError:
        version = ""
    out += [
        "",
        "### Keys the shipped recipes set",
        "",
        f"Whose each key is{version}; the comment beside it in the recipe (each performance flag says its "
        "trade-off there) and the values of every shipped recipe.",
        "",
    ]
    recipes = sorted((REPO / "experiments").glob("*.yaml"))
    keys: dict[str, dict[str, str]] = {}
    notes: dict[str, dict[str, str]] = {}
    for recipe in recipes:
        for key, value in (yaml.safe_load(recipe.read_text(encoding="utf-8")) or {}).items():
            keys.setdefault(key, {})[recipe.name] = json.dumps(value)
        for where, note in yaml_notes(recipe).items():
            if len(where) == 1:
                notes.setdefault(where[0], {})[recipe.name] = note
    head = " | ".join(f"`{r.name}`" for r in recipes)
    out += [f"| key | whose | {head} | note |", "| --- | --- |" + " --- |" * len(recipes) + " --- |"]
    for key, values in keys.items():
        if key in ours:
            whose = "codigit"
        elif key in model_keys:
            whose = f"[ModelConfig]({MODEL_DOCS})"
        else:
            whose = f"[SFTConfig]({SFT_DOCS})"
        shown = " | ".join(cell(f"`{values[r.name]}`") if r.name in values else "" for r in recipes)
        said = notes.get(key, {})
        note = (
            "; ".join(dict.fromkeys(said.values()))
            if len(set(said.values())) <= 1
            else "; ".join(f"{name}: {text}" for name, text in said.items())
        )
        out.append(f"| `{key}` | {whose} | {shown} | {cell(note)} |")
    return "\n".join(out) + "\n"


# --- the pages ------------------------------------------------------------------------------------------------------


def reference_page() -> str:
    from codigit.release.policy import Policy
    from codigit.study import Study

    return "\n".join(
        [
            "# Reference",
            "",
            "Generated when the docs are built, from the code itself: the command line's own help, the study "
            "configuration's and the release policy's schemas, and the recipe's keys. It cannot drift from the "
            "code; to change it, change the code.",
            "",
            "- [Commands](#commands)",
            "- [Study configuration](#study-configuration)",
            "- [Release policy](#release-policy)",
            "- [Recipe](#recipe)",
            "",
            cli_section(),
            "## Study configuration",
            "",
            "`annotation/study.yaml` (pass another with `--study`). Every key is checked: an unknown or misspelt "
            "key is an error naming the file and the key. Paths are relative to the study file. *What* is the "
            "code's own comment, else the comment beside the key in the shipped `annotation/study.yaml`.",
            "",
            model_tables(Study, "###", REPO / "annotation" / "study.yaml"),
            "## Release policy",
            "",
            "`annotation/policy.yaml` (pass another with `--policy`). Everything but `board` is part of a "
            "release's dataset hash.",
            "",
            model_tables(Policy, "###", REPO / "annotation" / "policy.yaml"),
            recipe_section(),
        ]
    )


def benchmarks_page() -> str:
    path = REPO / "benchmarks" / "results.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    out = [
        "# Benchmarks",
        "",
        "Every figure codigit's benchmarks have produced, one row per run, as `benchmarks/results.jsonl` holds "
        "them (generated when the docs are built). Each script in `benchmarks/` appends its row when it "
        "finishes (`benchmarks/record.py`); what each script measures and how to run it is in "
        "`benchmarks/README.md`. Rows from before the recorder existed were copied from the figures the README "
        "reported; where it named no date or commit, the cell is empty. Figures from different machines or "
        "commits are not comparable with each other: compare rows of one machine.",
        "",
        f"{len(rows)} runs.",
        "",
        "| benchmark | date | commit | machine | command | figures |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        figures = "; ".join(f"{k}: **{v}**" for k, v in row.get("figures", {}).items())
        commit = f"`{row['commit']}`" if row.get("commit") else "—"
        command = cell(f"`{row.get('command') or ''}`")
        out.append(
            f"| {cell(row['name'])} | {cell(row.get('date') or '—')} | {commit} | {cell(row.get('machine') or '—')} | "
            f"{command} | {cell(figures)} |"
        )
    return "\n".join(out) + "\n"
