"""The floor plan of docs/architecture.md, checked from the code's own imports.

Layers point one way (surfaces → domain → models and the PSP interface); the payment core
imports no feature; nothing imports in a circle; no import hides inside a function without a
reason; every route lives in app/blueprints/.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The parts, by dotted name under app/, from the top down.
TOP = ("app.blueprints", "app.cli", "app.tasks", "app.runtime", "app.wiring")
FEATURES = ("app.refunds", "app.subscriptions", "app.conflicts", "app.disputes")
SERVICES = (
    "app.notifications",
    "app.reconciliation",
    "app.reporting",
    "app.accounts",
    "app.retention",
)
CORE = "app.payments"
LOWER = ("app.serializers", "app.psp_events", "app.common", "app.models", "app.psp")
DOMAIN = (CORE, *FEATURES, *SERVICES, *LOWER)

# What each part may never import, beyond the top, which no domain code imports.
NEVER = {
    # The payment core knows no feature: they react to its signals.
    CORE: [*FEATURES, *SERVICES],
    # What the lower layers are built of knows no domain.
    **{part: [CORE, *FEATURES, "app.notifications"] for part in LOWER},
    "app.common": [CORE, *FEATURES, *SERVICES, "app.serializers"],
    "app.psp": [CORE, *FEATURES, "app.models"],
    # Notifications hear of payments and refunds through hooks; reconciliation drives the
    # features, never the reverse. (Refunds may ask subscriptions for a renewal's charge:
    # subscriptions never import refunds.)
    "app.notifications": ["app.refunds", "app.subscriptions", "app.reconciliation", "app.disputes"],
    "app.refunds": ["app.reconciliation", "app.notifications"],
    "app.subscriptions": ["app.refunds", "app.reconciliation", "app.notifications"],
    "app.disputes": ["app.refunds", "app.subscriptions", "app.reconciliation", "app.notifications"],
    "app.reporting": [CORE, *FEATURES],
    # Retention deletes old rows by the tables' own columns: it drives no domain.
    "app.retention": [CORE, *FEATURES, "app.notifications", "app.reporting", "app.accounts"],
}
# Imports inside a function, each with its reason; anything else belongs at the top.
LAZY_IMPORTS = {
    # The Stripe SDK is large; a deployment imports the adapters it names.
    ("app.psp.factory", "app.psp.stripe_adapter"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, inside a function) for every import of this tree in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend((alias.name, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - child.level + 1])
                    base = f"{base}.{child.module}" if child.module else base
                for alias in child.names:
                    # `from app import models` imports the module app.models, not app's own
                    # names; `from app.models import Payment` imports app.models.
                    submodule = f"{base}.{alias.name}"
                    found.append((submodule if submodule in SOURCES else base, in_function))
            visit(child, nested)

    visit(tree, False)
    return found


def _sources(*roots: str) -> dict[str, Path]:
    return {
        _module_name(path): path
        for root in roots
        for path in sorted((ROOT / root).rglob("*.py"))
        if "__pycache__" not in path.parts
    }


SOURCES = _sources("app", "stripe_emulator")


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in SOURCES.items():
        graph[module] = {name for name, _ in _imports(path) if name in SOURCES} - {module}
    return graph


def _within(module: str, part: str) -> bool:
    return module == part or module.startswith(part + ".")


def test_no_module_imports_itself_back_through_others():
    graph = _graph()
    seen: set[str] = set()
    cycles = []

    def walk(module: str, trail: list[str]) -> None:
        if module in trail:
            cycles.append(trail[trail.index(module) :] + [module])
            return
        if module in seen:
            return
        for imported in sorted(graph[module]):
            # A package's __init__ importing its own submodules (a blueprint's routes) is how
            # Flask packages are put together, not a cycle between parts. The top packages
            # (app, stripe_emulator) get no such pass: everything is their submodule.
            own_submodule = _within(imported, module) and "." in module
            if own_submodule and SOURCES[module].name == "__init__.py":
                continue
            walk(imported, trail + [module])
        seen.add(module)

    for module in sorted(graph):
        walk(module, [])
    assert cycles == []


@pytest.mark.parametrize("part", sorted(NEVER))
def test_a_part_never_imports_what_sits_above_it(part):
    offending = [
        f"{module} imports {imported}"
        for module, imports in _graph().items()
        if _within(module, part)
        for imported in imports
        for forbidden in NEVER[part]
        if _within(imported, forbidden)
    ]
    assert offending == []


def test_no_domain_code_imports_a_surface_or_a_process():
    offending = [
        f"{module} imports {imported}"
        for module, imports in _graph().items()
        if any(_within(module, part) for part in DOMAIN)
        for imported in imports
        if any(_within(imported, top) for top in TOP)
    ]
    assert offending == []


def test_imports_inside_functions_are_only_the_named_lazy_ones():
    inside = {
        (module, name)
        for module, path in SOURCES.items()
        for name, in_function in _imports(path)
        if in_function
    }
    assert sorted(inside - LAZY_IMPORTS) == []


def test_every_route_lives_in_a_blueprint_package():
    outside = [
        f"{module}: {ast.unparse(decorator)}"
        for module, path in SOURCES.items()
        if module.startswith("app.") and not _within(module, "app.blueprints")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for decorator in node.decorator_list
        if isinstance(decorator, ast.Call)
        and isinstance(decorator.func, ast.Attribute)
        and decorator.func.attr in ("route", "get", "post", "put", "patch", "delete")
    ]
    assert outside == []


def test_the_procfile_runs_release_web_and_worker_and_no_emulator():
    lines = [line for line in (ROOT / "Procfile").read_text().splitlines() if line.strip()]
    assert [line.split(":", 1)[0] for line in lines] == ["release", "web", "worker"]
    assert "stripe_emulator" not in (ROOT / "Procfile").read_text()


def test_paybridge_listen_stands_alone_on_the_standard_library_and_requests():
    """A client developer copies paybridge_listen/ beside their app: it may need nothing of
    PayBridge's (app/, its settings, its database) and no package beyond requests."""
    allowed = set(sys.stdlib_module_names) | {"requests", "paybridge_listen"}
    imported = {
        name.split(".")[0]
        for path in sorted((ROOT / "paybridge_listen").rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        for name in (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and not node.level
            else []
        )
    }
    assert imported and imported <= allowed, imported - allowed
