"""codigit/upstream.py lists every library internal codigit relies on: each must still exist, codigit's replacements
must be the ones in place, every test it names must exist, the packages patched must be pinned to what is installed,
and no use of an internal may sit in codigit/ without being listed."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from codigit.upstream import HOOKS, NOT_PINNED, PINNED

REPO = Path(__file__).resolve().parents[1]

# Run in a subprocess: argilla_server reads its settings when it is first imported (codigit configures them first),
# and building its app copies the UI into the temp folder (TMPDIR: the test's own, removed with it).
INSPECT = r"""
import importlib, inspect, json, re, sys, tempfile
from pathlib import Path

from codigit.server import app as server_app
from codigit.upstream import HOOKS, RAW_SQL

home = Path(sys.argv[1])
server_app.configure(home)
MISSING = object()


def instance_attribute(cls, name):
    # a pydantic or dataclass field, or `self.name = ...` / `self.name: T = ...` in a class of its MRO
    if name in (getattr(cls, "model_fields", None) or {}) or name in (getattr(cls, "__dataclass_fields__", None) or {}):
        return True
    assigned = re.compile(rf"\bself\.{re.escape(name)}\s*(:[^=\n]*)?=(?!=)")
    for klass in getattr(cls, "__mro__", ()):
        try:
            if assigned.search(inspect.getsource(klass)):
                return True
        except (OSError, TypeError):
            continue
    return False


def resolves(dotted):
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:n]))
            break
        except ImportError:
            continue
    else:
        return False
    for i, name in enumerate(parts[n:], start=n):
        owner, obj = obj, getattr(obj, name, MISSING)
        if obj is MISSING:
            return i == len(parts) - 1 and isinstance(owner, type) and instance_attribute(owner, name)
    return True


missing = [h.internal for h in HOOKS if not resolves(h.internal)]
from argilla_server.models.base import DatabaseModel

tables = DatabaseModel.metadata.tables
missing += [f"table {t}.{c}" for t, cols in RAW_SQL.items() for c in cols if t not in tables or c not in tables[t].c]

# -- codigit's replacements are the ones in place in an app built as `codigit serve` builds it ---------------------
application = server_app.create_app(home, None)
import fakeredis
import uvicorn
from argilla_server.api.handlers.v1.datasets import records as records_handlers
from argilla_server.api.routes import api_v1
from argilla_server.contexts import datasets
from argilla_server.jobs import queues
from argilla_server.search_engine import SearchEngine
from argilla_server.settings import settings
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from transformers.convert_slow_tokenizer import TikTokenConverter
from trl.trainer.sft_trainer import SFTTrainer

from codigit.server.search import ENGINE_NAME, SQLSearchEngine
from codigit.server.submit_rules import WRAPPED


def ours(obj, module):
    return getattr(obj, "__module__", None) == module


def get_endpoint(path):
    routes = [r for r in api_v1.router.routes if isinstance(r, APIRoute) and r.path == path and "GET" in r.methods]
    return routes[0].endpoint if routes else None


def callers(name, via=None):
    # upstream functions and methods that look `name` up (on `via`) when they run: a replacement by assignment reaches
    # them, where a name bound at import would not
    found = []
    for modname, module in list(sys.modules.items()):
        if not modname.startswith("argilla_server"):
            continue
        for obj in list(vars(module).values()):
            for f in [obj, *vars(obj).values()] if isinstance(obj, type) else [obj]:
                f = getattr(f, "__func__", f)  # a staticmethod or classmethod
                f = inspect.unwrap(f) if callable(f) else f
                code = getattr(f, "__code__", None)
                names = code.co_names if code is not None and getattr(f, "__module__", None) == modname else ()
                if name in names and (via is None or via in names):
                    found.append(f"{modname}.{f.__qualname__}")
    return found


