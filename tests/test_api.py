"""The Python API: ``tb.Study(...).run()`` gives the CLI's rows, ``tb.load`` round-trips, bad arguments raise
the CLI's sentences; ``import tunebench`` stays cheap; the command line takes space-separated values."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

import tunebench as tb
from tunebench.api.spec import build_spec
from tunebench.cli.argv import gather

from .conftest import cli, easy_reviews, one_error

SAME = ["run", "strategy", "label", "trainable_params", "total_params", "best_epoch", "val_macro_f1",
        "test_accuracy", "test_macro_f1", "status"]


@pytest.fixture(scope="module")
def csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("api-data") / "reviews.csv"
    easy_reviews().to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def studied(tiny_bert, csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("api") / "out"
    study = tb.Study(dataset=str(csv), model=str(tiny_bert), strategies=["head", "partial:k=1"], epochs=1, quick=True,
                     batch_size=8, max_length=32, lr=0.003, output=out)
    return study, study.run(progress=False), out


def test_study_run_gives_the_cli_rows(studied, tiny_bert, csv, tmp_path, capsys):
    study, result, out = studied
    assert study.spec.name == "reviews-bert" and study.spec.data.train_limit is None  # as `tunebench run --dataset`
    code, _, err = cli(capsys, "run", "--quick", "--model", str(tiny_bert), "--dataset", str(csv), "--epochs", "1",
                       "--batch-size", "8", "--max-length", "32", "--lr", "0.003", "-o", str(tmp_path / "cli"),
                       "-s", "head", "partial:k=1")  # space-separated, as people type it
    assert code == 0, err
    from_cli = pd.read_csv(tmp_path / "cli" / "results.csv")
    from_api = pd.read_csv(out / "results.csv")
    assert from_cli["label"].tolist() == ["head", "partial:k=1"]
    pd.testing.assert_frame_equal(from_api[SAME], from_cli[SAME])
    pd.testing.assert_frame_equal(result.table[SAME].reset_index(drop=True), from_api[SAME], check_dtype=False)


def test_load_round_trips_without_retraining(studied):
    _, result, out = studied
    loaded = tb.load(out)
    assert loaded.study == result.study == "reviews-bert"
    pd.testing.assert_frame_equal(loaded.table, result.table)
    pd.testing.assert_frame_equal(loaded.by_config, result.by_config)
    assert list(loaded.by_config["config"]) == ["head", "partial:k=1"]
    assert {"test_macro_f1_mean", "test_macro_f1_std", "test_macro_f1_ci_low", "test_macro_f1_ci_high"} <= set(
        loaded.by_config.columns)
    rec = loaded.recommendation
    assert rec == result.recommendation and str(rec) == rec.sentence
    # the best run is a fine-tuned one; the recommendation may be a baseline when nothing clears it
    assert rec.choice in {"head", "partial:k=1", "majority", "tfidf-logreg"} and rec.best in {"head", "partial:k=1"}
    report_md = (out / "report.md").read_text()
    assert rec.sentence in report_md  # the report's own sentence
    best = loaded.best
    assert best.label == rec.best and best.checkpoint is not None and best.checkpoint.is_dir()
    assert best.test["macro_f1"] == pytest.approx(loaded.table.set_index("label").loc[best.label, "test_macro_f1"],
                                                  abs=1e-4)
    labels = best.predict(["the film was good", "the meal was awful"])
    assert len(labels) == 2 and set(labels) <= {"pos", "neg"}
    probs = best.predict_proba("the film was good")
    assert list(probs.columns) == ["neg", "pos"] and probs.sum(axis=1).iloc[0] == pytest.approx(1.0, abs=1e-5)
    assert [r.label for r in loaded.runs] == ["head", "partial:k=1"] and loaded.unfinished == []
    assert loaded.run("head").run_id == result.table["run"][0]
    with pytest.raises(tb.SpecError, match="no run labelled 'lora' in study 'reviews-bert'"):
        loaded.run("lora")


def test_report_displays_inline(studied):
    _, result, out = studied
    report = result.report(prices={"CPU": 3.6})
    assert report.html == out / "report.html" and report.markdown.is_file()
    html = report._repr_html_()
    assert html.startswith('<div class="tunebench-report"><style>') and "<body" not in html
    assert "tunebench report: reviews-bert" in html and "partial:k=1" in html and 'id="headline"' in html
    style = html[html.index("<style>"):html.index("</style>")]
    assert "body{" not in style and "sticky" not in style and ".tunebench-report table{" in style
    assert "<table" in result._repr_html_()


def test_rerun_skips_what_is_finished(studied, capsys):
    study, result, _ = studied
    again = study.run()  # progress on: plain lines outside a terminal or notebook
    printed = capsys.readouterr().out
    assert "already finished in the store" in printed and "tunebench study 'reviews-bert'" in printed
    pd.testing.assert_frame_equal(again.table, result.table)


@pytest.mark.parametrize("settings, message", [
    ({"epochs": 0}, "field 'training.epochs' Input should be greater than or equal to 1 (got 0)"),
    ({"strategies": ["adapter"]}, "unknown strategy 'adapter' in 'adapter'; choose one of: full, head, partial, lora"),
    ({"scheduler": "step"}, "field 'training.scheduler' must be one of 'linear', 'cosine' or 'constant'"),
    ({"attention": "flash"}, "field 'model.attention' must be one of 'auto', 'sdpa' or 'eager' (got 'flash')"),
    ({"no_such_setting": 1}, "field 'no_such_setting' is not a known field"),
    ({"track": "neptune"}, "--track must be one of tensorboard, mlflow, wandb (got 'neptune')"),
    ({"prices": {"T4": "cheap"}}, "NAME=USD_PER_HOUR"),
])
def test_bad_arguments_raise_the_cli_sentence(settings, message):
    with pytest.raises(tb.TunebenchError) as caught:
        tb.Study(**settings)
    assert message in str(caught.value) and isinstance(caught.value, tb.SpecError)


def test_the_same_sentence_on_the_command_line(capsys):
    code, _, err = cli(capsys, "run", "--epochs", "0")
    with pytest.raises(tb.SpecError) as caught:
        tb.Study(epochs=0)
    assert code == 2 and str(caught.value).removeprefix("Study(): ") in one_error(err)


def test_load_errors(tmp_path):
    with pytest.raises(tb.SpecError, match="no study store in"):
        tb.load(tmp_path)


def test_settings_find_their_section():
    spec = build_spec(None, {"dataset": "x.csv", "train_limit": 10, "backend": "local", "epochs": 2,
                             "training": {"batch_size": 4}, "seeds": [0, 1], "save_checkpoints": False,
                             "strategies": "head lora:r=4"})
    assert spec.data.source == "x.csv" and spec.data.train_limit == 10 and spec.data.val_limit is None
    assert spec.training.epochs == 2 and spec.training.batch_size == 4 and spec.sweep.seeds == [0, 1]
    assert spec.output.save_checkpoints is False and [s.label for s in spec.strategies] == ["head", "lora:r=4"]
    assert spec.name == "x-minilm-l6"
    default = build_spec(None, {})
    assert default.name == "default-rotten-tomatoes-minilm" and default.data.train_limit == 400
    assert build_spec(None, {}, quick=True).name == "default-snli-minilm"
    assert tb.Study(default, epochs=1).spec.training.epochs == 1  # a spec, with keywords over it


def test_yaml_study_with_training_track(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text("name: s\ntraining: {epochs: 1, track: [tensorboard]}\nstrategies: [head]\n")
    study = tb.Study.from_yaml(path, track="mlflow", train_limit=50)
    assert study.track == ["tensorboard", "mlflow"] and study.spec.training.epochs == 1
    assert study.spec.data.train_limit == 50 and study.spec.name == "s"
    path.write_text("training: {track: 3}\n")
    with pytest.raises(tb.SpecError, match="training.track"):
        tb.Study.from_yaml(path)


def test_import_tunebench_is_cheap():
    code = ("import sys, tunebench as tb; assert 'torch' not in sys.modules and 'tunebench.api' not in sys.modules; "
            "assert tb.TunebenchError.__module__ == 'tunebench.errors'; assert 'torch' not in sys.modules; "
            "assert set(tb.__all__) == set(tb._EXPORTS) | {'__version__'}; print(sorted(dir(tb))[:3])")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


# --- the command line as people type it -------------------------------------------------------------

@pytest.mark.parametrize("argv, expected", [
    (["run", "--strategies", "head", "full"], ["run", "--strategies", "head", "--strategies", "full"]),
    (["run", "-s", "head", "lora:r=8,alpha=16", "--epochs", "1"], ["run", "-s", "head", "-s", "lora:r=8,alpha=16",
                                                                   "--epochs", "1"]),
    (["run", "--strategies=head", "full"], ["run", "--strategies", "head", "--strategies", "full"]),
    (["run", "-s", "head full"], ["run", "-s", "head full"]),  # today's quoted form
    (["run", "-s", "head", "study.yaml"], ["run", "-s", "head", "study.yaml"]),
    (["sweep", "--seeds", "0", "1", "2", "-s", "head"], ["sweep", "--seeds", "0 1 2", "-s", "head"]),
    (["sweep", "--seeds", "0,1", "2"], ["sweep", "--seeds", "0,1 2"]),
    (["run", "--track", "tensorboard", "mlflow", "wandb"], ["run", "--track", "tensorboard", "--track", "mlflow",
                                                            "--track", "wandb"]),
    (["report", "-s", "a", "b"], ["report", "-s", "a", "b"]),  # other commands are left alone
])
def test_space_separated_values_are_gathered(argv, expected):
    assert gather(argv) == expected


def test_a_study_file_after_strategies_stays_the_study_file(tmp_path, capsys):
    study = tmp_path / "study"  # an existing file, even without a suffix, is never taken for a strategy
    study.write_text("strategies: [head]\n")
    assert gather(["run", "-s", "head", str(study)]) == ["run", "-s", "head", str(study)]
    code, _, err = cli(capsys, "run", "-s", "head", "full", str(tmp_path / "missing.yaml"))
    assert code == 2 and "study file" in one_error(err) and "missing.yaml" in err


@pytest.mark.parametrize("argv, message", [
    (["run", "head", "full"], "'head' is a strategy, not a study file: give strategies after --strategies or -s, "
                              "e.g. tunebench run -s head full"),
    (["run", "--epochs", "1", "2"], "'2' is a number, not a study file: an option takes one value"),
    (["sweep", "--grid", "lr=1e-4,1e-3", "lora:r=8"], "'lora:r=8' is a strategy, not a study file"),
])
def test_stray_strategies_and_numbers_are_not_missing_files(capsys, argv, message):
    code, _, err = cli(capsys, *argv)
    text = one_error(err)
    assert code == 2 and message in text and "does not exist" not in text


def test_strategies_after_s_never_read_as_a_study_file(capsys, tmp_path):
    code, _, err = cli(capsys, "run", "--strategies", "head", "full", "--model", str(tmp_path / "no-model"))
    text = one_error(err)
    assert code == 2 and "no-model" in text and "study file" not in text
    code, _, err = cli(capsys, "run", "-s", "head", "ful", "--model", str(tmp_path / "no-model"))
    assert code == 2 and "unknown strategy 'ful'" in one_error(err)  # a typo is named as a strategy
    code, _, err = cli(capsys, "sweep", "--seeds", "0", "1", "--epochs", "0")
    assert code == 2 and "field 'training.epochs'" in one_error(err)


def _options(**given):
    """``tunebench run``'s options by name: its defaults, then ``given`` (as typer hands them over)."""
    import inspect

    from tunebench.cli.run import run

    return {**{name: p.default for name, p in inspect.signature(run).parameters.items()}, **given}


