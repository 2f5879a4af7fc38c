"""A study spec from Python keywords: ``Study(dataset=..., model=..., strategies=[...], epochs=3)``.

A keyword is a spec field, found where it lives: ``name``, ``strategies`` and the other top-level
fields; any field of a section (``train_limit`` → ``data.train_limit``, ``epochs`` →
``training.epochs``, ``backend`` → ``execution.backend``; a name two sections share goes to the first
of data, model, training, execution, output, sweep, then the others); a whole section as a mapping
(``training={"epochs": 3}``); or one of the shorthands in :data:`ALIASES` (``metric`` sets
``training.selection_metric`` too: :data:`ALSO_SETS`).  Anything else is
passed to the spec as it is, so its validation names it in one sentence.  The base is the default
study, as for ``tunebench run``: a ``dataset`` without limits drops the default slice's limits,
and the study is named after its data and model unless ``name`` is given.  ``tunebench run`` builds
its spec here too (:func:`tunebench.cli.run.spec_from_options`): one spec path.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tunebench.errors import SpecError
from tunebench.spec.parts import TrainingSpec
from tunebench.spec.study import StudySpec, check_expansion, default_study, load_spec, quick_study, spec_from_dict

#: keyword → (section, field); section None: a top-level field
ALIASES: dict[str, tuple[str | None, str]] = {
    "dataset": ("data", "source"),
    "dataset_config": ("data", "config"),
    "model": ("model", "name"),
    "output": ("output", "dir"),
    "out_dir": ("output", "dir"),
    "seeds": ("sweep", "seeds"),
    "grid": ("sweep", "grid"),
}
#: a keyword that also sets another: ``metric`` (``--metric``) is the verdict's metric and, unless
#: ``selection_metric`` is given, the one that selects each run's best epoch (``training.selection_metric``)
ALSO_SETS: dict[str, str] = {"metric": "selection_metric"}
#: sections searched for a field name, in this order (then any other section of the spec)
SECTION_ORDER = ("data", "model", "training", "execution", "output", "sweep")
#: the default (and quick) study's slice of its data: dropped when another dataset is given without limits
LIMITS = ("train_limit", "val_limit", "test_limit")


def sections() -> dict[str, type[BaseModel]]:
    """The spec's sections (fields that are pydantic models, optional or not), in :data:`SECTION_ORDER`."""
    found: dict[str, type[BaseModel]] = {}
    for name, info in StudySpec.model_fields.items():
        for candidate in (info.annotation, *typing.get_args(info.annotation)):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                found[name] = candidate
                break
    ordered = [s for s in SECTION_ORDER if s in found] + [s for s in found if s not in SECTION_ORDER]
    return {s: found[s] for s in ordered}


def place(key: str) -> tuple[str | None, str]:
    """Where the keyword ``key`` goes in the spec: (section or None, field)."""
    if key in ALIASES:
        return ALIASES[key]
    if key in StudySpec.model_fields:
        return None, key
    for section, model in sections().items():
        if key in model.model_fields:
            return section, key
    return None, key  # unknown: the spec's validation says so, naming it


def has_track_field() -> bool:
    """Whether the spec itself holds ``training.track`` (else the API keeps it beside the spec)."""
    return "track" in TrainingSpec.model_fields


def build_spec(base: StudySpec | dict[str, Any] | None = None, settings: dict[str, Any] | None = None,
               source: str = "Study()", quick: bool = False) -> StudySpec:
    """``base`` (a spec, a spec mapping, or the default study) with ``settings`` (keywords) applied.

    ``quick``: the quick study (``tunebench run --quick``) instead of the default one, when ``base`` is None."""
    settings = {k: v for k, v in (settings or {}).items() if v is not None}
    settings.update({also: settings[key] for key, also in ALSO_SETS.items() if key in settings and also not in settings})
    if isinstance(base, StudySpec):
        data, default = base.to_dict(), False
    elif isinstance(base, dict):
        data, default = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}, False
    elif base is None:
        data, default = (quick_study() if quick else default_study()).to_dict(), True
    else:
        raise SpecError(f"a study spec must be a StudySpec or a mapping (got a {type(base).__name__})")
    given = {place(k) for k in settings}
    for key, value in settings.items():
        section, name = place(key)
        if section is None and name in sections() and isinstance(value, dict):
            data[name] = {**(data.get(name) or {}), **value}  # training={"epochs": 3}: merged into the section
        elif section is None:
            data[name] = _strategies(value) if name == "strategies" else value
        else:
            if not isinstance(data.get(section), dict):
                data[section] = {}
            known = data[section].get(name)
            if isinstance(value, dict) and isinstance(known, dict):
                value = {**known, **value}  # early_stopping={"patience": 2}: merged into the file's
            data[section][name] = str(value) if isinstance(value, Path) else value
    if default and ("training", "seed") in given and ("sweep", "seeds") not in given and data["sweep"].get("seeds"):
        # the default study's seeds start at --seed: seed 1 runs seeds 1, 2, 3 (as many as the protocol has)
        first = int(data["training"]["seed"])
        data["sweep"]["seeds"] = [first + i for i in range(len(data["sweep"]["seeds"]))]
    if default and ("data", "source") in given:
        for key in LIMITS:  # a user dataset replaces the default slice
            if ("data", key) not in given:
                data["data"][key] = None
        if (None, "name") not in given:
            data["name"] = study_name(data["data"]["source"], data["model"]["name"])
    elif default and ("model", "name") in given and (None, "name") not in given:
        data["name"] = study_name(data["data"]["source"], data["model"]["name"])
    return spec_from_dict(data, source=source)


def _strategies(value: Any) -> Any:
    """``"head full"``, ``["head", "lora:r=8"]`` and ``["head lora:r=8"]`` alike: every string is split at
    spaces and ``;`` (as on the command line, where ``-s`` is space-separated or repeated)."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        return [v for item in value for v in (item.replace(";", " ").split() if isinstance(item, str) else [item])]
    return value


def study_name(dataset: str, model: str) -> str:
    """``reviews-minilm-l6`` from ``data/reviews.csv`` and ``minilm-l6``: runs are grouped by study name."""
    def stem(text: str) -> str:
        return Path(str(text).rstrip("/")).stem.removeprefix("hf:") or str(text)

    return f"{stem(dataset)}-{stem(model)}"


def load_study_file(path: str | Path) -> tuple[StudySpec, list[str]]:
    """A study file's spec and its ``training.track`` backends.

    While the spec has no ``training.track`` field of its own, the key is taken out of the file's
    training section before validation and returned beside the spec; every other key is checked as
    ``tunebench run study.yaml`` checks it."""
    track = file_track(path)
    if has_track_field() or not track:
        spec = load_spec(path)
        return spec, list(getattr(spec.training, "track", None) or [])
    import yaml

    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))  # readable: file_track read it
    check_expansion(data, Path(path))
    data["training"].pop("track")
    return spec_from_dict(data, source=str(path)), track


def file_track(path: str | Path) -> list[str]:
    """``training.track`` of a study file, or [] when it has none (or is not readable: load_spec says why)."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError, RecursionError, TypeError, AttributeError, KeyError, IndexError):
        return []
    training = data.get("training") if isinstance(data, dict) else None
    value = training.get("track") if isinstance(training, dict) else None
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise SpecError(f"{path}: field 'training.track' must be a list of tensorboard, mlflow, wandb "
                    f"(got {value!r:.80})")
