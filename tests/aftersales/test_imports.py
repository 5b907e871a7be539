"""The after-sales and care domains reach other domains only through their ``service`` modules
(docs/architecture.md), apart from two shared on purpose: ``orders.schemas`` (the order shapes)
and ``fulfillment.tracking`` (the tracker type routes receive)."""

from __future__ import annotations

import ast
from pathlib import Path

import trustlive

ROOT = Path(trustlive.__file__).parent
DOMAINS = {p.parent.name for p in ROOT.glob("*/service.py")}
SHARED = {"trustlive.orders.schemas", "trustlive.fulfillment.tracking"}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            # "from trustlive.orders import service" names the module trustlive.orders.service.
            found.update(
                f"{node.module}.{a.name}" if node.module.count(".") == 1 else node.module for a in node.names
            )
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_only_other_domains_services_are_imported() -> None:
    wrong = []
    for domain in ("aftersales", "care"):
        for path in sorted((ROOT / domain).glob("*.py")):
            for name in sorted(_imports(path)):
                parts = name.split(".")
                if len(parts) < 3 or parts[0] != "trustlive" or parts[1] not in DOMAINS or parts[1] == domain:
                    continue
                if parts[2] != "service" and name not in SHARED:
                    wrong.append(f"{domain}/{path.name}: {name}")
    assert wrong == []


def test_pages_and_the_api_do_not_import_each_other() -> None:
    """Pages and the JSON API are two doors to one service: what both need lives in the service."""
    for domain in ("aftersales", "care"):
        for door, other in (("pages", "api"), ("api", "pages")):
            assert f"trustlive.{domain}.{other}" not in _imports(ROOT / domain / f"{door}.py"), (domain, door)
