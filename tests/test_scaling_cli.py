"""Bad scaling options (--backend, --address, --nproc) get one sentence and exit code 2, before any training."""

from __future__ import annotations

import sys

import pytest

from .conftest import cli, one_error


def _flags(model, csv, out, *extra):
    return ["run", "--quick", "--model", str(model), "--dataset", str(csv), "-s", "head", "--epochs", "1",
            "-o", str(out), *extra]


@pytest.mark.parametrize("extra, message", [
    (["--nproc", "0"], "field 'execution.nproc' Input should be greater than or equal to 1 (got 0)"),
    (["--nproc", "4096"], "--nproc 4096 asks for more processes than this machine's"),
    (["--nproc", "2", "--backend", "ray"], "nproc > 1 works with the local backend only"),
    (["--backend", "spark"], "field 'execution.backend' must be one of 'local' or 'ray' (got 'spark')"),
    (["--address", "10.0.0.1:6379"], "an address is for the ray backend; add --backend ray"),
    (["--backend", "ray", "--address", "head-node"], "--address must look like HOST:PORT or ray://HOST:PORT"),
    (["--backend", "ray", "--address", "127.0.0.1:1"], "cannot reach the Ray cluster at '127.0.0.1:1'"),
])
def test_bad_scaling_options_get_one_sentence_and_exit_2(capsys, tiny_bert, reviews_csv, tmp_path, extra, message):
    if "ray" in extra and "--nproc" not in extra:
        pytest.importorskip("ray")
    code, _, err = cli(capsys, *_flags(tiny_bert, reviews_csv, tmp_path / "out", *extra))
    assert code == 2
    assert message in one_error(err)
    assert not (tmp_path / "out" / "tunebench.sqlite").exists()


def test_ray_backend_without_ray_names_the_extra_to_install(capsys, tiny_bert, reviews_csv, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    code, _, err = cli(capsys, *_flags(tiny_bert, reviews_csv, tmp_path / "out", "--backend", "ray"))
    assert code == 2
    assert one_error(err).endswith("install it with: pip install 'tunebench[ray]'")


def test_nproc_under_a_launcher_must_agree_with_it(capsys, tiny_bert, reviews_csv, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    code, _, err = cli(capsys, *_flags(tiny_bert, reviews_csv, tmp_path / "out", "--nproc", "3"))
    assert code == 2
    assert "--nproc 3 disagrees with the 2 processes this command was launched with" in one_error(err)
