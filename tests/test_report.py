"""The report built from the store of a real tiny study: files, numbers, escaping, identical rebuilds."""

from __future__ import annotations

import json
import re
import shutil
from html import unescape

import pytest
from PIL import Image

from tunebench.cli.app import main
from tunebench.report import build_document, build_report, tracking
from tunebench.report.inputs import load_inputs
from tunebench.report.sections import HEADLINE, headline_more
from tunebench.results.store import STORE_NAME, Store
from tunebench.study import driver as study_module

from .conftest import easy_reviews
from .test_study import tiny_spec

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def hostile_reviews():
    """Easy reviews whose texts and one label carry HTML and a matplotlib-math lookalike."""
    frame = easy_reviews(60)
    frame["text"] = [f"{t} {SCRIPT if i % 2 else IMG}" for i, t in enumerate(frame["text"])]
    noisy = frame.index % 5 == 0  # unlearnable rows, so every run makes errors whose text the report shows
    frame.loc[noisy, "label"] = frame.loc[noisy, "label"].map({"neg": "pos", "pos": "neg"})
    frame["label"] = frame["label"].replace({"neg": "<b>neg</b> $5 & $6"})
    return frame


@pytest.fixture(scope="module")
def reported(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    csv = root / "reviews.csv"
    hostile_reviews().to_csv(csv, index=False)
    spec = tiny_spec(tiny_models["bert"], csv, root / "out", strategies=["full", "lora:r=4", "head"], epochs=2)
    records = study_module.run_study(spec)
    paths = build_report(root / "out")
    return root / "out", records, paths


def test_report_files_and_figures_exist_and_are_valid_pngs(reported):
    out, _, paths = reported
    assert paths == {"html": out / "report.html", "markdown": out / "report.md"}
    names = {p.name for p in (out / "figures").glob("*.png")}
    assert {"comparison.png", "pareto.png", "curves.png", "confusion.png", "per_class_f1.png", "error_labels.png",
            "probability_gaps.png"} <= names
    # the dataset section draws word counts itself unless the study wrote a dataset profile with figures
    assert "data_words.png" in names or (out / "dataset_profile.json").is_file()
    for png in (out / "figures").glob("*.png"):
        assert png.read_bytes()[:8] == PNG_MAGIC
        with Image.open(png) as img:
            img.verify()
    markdown = paths["markdown"].read_text()
    for name in names:
        assert f"](figures/{name})" in markdown


#: column positions of the headline table (name, settings, then sections.HEADLINE) and of the one below it
HEAD = {h: i for i, h in enumerate(["strategy", "settings"] + [h for h, _, _ in HEADLINE])}
MORE = {h: i for i, h in enumerate(["strategy"] + [h for h, _, _ in headline_more("single_label")])}


def _cells(html: str, table: str) -> list[list[tuple[str, str | None]]]:
    body = re.search(rf'<table data-table="{table}">(.*?)</table>', html, re.S).group(1)
    rows = re.findall(r"<tr>(.*?)</tr>", body.split("<tbody>")[1], re.S)
    return [[(unescape(text), value) for value, text in
             re.findall(r'<td(?: class="[^"]*")?(?: data-value="([^"]*)")?>(.*?)</td>', row, re.S)] for row in rows]


def test_headline_numbers_equal_the_stored_records(reported):
    out, records, paths = reported
    html = paths["html"].read_text()
    everything = _cells(html, "headline")
    with Store(out / STORE_NAME) as store:
        stored, references = store.records("tiny"), store.records("tiny:baselines")
    # the baselines come last, as reference rows, with their own stored numbers
    more = _cells(html, "headline-more")  # the secondary numbers, one row per run in the same order
    rows, baselines = everything[:-2], everything[-2:]
    assert [r[0][0] for r in baselines] == ["majority (baseline)", "tfidf-logreg (baseline)"]
    for row, extra, rec in zip(baselines, more[-2:], references, strict=True):
        assert float(row[HEAD["test macro-F1"]][1]) == round(rec["test"]["macro_f1"], 4)
        assert not row[HEAD["test macro-F1"]][0].endswith("★")
        # a baseline trains no network: its fit time and size mean something, share, throughput, $/F1 do not
        assert float(row[HEAD["train s"]][1]) == round(rec["resources"]["train_time_s"], 2)
        assert int(extra[MORE["save"]][1]) == rec["save_bytes"]
        assert row[HEAD["share %"]] == ("—", "")  # (text, no data-value)
        assert extra[MORE["ex/s"]] == ("—", "") and extra[MORE["$ / F1 point"]] == ("—", "")
    # a run flagged by the convergence checks carries a mark after its name
    assert [r[0][0].removesuffix(" ⚠") for r in rows] == [r["strategy"] for r in stored] == ["full", "lora:r=4", "head"]
    for row, extra, rec in zip(rows, more[:-2], stored, strict=True):
        values = {i: float(v) for i, (_, v) in enumerate(row) if v}
        assert values[HEAD["trainable"]] == rec["params"]["trainable"]
        assert float(extra[MORE["total params"]][1]) == rec["params"]["total"]
        f1 = HEAD["test macro-F1"]
        assert values[f1] == round(rec["test"]["macro_f1"], 4) and row[f1][0].startswith(f"{rec['test']['macro_f1']:.3f}")
        assert values[HEAD["test acc"]] == round(rec["test"]["accuracy"], 4)
        assert values[HEAD["train s"]] == round(rec["resources"]["train_time_s"], 2)
        assert values[HEAD["cost $"]] == pytest.approx(rec["resources"]["train_time_s"] / 3600 * 0.34)  # CPU price
        res = rec["resources"]  # the run's own memory: peak RSS above the process's at its start
        assert values[HEAD["memory MB"]] == pytest.approx(res["peak_rss_mb"] - res["rss_at_start_mb"])
        assert float(extra[MORE["process peak MB"]][1]) == res["peak_rss_mb"]
    best = max(stored, key=lambda r: r["test"]["macro_f1"])
    best_row = rows[[r["strategy"] for r in stored].index(best["strategy"])]
    assert best_row[HEAD["test macro-F1"]][0].endswith("★")
    curves = _cells(html, "curves")
    assert len(curves) == sum(len(r["curves"]) for r in stored)
    assert float(curves[0][2][1]) == stored[0]["curves"][0]["train_loss"]


def rows_of(html: str) -> list[str]:
    return [r[0][0] for r in _cells(html, "headline")]


def test_every_section_is_filled(reported):
    _, _, paths = reported
    html = paths["html"].read_text()
    for key in ("headline", "convergence", "comparison", "pareto", "curves", "confusion", "errors", "dataset", "cost",
                "recommendation", "environment"):
        section = re.search(rf'<section id="{key}">(.*?)</section>', html, re.S)
        assert section and ("<table" in section.group(1) or "<img" in section.group(1) or "<li>" in section.group(1))
    assert "split hash" in html
    # two epochs of a tiny model: runs still improving are not ranked, and the recommendation says what to do
    flagged = [r for r in rows_of(html) if r.endswith(" ⚠")]
    assert len(flagged) == html.count("Not ranked as beaten:")
    if len(flagged) < 3:
        assert "Best quality" in html and "Cheapest within 1 point" in html
    else:  # nothing ranked: the cheapest baseline that is as good is the answer, else no verdict
        assert "No verdict" in html or "(a baseline)" in html
    assert "Test texts rebuilt from the stored data spec" in html
    assert 'data-table="confident-errors"' in html and 'data-table="word-lift"' in html
    # words over-represented among errors: fine-tuned runs only, words with support, beyond chance
    words = _cells(html, "word-lift")
    assert {r[0][0] for r in words} <= {"full", "lora:r=4", "head"}
    assert all(int(r[4][1]) >= 10 and float(r[6][1]) <= 0.1 for r in words if r[4][1])
    assert "Only words in at least 10 test examples are tested" in html and "Baselines are left out" in html


def test_text_from_the_data_is_escaped_everywhere(reported):
    _, records, paths = reported
    assert all(r["test"]["accuracy"] < 1 for r in records)  # errors, hence texts, are in the report
    html = paths["html"].read_text()
    assert "<script" not in html.lower() and "<img src=x" not in html and "onerror=alert" not in html.replace(
        "&lt;img src=x onerror=alert(2)&gt;", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;img src=x onerror=alert(2)&gt;" in html
    assert "&lt;b&gt;neg&lt;/b&gt; $5 &amp; $6" in html  # the hostile label, as text
    assert not re.search(r"<(?!/?(html|head|meta|title|style|body|nav|a|main|h1|h2|p|section|table|caption|thead|"
                         r"tbody|tr|th|td|figure|img|figcaption|ul|li|pre)\b)[a-z]", html)
    markdown = paths["markdown"].read_text()
    assert "<script" not in markdown and "<img" not in markdown and "&lt;script&gt;" in markdown


def test_rebuild_from_the_store_alone_is_byte_identical(reported, tmp_path):
    out, _, paths = reported
    before = {p.name: p.read_bytes() for p in [paths["html"], paths["markdown"], *(out / "figures").glob("*.png")]}
    copy = tmp_path / "copy"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("report.*", "runs"))
    for drawn in ("comparison.png", "curves.png", "confusion.png"):
        (copy / "figures" / drawn).unlink()
    assert main(["report", str(copy)]) == 0
    assert main(["report", str(out)]) == 0
    for target in (out, copy):
        after = {p.name: p.read_bytes() for p in [target / "report.html", target / "report.md",
                                                  *(target / "figures").glob("*.png")]}
        if target == copy:  # the copy differs only in paths that name the output folder
            after = {k: v.replace(str(copy).encode(), str(out).encode()) for k, v in after.items()}
        assert after == before


def test_cli_report_prices_and_one_sentence_errors(reported, tmp_path, capsys):
    out, records, _ = reported
    copy = tmp_path / "c"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("runs"))
    assert main(["report", str(copy), "--price", "CPU=3.6"]) == 0
    rows = _cells((copy / "report.html").read_text(), "headline")
    strategies = [r for r in rows if "(baseline)" not in r[0][0]]  # the baselines are reference rows
    assert len(rows) == len(strategies) + 2
    cost = [float(v) for _, v in [r[HEAD["cost $"]] for r in strategies]]
    assert cost == pytest.approx([r["resources"]["train_time_s"] / 1000 for r in records])
    capsys.readouterr()
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert main(["report", str(copy), "--price", "T4"]) == 2
    assert main(["report", str(copy), "--study", "nope"]) == 2
    assert main(["report", str(copy), "--track", "neptune"]) == 2
    err = capsys.readouterr().err
    assert "no study store in" in err and "NAME=USD_PER_HOUR" in err and "no study named 'nope'" in err
    assert "--track must be one of tensorboard, mlflow, wandb" in err and "Traceback" not in err


