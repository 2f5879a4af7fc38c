"""A method from outside the package: one module with its options model, its behaviour and one ``register`` call,
found through the ``tunebench.methods`` entry-point group or registered directly; it validates, lists, trains a
tiny model through the study like any built-in kind, and leaves the built-in kinds' run ids alone."""

from __future__ import annotations

import importlib
import sys
import textwrap
from typing import ClassVar, Literal

import pytest
import torch
from pydantic import Field

from tunebench.errors import SpecError
from tunebench.methods import METHODS, Method, build_strategy, register
from tunebench.methods.base import freeze_all_but
from tunebench.spec.strategy import DEFAULT_LR, KINDS, StrategyOptions, option_columns, parse_strategy
from tunebench.training.modeling import find_layer_stack, head_parameter_names, load_classifier

from .conftest import TINY_LAYERS, easy_reviews, one_error


class TopNormOptions(StrategyOptions):
    """The head and the LayerNorms of the top ``n`` layers train (a test-only method)."""

    kind: Literal["top-norm"] = "top-norm"
    n: int = Field(default=1, ge=1, description="top-norm: top layers whose LayerNorms train")
    default_lr: ClassVar[float] = 2e-3
    lr_source: ClassVar[str] = "a test"
    sweepable: ClassVar[tuple[str, ...]] = ("n",)

    def options_label(self) -> list[str]:
        return [f"n={self.n}"] if self.n != 1 else []


class TopNormMethod(Method):
    kind = "top-norm"
    cache_note = "the layers below the top n"

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        stack_name, stack = find_layer_stack(model)
        top = tuple(f"{stack_name}.{i}." for i in range(len(stack) - self.spec.n, len(stack)))
        head = set(head_parameter_names(model))
        freeze_all_but(model, lambda name: name in head or (name.startswith(top) and "LayerNorm" in name))
        self.lowest_trainable_layer = self._lowest_from(model)
        return model


@pytest.fixture
def registry_kept():
    """Whatever a test registers is gone after it: the other tests see the built-in kinds only."""
    from tunebench.methods import registry
    from tunebench.spec import strategy

    options, methods, loaded = dict(strategy.OPTIONS), dict(registry._REGISTERED), strategy._plugins["loaded"]
    yield
    strategy.OPTIONS.clear()
    strategy.OPTIONS.update(options)
    registry._REGISTERED.clear()
    registry._REGISTERED.update(methods)
    strategy._plugins["loaded"] = loaded
    for name in [m for m in sys.modules if m.startswith("tb_plugin_")]:
        del sys.modules[name]


def _ids(strategies: list[str]) -> dict[str, str]:
    from types import SimpleNamespace

    from tunebench.spec.study import StudySpec
    from tunebench.study.plan import run_config, run_id_for

    spec = StudySpec(name="ids", data={"source": "rotten-tomatoes"}, model={"name": "minilm-l6"}, strategies=strategies)
    bundle = SimpleNamespace(hashes=lambda: {"train": "t", "validation": "v", "test": "x"})
    return {s.label: run_id_for(spec, s, bundle, run_config(spec, s, "fp32"), torch.device("cpu"))
            for s in spec.strategies}


def test_a_method_registered_in_one_call_is_a_kind_like_any_other(registry_kept, tiny_bert, capsys):
    builtin = _ids(["full", "lora:r=8", "vera"])
    assert register(TopNormMethod, options=TopNormOptions) is TopNormMethod
    assert KINDS[-1] == "top-norm" and list(METHODS)[-1] == "top-norm" and DEFAULT_LR["top-norm"] == 2e-3
    assert option_columns()[-1] == "n"
    spec = parse_strategy("top-norm:n=2,lr=1e-3")
    assert spec.label == "top-norm:n=2,lr=0.001" and type(spec) is TopNormOptions
    with pytest.raises(SpecError, match="option k only applies to partial, not top-norm"):
        parse_strategy("top-norm:k=2")
    assert _ids(["full", "lora:r=8", "vera"]) == builtin  # its option column enters no built-in run id

    method = build_strategy(parse_strategy("top-norm:n=2"))
    model = method.prepare(load_classifier(str(tiny_bert), ["a", "b"]))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert method.lowest_trainable_layer == TINY_LAYERS - 2
    assert {n.split(".")[3] for n in trainable if n.startswith("bert.encoder.layer.")} == {"1", "2"}

    from .conftest import cli

    code, out, _ = cli(capsys, "methods")
    row = out.strip().splitlines()[-2].split("\t")
    assert code == 0 and row[:3] == ["top-norm", "n=1", "0.002"] and row[4] == "the layers below the top n"


def test_a_plugin_method_trains_a_tiny_model_through_the_study(registry_kept, tiny_bert, tmp_path):
    from tunebench.study import driver

    from .test_study import tiny_spec

    register(TopNormMethod, options=TopNormOptions)
    csv = tmp_path / "reviews.csv"
    easy_reviews(60).to_csv(csv, index=False)
    spec = tiny_spec(tiny_bert, csv, tmp_path / "out", strategies=["top-norm", "head"], epochs=1)
    records = {r["strategy"]: r for r in driver.run_study(spec)}
    record = records["top-norm"]
    assert record["status"] == "finished" and record["spec"]["kind"] == "top-norm" and record["spec"]["n"] == 1
    assert record["model"]["lowest_trainable_layer"] == TINY_LAYERS - 1
    assert record["params"]["trainable"] > records["head"]["params"]["trainable"]  # the head and one layer's norms


def _install(root, name: str, entry: str, module: str | None = None) -> None:
    """A fake installed distribution: ``name``.dist-info with one ``tunebench.methods`` entry point."""
    info = root / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[tunebench.methods]\n{entry}\n")
    if module is not None:
        (root / f"{name}.py").write_text(textwrap.dedent(module))


PLUGIN = """
    from typing import ClassVar, Literal

    from tunebench.methods import HeadMethod, register
    from tunebench.spec.strategy import StrategyOptions


    class BiasFreeOptions(StrategyOptions):
        '''The head trains (a plug-in).'''

        kind: Literal["plugged-head"] = "plugged-head"
        default_lr: ClassVar[float] = 1e-3


    class PluggedHeadMethod(HeadMethod):
        kind = "plugged-head"


    register(PluggedHeadMethod, options=BiasFreeOptions)
"""


def test_an_installed_plugin_is_loaded_through_its_entry_point(registry_kept, tmp_path, monkeypatch):
    from tunebench.spec import strategy

    _install(tmp_path, "tb_plugin_demo", "demo = tb_plugin_demo", PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    strategy._plugins["loaded"] = False  # as in a fresh process
    assert "plugged-head" in KINDS  # listing the kinds loads the plug-ins first
    method = build_strategy(parse_strategy("plugged-head"))
    assert type(method).__name__ == "PluggedHeadMethod" and method.spec.default_lr == 1e-3


def test_a_plugin_that_fails_to_load_is_one_sentence(registry_kept, tmp_path, monkeypatch, capsys):
    from tunebench.spec import strategy

    from .conftest import cli

    _install(tmp_path, "tb_plugin_broken", "broken = tb_plugin_missing")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    strategy._plugins["loaded"] = False
    code, _, err = cli(capsys, "methods")
    assert code == 2
    assert one_error(err) == ("error: method plug-in 'broken' (tb_plugin_missing) failed to load: "
                              "No module named 'tb_plugin_missing'")