holders = [m for n, m in list(sys.modules.items()) if n.startswith("argilla_server") and hasattr(m, "REDIS_CONNECTION")]
job_queues = (queues.DEFAULT_QUEUE, queues.HIGH_QUEUE)
ui = server_app.ui_directory(application)
applied = {
    "GET /records/{record_id} is codigit's": ours(get_endpoint("/records/{record_id}"), "codigit.server.privacy"),
    "GET /datasets/{dataset_id}/progress is codigit's":
        ours(get_endpoint("/datasets/{dataset_id}/progress"), "codigit.server.privacy"),
    "GET /datasets/{dataset_id}/users/progress is codigit's":
        ours(get_endpoint("/datasets/{dataset_id}/users/progress"), "codigit.server.privacy"),
    "_filter_record_metadata_for_user is codigit's":
        ours(records_handlers._filter_record_metadata_for_user, "codigit.server.privacy"),
    "_filter_record_metadata_for_user is looked up when the search runs":
        bool(callers("_filter_record_metadata_for_user")),
    **{f"contexts.datasets.{name} is codigit's": ours(getattr(datasets, name), "codigit.server.submit_rules")
       for name in WRAPPED},
    **{f"contexts.datasets.{name} is looked up when a handler runs": bool(callers(name, via="datasets"))
       for name in WRAPPED},
    "every REDIS_CONNECTION is the in-process fakeredis":
        bool(holders) and all(isinstance(m.REDIS_CONNECTION, fakeredis.FakeStrictRedis) for m in holders),
    "the queues use it and run what they receive": all(
        isinstance(q.connection, fakeredis.FakeStrictRedis) and ours(q._enqueue_job, "codigit.server.jobs")
        for q in job_queues),
    "the lifespan drains jobs": ours(application.router.lifespan_context, "codigit.server.jobs"),
    "no docs pages or redirects": not server_app.docs_pages(api_v1) and not [
        r for r in application.router.routes if isinstance(r, APIRoute) and r.path in server_app.DOCS_REDIRECTS],
    "the 422 handler is codigit's":
        ours(api_v1.exception_handlers.get(RequestValidationError), "codigit.server.app"),
    "the UI copy is where remove_ui_copy looks":
        ui is not None and ui.name == "statics" and ui.parent.parent == Path(tempfile.gettempdir()),
    "the search engine is registered": SearchEngine.registered_classes.get(ENGINE_NAME) is SQLSearchEngine,
    "telemetry is off": settings.enable_telemetry is False,
    "uvicorn's serve enters capture_signals": "capture_signals" in uvicorn.Server.serve.__code__.co_names,
    "TRL's compute_loss keeps the token count codigit keeps":
        bool(re.search(r"self\._total_train_tokens\b.*\n(.*\n)*.*self\._metrics\[\w+\]\[\"num_tokens\"\]",
                       inspect.getsource(SFTTrainer.compute_loss))),
    "transformers reads the BPE ranks through self.load_tiktoken_bpe":
        "load_tiktoken_bpe" in TikTokenConverter.extract_vocab_merges_from_model.__code__.co_names,
}
server_app.remove_ui_copy(application)
print(json.dumps({"missing": missing, "applied": applied}))
"""


@pytest.fixture(scope="module")
def inspected(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("upstream")
    env = {**os.environ, "TMPDIR": str(tmp)}
    done = subprocess.run([sys.executable, "-c", INSPECT, str(tmp / "home")], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_every_internal_still_exists(inspected):
    assert inspected["missing"] == [], "gone from the installed packages (see codigit/upstream.py)"


@pytest.mark.slow
def test_codigit_hooks_are_the_ones_in_place(inspected):
    assert [what for what, ok in inspected["applied"].items() if not ok] == []


def _defined(tree: ast.Module, qualname: str) -> bool:
    """A def or class `a` or `A.b` anywhere in the module (nested functions included)."""
    *outer, name = qualname.split(".")
    scopes = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == outer[0]] if outer else [tree]
    return any(
        isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and n.name == name
        for scope in scopes
        for n in ast.walk(scope)
    )


def _has_test(tree: ast.Module, names: list[str]) -> bool:
    """`test_x` or `TestX::test_x` at the top of the file, where pytest collects them."""
    scope = tree.body
    for name in names[:-1]:
        scope = next((n.body for n in scope if isinstance(n, ast.ClassDef) and n.name == name), [])
    last = names[-1] if names else ""
    return last.startswith("test") and any(
        isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == last for n in scope
    )


def _module_file(module: str) -> Path:
    path = REPO / Path(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def test_every_named_test_and_place_exists():
    """Parsed, not run: a renamed or deleted test (or codigit function) cannot leave a hook unguarded unseen."""
    trees: dict[Path, ast.Module] = {}

    def tree(path: Path) -> ast.Module | None:
        if path not in trees and path.is_file():
            trees[path] = ast.parse(path.read_text(encoding="utf-8"))
        return trees.get(path)

    absent = []
    for hook in HOOKS:
        assert hook.tests and hook.where, hook.internal
        for node_id in hook.tests:
            file, *names = node_id.split("::")
            parsed = tree(REPO / file)
            if parsed is None or not _has_test(parsed, names):
                absent.append(f"{hook.internal}: test {node_id}")
        for place in hook.where:
            module, _, qualname = place.partition(":")
            parsed = tree(_module_file(module))
            if parsed is None or not qualname or not _defined(parsed, qualname):
                absent.append(f"{hook.internal}: place {place}")
    assert absent == []


def test_the_patched_packages_are_pinned_to_the_installed_versions():
    with open(REPO / "pyproject.toml", "rb") as f:
        dependencies = tomllib.load(f)["project"]["dependencies"]
    pins = {}
    for requirement in dependencies:
        if m := re.fullmatch(r"([A-Za-z0-9_.-]+)\s*==\s*([^\s;,]+)", requirement.strip()):
            pins[m.group(1).lower()] = m.group(2)
    wrong = {name: (pins.get(name), importlib.metadata.version(name)) for name in PINNED}
    assert {name: got for name, got in wrong.items() if got[0] != got[1]} == {}, "(pinned, installed)"
    assert sorted({h.package for h in HOOKS} - set(PINNED) - set(NOT_PINNED)) == []


# -- drift: a use of an internal in codigit/ that the list does not name -----------------------------------------------
# What is found, per file of codigit/ (parsed with ast, nothing imported):
# - every import from argilla_server, rq, uvicorn or fakeredis (`from a.b import c` is `a.b.c`);
# - every private attribute (`x._name`, or a `_part` of an imported module's path) that is not codigit's own: an
#   attribute of `self`/`cls` that the enclosing class defines, or of a name imported from codigit;
# - every assignment or setattr on a module or class imported from argilla_server, rq, uvicorn, fakeredis, trl,
#   transformers or argilla (a function replaced by assignment).
# Each must be named by a hook whose `where` lists that file: an import or assignment by a hook whose internal is
# it, inside it or under it; a private name by a hook whose internal has that part.
# Limits: types are not inferred, so a public method overridden in a subclass, a public attribute replaced on an
# object that arrived as an argument (`queue.connection = …`), routes edited through an app passed in, and raw SQL
# on argilla-server's tables are not seen: those are listed by hand (RAW_SQL covers the SQL). A private name of an
# upstream object that happens to equal a private name the class defines itself is missed, and a setattr whose name
# is computed at run time is checked only for its object (some hook in the file must be inside that module).
WATCHED_IMPORTS = ("argilla_server", "rq", "uvicorn", "fakeredis")
WATCHED_OBJECTS = (*WATCHED_IMPORTS, "trl", "transformers", "argilla")


def _root(dotted: str) -> str:
    return dotted.split(".")[0]


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _uses(source: str, ours: frozenset[str] = frozenset()) -> list[tuple[int, str, str]]:
    """(line, kind, name) of each use in one file: kind is "import", "private" or "assign". `ours`: private names
    codigit's classes define (a mixin in one module uses its host class's, defined in another)."""
    tree = ast.parse(source)
    imported: dict[str, str] = {}  # local name -> dotted name it is bound to
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                imported[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else _root(alias.name)
                found += [(node.lineno, "import", alias.name)] if _root(alias.name) in WATCHED_IMPORTS else []
                found += [(node.lineno, "private", p) for p in alias.name.split(".") if _is_private(p)]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                imported[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                if _root(node.module) in WATCHED_IMPORTS:
                    found.append((node.lineno, "import", f"{node.module}.{alias.name}"))
                if _is_private(alias.name) and _root(node.module) != "codigit":
                    found.append((node.lineno, "private", alias.name))
            found += [(node.lineno, "private", p) for p in node.module.split(".") if _is_private(p)]

    def own_names(cls: ast.ClassDef) -> set[str]:
        names = set()
        for n in ast.walk(cls):
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(n.name)
            targets = n.targets if isinstance(n, ast.Assign) else [n.target] if isinstance(n, ast.AnnAssign) else []
            for t in targets:
                if isinstance(t, ast.Name):
                    names.add(t.id)
                elif isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id in ("self", "cls"):
                    names.add(t.attr)
        return names

    def visit(node: ast.AST, own: set[str]) -> None:
        if isinstance(node, ast.ClassDef):
            own = own_names(node)
        # `x._name`, and getattr/hasattr/setattr/delattr(x, "_name")
        named = [(node.value, node.attr)] if isinstance(node, ast.Attribute) else []
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and len(node.args) > 1:
            if node.func.id in ("getattr", "hasattr", "setattr", "delattr") and isinstance(node.args[1], ast.Constant):
                named = [(node.args[0], str(node.args[1].value))]
        for obj, attr in named:
            base = obj.id if isinstance(obj, ast.Name) else None
            codigits = base in imported and _root(imported[base]) == "codigit"
            if _is_private(attr) and not codigits and not (base in ("self", "cls") and attr in own | ours):
                found.append((node.lineno, "private", attr))
        # (object, attribute or None when setattr names it at run time) of `obj.attr = …` and `setattr(obj, …)`
        replaced = [(t.value, t.attr) for t in getattr(node, "targets", []) if isinstance(t, ast.Attribute)]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr" and node.args:
            attr = node.args[1].value if len(node.args) > 1 and isinstance(node.args[1], ast.Constant) else None
            replaced = [(node.args[0], attr)]
        for obj, attr in replaced:
            dotted = imported.get(obj.id) if isinstance(obj, ast.Name) else None
            if dotted and _root(dotted) in WATCHED_OBJECTS:
                found.append((node.lineno, "assign", f"{dotted}.{attr}" if attr else dotted))
        for child in ast.iter_child_nodes(node):
            visit(child, own)

    visit(tree, set())
    return found


def _covered(kind: str, name: str, internals: list[str]) -> bool:
    if kind == "private":
        return any(name in internal.split(".") for internal in internals)
    return any(name == i or name.startswith(i + ".") or i.startswith(name + ".") for i in internals)


def test_every_use_of_an_internal_in_codigit_is_listed():
    listed: dict[str, list[str]] = {}
    for hook in HOOKS:
        for place in hook.where:
            listed.setdefault(place.partition(":")[0], []).append(hook.internal)
    unlisted = []
    files = sorted((REPO / "codigit").rglob("*.py"))
    ours = frozenset(n.name for f in files for c in ast.walk(ast.parse(f.read_text(encoding="utf-8")))
                     if isinstance(c, ast.ClassDef) for n in c.body
                     if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and _is_private(n.name))  # fmt: skip
    for path in files:
        module = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for line, kind, name in _uses(path.read_text(encoding="utf-8"), ours):
            if not _covered(kind, name, listed.get(module, [])):
                unlisted.append(f"{path.relative_to(REPO)}:{line}: {kind} {name}")
    assert unlisted == [], "add each to codigit/upstream.py HOOKS (with a test that fails when it stops applying)"


def test_the_drift_scan_sees_each_kind_of_use():
    """The scan itself, on a made-up module: an unlisted import, private attribute and replacement are each found."""
    source = (
        "from argilla_server.contexts import datasets\nimport trl\n"
        "class T(trl.SFTTrainer):\n    def _mine(self):\n        return self._mine, self._theirs\n"
        "def f(job):\n    job._result = 1\n    setattr(datasets, 'create_response', f)\n"
        "from transformers.trainer_optimizer import _BITSANDBYTES_OPTIMIZERS\nfrom codigit.home import _own\n"
        "getattr(trl, '_hidden', None)\n"
    )
    uses = {(kind, name) for _, kind, name in _uses(source)}
    assert uses == {
        ("import", "argilla_server.contexts.datasets"),
        ("private", "_theirs"),
        ("private", "_result"),
        ("private", "_BITSANDBYTES_OPTIMIZERS"),
        ("private", "_hidden"),
        ("assign", "argilla_server.contexts.datasets.create_response"),
    }
    assert _covered("import", "argilla_server.contexts.datasets", ["argilla_server.contexts.datasets.create_response"])
    assert not _covered("private", "_theirs", ["trl.trainer.sft_trainer.SFTTrainer._metrics"])