def test_texts_missing_or_changed_are_reported_not_fatal(reported, tmp_path):
    out, records, _ = reported
    copy = tmp_path / "c"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("runs"))
    with Store(copy / STORE_NAME) as store:
        for r in store.records():
            r["study_spec"]["data"]["source"] = str(tmp_path / "gone.csv")
            store.put(r, *store.predictions(r["run_id"]))
    assert "could not be reloaded" in load_inputs(copy).texts.note
    changed = tmp_path / "changed.csv"
    frame = hostile_reviews()
    frame["text"] = frame["text"] + " (edited)"
    frame.to_csv(changed, index=False)
    with Store(copy / STORE_NAME) as store:
        for r in store.records():
            r["study_spec"]["data"]["source"] = str(changed)
            store.put(r, *store.predictions(r["run_id"]))
    inputs = load_inputs(copy)
    assert inputs.texts.texts is None and "data changed since the study ran" in inputs.texts.note
    build_report(copy)
    html = (copy / "report.html").read_text()
    assert "data changed since the study ran" in html and "(text unavailable)" in html


def test_dataset_section_reads_the_profile_when_present(reported, tmp_path):
    out, _, _ = reported
    copy = tmp_path / "c"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("runs"))
    shutil.copy(out / "figures" / "curves.png", copy / "data_lengths.png")
    profile = {"name": "reviews", "origin": "csv", "is_pair": False, "label_names": ["a", "b"], "max_length": 32,
               "tokenizer": "minilm", "hashes": {}, "notes": ["a <note>"], "figures": {"lengths": "data_lengths.png"},
               "splits": {"train": {"rows": 40, "label_counts": {"a": 17, "b": 23},
                                    "tokens": {"mean": 9.5, "median": 9, "p95": 12, "max": 14, "truncated_share": 0.25},
                                    "empty_texts": 0, "duplicates": 3, "length_histogram": {"edges": [], "counts": []}}}}
    (copy / "dataset_profile.json").write_text(json.dumps(profile))
    section = next(s for s in build_document(copy).sections if s.key == "dataset")
    tables = {b.key: b for b in section.blocks if hasattr(b, "key")}
    assert [[c.text for c in row] for row in tables["label-counts"].rows] == [["a", "17"], ["b", "23"]]
    assert [c.text for c in tables["token-stats"].rows[0]][:3] == ["train", "40", "9.5"]
    assert tables["token-stats"].rows[0][6].text == "25.0%"
    assert any(getattr(b, "path", None) == copy / "data_lengths.png" for b in section.blocks)


def test_track_mlflow_missing_is_one_sentence(monkeypatch):
    monkeypatch.setattr(tracking.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(tracking.TrackingError, match="needs the mlflow package"):
        tracking.check_backends(["mlflow"])


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
