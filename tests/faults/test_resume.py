"""Resume points, determinism and recorded seeds: a run stopped mid-epoch ends exactly like one never stopped."""

from __future__ import annotations

import pytest
import torch

from tunebench.spec.study import StudySpec
from tunebench.study import driver as study_module

from .common import comparable, predictions, write_reviews

STRATEGIES = ["partial:k=1", "lora:r=4"]  # the frozen-prefix cache, and LoRA dropout (RNG state)


def spec_for(model, csv, out, **training) -> StudySpec:
    return StudySpec(name="resume", data={"source": str(csv)}, model={"name": str(model), "max_length": 32},
                     strategies=STRATEGIES, training={"epochs": 2, "batch_size": 8, "lr": 3e-3, **training},
                     output={"dir": str(out), "save_checkpoints": False})


@pytest.fixture(scope="module")
def reference(tiny_models, tmp_path_factory):
    """The study run once, uninterrupted."""
    root = tmp_path_factory.mktemp("reference")
    csv = write_reviews(root)
    return csv, study_module.run_study(spec_for(tiny_models["bert"], csv, root / "out")), root / "out"


def count_training_losses(monkeypatch, fail_at: set[int] = frozenset()) -> list[int]:
    """Count the engine's training losses; raise at the given counts (an injected crash)."""
    real = torch.nn.functional.cross_entropy
    calls: list[int] = []

    def loss(*args, **kwargs):
        if torch.is_grad_enabled() and not kwargs:  # the engine's training loss, not the model's own
            calls.append(1)
            if len(calls) in fail_at:
                raise RuntimeError(f"injected crash at training batch {len(calls)}")
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", loss)
    return calls


def test_same_spec_and_seed_give_identical_metrics_and_predictions(reference, tiny_bert, tmp_path):
    csv, ref, ref_out = reference
    again = study_module.run_study(spec_for(tiny_bert, csv, tmp_path / "out"))
    for a, b in zip(ref, again, strict=True):
        assert a["run_id"] == b["run_id"]
        assert comparable(a) == comparable(b)
        assert predictions(ref_out, a["run_id"]) == predictions(tmp_path / "out", b["run_id"])
        assert a["seeds"] == {"python": 0, "numpy": 0, "torch": 0, "data_order": [1, 2], "split": 0}


def test_a_run_killed_mid_epoch_resumes_and_ends_exactly_like_an_uninterrupted_one(reference, tiny_bert, tmp_path,
                                                                                  monkeypatch):
    csv, ref, ref_out = reference
    per_epoch = ref[0]["resources"]["optimizer_steps"] // 2
    assert per_epoch >= 5
    out = tmp_path / "out"
    spec = spec_for(tiny_bert, csv, out, checkpoint_every=4)
    # partial crashes at batch 7 (state saved at step 4); lora at its batch per_epoch + 4 (saved at step 8)
    count_training_losses(monkeypatch, fail_at={7, 7 + per_epoch + 4})
    first = study_module.run_study(spec)
    assert [r["status"] for r in first] == ["failed", "failed"]
    assert sorted(p.name for p in (out / "resume").iterdir()) == sorted(f"{r['run_id']}.pt" for r in first)

    monkeypatch.undo()
    calls = count_training_losses(monkeypatch)
    second = study_module.run_study(spec)
    assert len(calls) == (2 * per_epoch - 4) + (2 * per_epoch - 8)  # only the batches after each resume point
    assert second[0]["resumed_from"] == {"epoch": 1, "batch": 4, "step": 4}
    assert second[1]["resumed_from"] == {"epoch": 2, "batch": 8 - per_epoch, "step": 8}
    for a, b in zip(ref, second, strict=True):
        assert comparable(a) == comparable(b), a["strategy"]
        assert predictions(ref_out, a["run_id"]) == predictions(out, b["run_id"])
    assert list((out / "resume").iterdir()) == []  # removed once the runs finished


def test_a_resume_state_for_other_settings_is_ignored(reference, tiny_bert, tmp_path):
    """A state saved with another batch size (e.g. before an out-of-memory retry) is not resumed from."""
    from tunebench.training.resume import ResumePoint

    csv, ref, _ = reference
    point = ResumePoint(tmp_path / "x.pt", 1, {"batch_size": 8})
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    point.save(model, opt, sched, None, {"epoch": 1, "next_batch": 1, "step": 1}, {})
    assert ResumePoint(tmp_path / "x.pt", 1, {"batch_size": 4}).load(model, opt, sched, None) is None
    assert point.load(model, opt, sched, None) is not None
