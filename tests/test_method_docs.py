"""The method docs are generated from the registry: docs/METHODS.md's table and sources and the README's list
of kinds are what ``tunebench methods --markdown`` (and ``scripts/update_method_docs.py``) make of it."""

from __future__ import annotations

from pathlib import Path

from tunebench.cli.methods import BEGIN, END, methods_markdown, readme_kinds, updated_docs
from tunebench.spec.strategy import KINDS

ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_method_docs_are_generated_from_the_registry():
    for path, text in updated_docs(ROOT).items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.relative_to(ROOT)} is not what the registry says: run scripts/update_method_docs.py")


def test_the_table_has_one_row_per_kind_in_registry_order_and_the_readme_names_the_peft_kinds():
    table = methods_markdown()
    rows = [line.split(" | ")[0].strip("| `") for line in table.splitlines() if line.startswith("| `")]
    assert rows == list(KINDS)
    assert "| `vera` | r=256 dropout=0 targets=query+value layers=auto | 0.02 (head 0.01) |" in table
    assert "- `vera` 0.02 (head 0.01): peft examples/sequence_classification/VeRA.ipynb" in table
    more = [kind for kind in KINDS[5:] if kind not in ("majority", "tfidf-logreg", "mean", "tfidf-ridge",
                                                       "embed-logreg", "setfit")]
    assert readme_kinds().startswith(f"Beyond these five, tunebench has {len(more)} more PEFT methods") and len(more) >= 15
    assert readme_kinds().endswith(": " + ", ".join(f"`{kind}`" for kind in more) + ",")
    assert "`lora-fa`, `lora-plus`, `adalora`, `ia3`, `vera`" in readme_kinds()
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert readme_kinds() in readme


def test_a_hand_edit_of_the_table_is_caught(tmp_path):
    (tmp_path / "docs").mkdir()
    text = (ROOT / "docs" / "METHODS.md").read_text(encoding="utf-8")
    (tmp_path / "docs" / "METHODS.md").write_text(text.replace("| 0.02 (head 0.01) |", "| 0.03 |"), encoding="utf-8")
    (tmp_path / "README.md").write_text((ROOT / "README.md").read_text(encoding="utf-8"), encoding="utf-8")
    fixed = updated_docs(tmp_path)
    assert fixed[tmp_path / "docs" / "METHODS.md"] == text
    assert BEGIN in text and END in text and text.index(BEGIN) < text.index(END)


def test_tunebench_methods_markdown_prints_the_generated_part(capsys):
    from .conftest import cli

    code, out, _ = cli(capsys, "methods", "--markdown")
    assert code == 0 and out.rstrip("\n") == methods_markdown()
