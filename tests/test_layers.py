"""The house's floors, read from the imports (../shared/DESIGN.md): arrows point down only.

`ml/` imports no Django and nothing of `webapp/`; inside the faces app the face store knows nothing of labeling or
interchange, and labeling nothing of interchange. Read with `ast`, so an import inside a function counts too.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imports(folder: Path, root: Path = ROOT) -> dict[str, set[str]]:
    """Every module each file under ``folder`` imports (``from a.b import c`` counts as a.b and a.b.c)."""
    found = {}
    for path in folder.rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[str(path.relative_to(root))] = names
    return found


def offenders(folder: str, forbidden: tuple[str, ...], root: Path = ROOT) -> list[str]:
    return sorted(
        f"{path} imports {name}"
        for path, names in imports(root / folder, root).items()
        for name in names
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    )


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("ml", ("django", "rest_framework", "celery", "webapp")),
        # the models module re-exports every part's models for Django: a part importing it would import them all
        ("webapp/faces/store", ("webapp.faces.labeling", "webapp.faces.interchange", "webapp.faces.models")),
        ("webapp/faces/labeling", ("webapp.faces.interchange", "webapp.faces.models")),
        ("webapp/faces/interchange", ("webapp.faces.models",)),
    ],
)
def test_imports_point_down(folder, forbidden):
    found = imports(ROOT / folder)
    assert found, f"no Python files under {folder}"
    assert offenders(folder, forbidden) == []


def test_the_check_sees_a_wrong_way_import(tmp_path):
    """The checker itself: an upward import inside a function is found."""
    part = tmp_path / "webapp" / "faces" / "store"
    part.mkdir(parents=True)
    (part / "x.py").write_text("def f():\n    from webapp.faces.labeling.selectors import current_labels\n")
    assert offenders("webapp/faces/store", ("webapp.faces.labeling",), root=tmp_path) == [
        "webapp/faces/store/x.py imports webapp.faces.labeling.selectors",
        "webapp/faces/store/x.py imports webapp.faces.labeling.selectors.current_labels",
    ]