@pytest.mark.parametrize(("options", "keywords"), [
    ({}, {}),
    ({"dataset": "data/reviews.csv", "model": "models/bert/", "strategies": ["head lora:r=4", "full;bitfit"],
      "epochs": 3, "output": "out", "no_checkpoints": True, "tune": True, "patience": 2, "lr": 1e-3,
      "max_length": 48, "backend": "ray", "max_runs": 20, "trust_remote_code": True},
     {"dataset": "data/reviews.csv", "model": "models/bert/", "strategies": "head lora:r=4 full bitfit",
      "epochs": 3, "output": "out", "save_checkpoints": False, "tuning": {"enabled": True},
      "early_stopping": {"patience": 2}, "lr": 1e-3, "max_length": 48, "backend": "ray", "max_runs": 20,
      "trust_remote_code": True}),
    ({"model": "minilm-l6", "train_limit": 50, "name": "mine", "no_prefix_cache": True, "compile_model": True},
     {"model": "minilm-l6", "train_limit": 50, "name": "mine", "prefix_cache": False, "compile": True}),
])
def test_the_cli_and_the_api_build_one_spec_from_the_same_options(options, keywords):
    from tunebench.cli.run import spec_from_options

    assert spec_from_options(_options(**options)).to_dict() == build_spec(None, keywords).to_dict()


def test_a_study_file_with_options_is_the_same_spec_from_the_cli_and_the_api(tmp_path):
    from tunebench.api.spec import load_study_file
    from tunebench.cli.run import spec_from_options

    path = tmp_path / "study.yaml"
    path.write_text("name: filed\ndata: {source: rotten-tomatoes, train_limit: 80}\nstrategies: [head]\n"
                    "training: {epochs: 2, early_stopping: {patience: 3, min_delta: 0.01}}\n")
    cli_spec = spec_from_options(_options(study_file=path, patience=1, dataset="snli", seed=7), {"seeds": [0, 1]})
    api_spec = build_spec(load_study_file(path)[0], {"early_stopping": {"patience": 1}, "dataset": "snli",
                                                     "seed": 7, "sweep": {"seeds": [0, 1]}})
    assert cli_spec.to_dict() == api_spec.to_dict()
    # a study file's name and limits stay; the patience joins the file's early stopping
    assert cli_spec.name == "filed" and cli_spec.data.train_limit == 80 and cli_spec.data.source == "snli"
    assert (cli_spec.training.early_stopping.patience, cli_spec.training.early_stopping.min_delta) == (1, 0.01)
