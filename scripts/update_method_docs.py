"""Write docs/METHODS.md's method table and the README's list of kinds from the method registry.

    PYTHONPATH=src python scripts/update_method_docs.py

Run it after adding or changing a method; tests/test_method_docs.py fails until the docs match the registry.
"""

from __future__ import annotations

from pathlib import Path

from tunebench.cli.methods import updated_docs

ROOT = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    for path, text in updated_docs(ROOT).items():
        if path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"updated {path.relative_to(ROOT)}")
