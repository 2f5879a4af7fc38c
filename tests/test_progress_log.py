"""Progress when the output is not a terminal: one plain line per epoch (run, epoch, train loss,
validation macro-F1, examples/s, ETA), and no progress bars."""

from __future__ import annotations

import io
import re

from rich.console import Console

from tunebench.cli.console import RichReporter, epoch_line

from .conftest import cli

LINE = re.compile(r"^\[(\d+)/(\d+)\] (\S+)  epoch (\d+)/(\d+)  train loss (\S+)  val macro-F1 (\S+)  (\S+) ex/s  ETA (.+)$")


def _train(reporter: RichReporter, label: str, epochs: int, batches: int, position: int = 0, total: int = 2,
           call_epoch: bool = True) -> list[dict]:
    reporter.run_started(position, total, label, batches, epochs)
    curves = []
    for e in range(1, epochs + 1):
        for b in range(1, batches + 1):
            reporter.step({"epoch": e, "epochs": epochs, "batch": b, "batches": batches, "loss": 1.0 / (e + b),
                           "examples_per_s": 40.0 + e, "lr": 1e-3})
        point = {"epoch": e, "train_loss": 0.9 - 0.1 * e, "val_loss": 0.8, "val_accuracy": 0.5 + 0.1 * e,
                 "val_macro_f1": 0.5 + 0.1 * e, "train_time_s": 1.0}
        curves.append(point)
        if call_epoch:
            reporter.epoch({**point, "label": label, "epochs": epochs})
    return curves


def _finished(label: str, curves: list[dict], position: int = 0) -> dict:
    return {"strategy": label, "label": label, "position": position, "status": "finished", "curves": curves,
            "best_epoch": len(curves), "test": {"macro_f1": 0.7, "accuracy": 0.7},
            "resources": {"train_time_s": 3.0}, "wall_time_s": 4.0}


def _epoch_lines(text: str) -> list[re.Match]:
    return [m for line in text.splitlines() if (m := LINE.match(line))]


def test_a_non_terminal_console_gets_exactly_one_line_per_epoch_from_epoch_calls():
    buf = io.StringIO()
    reporter = RichReporter(Console(file=buf, width=60))  # not a terminal, and narrow: lines must not wrap
    assert not reporter.bars
    curves = _train(reporter, "lora:r=8", epochs=3, batches=4)
    reporter.run_finished(_finished("lora:r=8", curves))
    curves = _train(reporter, "head", epochs=2, batches=4, position=1)
    reporter.run_finished(_finished("head", curves, position=1))
    reporter.close()
    lines = _epoch_lines(buf.getvalue())
    assert [(m[1], m[3], m[4]) for m in lines] == [("1", "lora:r=8", "1"), ("1", "lora:r=8", "2"),
                                                   ("1", "lora:r=8", "3"), ("2", "head", "1"), ("2", "head", "2")]
    first = lines[0]
    assert (first[5], first[6], first[7], first[8]) == ("3", "0.8000", "0.600", "41.0")  # the curve's train loss
    assert lines[2][9] == "done" and re.fullmatch(r"\d+ s", lines[0][9])
    assert sum(bool(re.search(r"epoch \d+/", line)) for line in buf.getvalue().splitlines()) == 5  # no bar, no repeat


def test_without_epoch_calls_the_steps_still_give_one_line_per_epoch():
    buf = io.StringIO()
    reporter = RichReporter(Console(file=buf, width=200))
    curves = _train(reporter, "full", epochs=3, batches=2, call_epoch=False)
    reporter.run_finished(_finished("full", curves))
    lines = _epoch_lines(buf.getvalue())
    assert [m[4] for m in lines] == ["1", "2", "3"]
    assert [m[7] for m in lines] == ["—", "—", "0.800"]  # the last one from the finished record's curves


def test_a_terminal_gets_bars_and_no_lines_unless_a_log_console_is_given():
    term = io.StringIO()
    reporter = RichReporter(Console(file=term, force_terminal=True, width=120))
    assert reporter.bars and reporter.log is None
    reporter.run_finished(_finished("full", _train(reporter, "full", epochs=2, batches=2)))
    reporter.close()
    assert _epoch_lines(term.getvalue()) == []
    log = io.StringIO()
    reporter = RichReporter(Console(file=io.StringIO(), force_terminal=True), log=Console(file=log))
    reporter.run_finished(_finished("full", _train(reporter, "full", epochs=2, batches=2)))
    reporter.close()
    assert len(_epoch_lines(log.getvalue())) == 2


def test_the_line_format():
    point = {"epoch": 2, "epochs": 5, "label": "partial:k=2", "train_loss": 0.41234, "val_macro_f1": 0.6789,
             "position": 1, "total": 4}
    assert epoch_line(point, 123.45, 150) == ("[2/4] partial:k=2  epoch 2/5  train loss 0.4123  val macro-F1 0.679  "
                                              "123.5 ex/s  ETA 2 min")
    assert epoch_line({"epoch": 1, "label": "x"}) == "x  epoch 1/?  train loss —  val macro-F1 —  — ex/s  ETA —"


def test_tunebench_run_with_stdout_not_a_terminal_logs_one_line_per_epoch(capsys, tiny_bert, reviews_csv, tmp_path):
    code, out, err = cli(capsys, "run", "--quick", "--model", str(tiny_bert), "--dataset", str(reviews_csv), "--epochs", "2",
                       "--batch-size", "16", "--max-length", "32", "--output", str(tmp_path / "out"),
                       "-s", "head partial:k=1", "--lr", "0.003")
    assert code == 0, err
    lines = _epoch_lines(out)  # `tunebench run > log`: the lines go to the log
    assert [(m[3], m[4], m[5]) for m in lines] == [("head", "1", "2"), ("head", "2", "2"),
                                                   ("partial:k=1", "1", "2"), ("partial:k=1", "2", "2")]
    assert all(float(m[8]) > 0 for m in lines) and lines[-1][7] != "—"  # speed, and the last validation score
