"""Every recipe parses into a StudySpec, names data and models tunebench knows, and has a README row;
offline twins stay offline and small."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunebench.data.catalog import BUILTINS, hub_entry
from tunebench.spec.study import load_spec
from tunebench.study.plan import configurations
from tunebench.training.model_catalog import MODELS

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
HUB_MODELS = {"bert-base-uncased", "distilbert-base-uncased", "roberta-large"}  # the reference studies' models
ALL = sorted(RECIPES.glob("*.yaml"))


#: offline recipes that are not a hub recipe's twin: comparisons of their own, sized for one to two hours
COMPARISONS = ("peft-methods-offline", "mpnet-base-offline", "data-efficiency-offline")


def test_there_is_an_offline_twin_for_every_hub_recipe():
    names = {p.stem for p in ALL}
    assert len(ALL) == 9 + len(COMPARISONS)
    for twin in ("banking77-offline", "ag-news-offline", "snli-offline", "financial-phrasebank-offline"):
        assert twin in names


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_recipe_validates(path):
    spec = load_spec(path)
    assert spec.name == path.stem and str(spec.output.dir) == f"tunebench-out/{path.stem}"
    runs = len(configurations(spec)) * len(spec.sweep.seed_list or [0])
    assert 2 <= runs <= 60
    if path.stem in COMPARISONS:
        assert spec.data.source in BUILTINS and spec.model.name in MODELS and len(spec.sweep.seed_list or []) >= 2
        assert spec.data.train_limit and spec.data.train_limit <= 1500 and spec.training.epochs <= 5
        if spec.training.epochs > 3:  # more epochs only under the protocol: tuned, and stopped early
            assert spec.tuning is not None and spec.training.early_stopping is not None
    elif path.stem.endswith("-offline"):
        assert spec.data.source in BUILTINS and spec.model.name in MODELS
        assert spec.data.train_limit and spec.data.train_limit <= 1500 and spec.training.epochs <= 8
        # the verdict protocol: equal-budget tuning, early stopping, three seeds; sized for ~30 minutes
        assert spec.tuning is not None and spec.tuning.enabled and spec.tuning.halving
        assert spec.training.early_stopping is not None and spec.sweep.seed_list == [0, 1, 2]
        assert runs <= 10
        twin = hub_entry(load_spec(_hub_recipe(path)).data.source)
        assert twin is not None and twin.twin == spec.data.source  # the catalog's own twin
    else:
        assert hub_entry(spec.data.source) is not None and spec.model.name in HUB_MODELS
    assert f"`{path.name}`" in (RECIPES / "README.md").read_text()


def _hub_recipe(offline: Path) -> Path:
    stem = offline.stem.removesuffix("-offline")
    return next(p for p in ALL if p.stem.startswith(stem) and not p.stem.endswith("-offline"))


def test_the_methods_recipe_compares_every_method_that_runs_on_minilm():
    from tunebench.spec.strategy import KINDS, OPTIONS

    spec = load_spec(RECIPES / "peft-methods-offline.yaml")
    kinds = {s.kind for s in spec.strategies}
    # the baselines run beside every study anyway; the fitted candidates (setfit, embed-logreg) train no network
    # by gradient steps of tunebench's engine, and data-efficiency-offline compares them
    fitted = {k for k in KINDS if OPTIONS[k].fitted}
    assert kinds == set(KINDS) - fitted - {"prefix"}  # prefix tuning: transformers 5's BERT takes no past
    assert fitted & {s.kind for s in load_spec(RECIPES / "data-efficiency-offline.yaml").strategies} == \
        {"setfit", "embed-logreg"}
    assert {s.label for s in spec.strategies} >= {"lora:r=8,dora=True", "lora:r=8,rslora=True", "lora:r=8,init=pissa"}
