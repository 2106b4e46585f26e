"""The layer rules of docs/architecture.md, checked from the real imports (import-linter)."""

from __future__ import annotations

from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).parent.parent


def test_import_contracts_are_kept(capsys):
    """Check that no import runs up a layer, no sibling cycle exists, each library has one owner.

    The contracts live in pyproject.toml ([tool.importlinter]); `lint-imports` prints the same.
    """
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    assert code == 0, capsys.readouterr().out
