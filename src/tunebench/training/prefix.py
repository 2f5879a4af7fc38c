"""The frozen prefix of an encoder, and a cache of its outputs.

When a strategy trains nothing below layer ``m`` (``head``: m = n_layers, ``partial:k``:
m = n_layers - k, LoRA restricted to the top layers), the embeddings and layers ``0..m-1`` are a
fixed function of the input.  The engine then

* runs them in eval mode (no dropout in frozen layers), and
* computes their output once per example (:meth:`FrozenPrefix.compute`), then trains every epoch
  on that cache: inside :meth:`FrozenPrefix.bypass` the embeddings return zeros of the right
  shape, layers ``0..m-2`` pass their input through, and layer ``m-1`` returns the cached states
  of the current batch.  The model's own forward still builds the attention mask, runs the
  trainable top, the pooler and the classifier, so the same code path serves every architecture.

The cache holds each example's states unpadded, in one float32 array: in memory up to
``spill_bytes`` (64 MiB by default), above that in a temporary file that each batch reads its rows
from.  The file's pages live in the operating system's page cache, which it can drop and re-read
under memory pressure, so a large cache does not add its size to the process's resident memory (a
memmap would: its touched pages count as resident).  A batch is padded to its longest member,
exactly as the token ids are, so results equal the uncached path up to floating-point summation
order.

**Shared across a study** (:class:`SharedCaches`): the runs of one process — every tuning trial
and seed of ``head``, of ``partial:k=N``, any method that freezes the same prefix — train on the
same frozen layers and the same tokenized splits, so the cache is computed once and reused.  The
key is exact, not a guess: a digest of the prefix's weights and buffers (a method that rewrites a
frozen weight at initialisation gets its own cache), the depth, the split's token ids, the device
and the batch size the cache is computed with.  No library keeps activations across training runs,
hence this registry.  A run that crashes leaves the caches already computed for the next run; a
cache whose computation fails is never registered.  The driver clears the registry when a study
ends (:func:`shared_caches`).
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from tunebench.training.batching import batches, collate
from tunebench.training.modeling import find_layer_stack

#: Above this many bytes the cache lives in a temporary file (read through the page cache) instead of RAM.
DEFAULT_SPILL_BYTES = 64 * 2**20


#: the most caches the registry keeps (each split of each prefix depth is one); the oldest goes first
SHARED_ENTRIES = 8


class _Stop(Exception):
    """Raised by a hook to end a forward pass once the prefix output is captured."""


@dataclass
class HiddenCache:
    """Per-example hidden states at the top of the frozen prefix, stored flat.

    ``states`` (RAM) or ``file`` (a temporary file of the same float32 rows) holds them.
    """

    states: np.ndarray | None  # (total_tokens, hidden) float32 in RAM, or None when on disk
    offsets: np.ndarray  # (n + 1,), start of example i at offsets[i]
    hidden: int
    file: Any = field(default=None, repr=False)  # an open binary temporary file when on disk

    @property
    def on_disk(self) -> bool:
        return self.file is not None

    @property
    def nbytes(self) -> int:
        return int(self.offsets[-1]) * self.hidden * 4

    def batch(self, index: np.ndarray, width: int, device: torch.device) -> torch.Tensor:
        """States of the examples in ``index``, zero-padded to ``width`` tokens."""
        out = torch.zeros((len(index), width, self.hidden), dtype=torch.float32)
        rows = out.numpy()
        for row, i in enumerate(index):
            start, end = int(self.offsets[i]), int(self.offsets[i + 1])
            if self.states is not None:
                rows[row, : end - start] = self.states[start:end]
            else:  # read straight into the batch's rows: no intermediate copy
                self.file.seek(start * self.hidden * 4)
                self.file.readinto(memoryview(rows[row, : end - start]).cast("B"))
        return out.to(device, non_blocking=True)


class _Zeros(nn.Module):
    """Stands in for the embeddings: a zero tensor of the shape the encoder expects."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.width = width

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            ids = kwargs.get("inputs_embeds", kwargs.get("input_embeds"))
        return torch.zeros((*ids.shape[:2], self.width), device=ids.device)


def _shaped(value: torch.Tensor, template: Any) -> Any:
    """``value`` in the structure a layer returns (a tensor, or a tuple led by the states)."""
    if isinstance(template, tuple):
        return (value, *([None] * (template[1] - 1)))
    return value


class _Pass(nn.Module):
    """Stands in for a frozen layer below the top of the prefix: returns its input."""

    def __init__(self, template: Any) -> None:
        super().__init__()
        self.template = template

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        return _shaped(hidden_states, self.template)


class _Inject(nn.Module):
    """Stands in for the top frozen layer: returns the cached states of the current batch."""

    def __init__(self, template: Any) -> None:
        super().__init__()
        self.template = template
        self.current: torch.Tensor | None = None

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        assert self.current is not None and self.current.shape[:2] == hidden_states.shape[:2]
        return _shaped(self.current, self.template)


@dataclass
class PrefixCache:
    """The caches the engine trains and validates on, and the bypass's top layer they feed.

    ``inject`` is None when the model runs whole (no prefix, the cache off, or the check failed).
    """

    device: torch.device
    inject: _Inject | None = None
    caches: dict[str, HiddenCache] = field(default_factory=dict)  # "train", "validation"
    train_s: float = 0.0  # seconds to compute the training split's cache: part of training's cost
    eval_s: float = 0.0  # and the validation split's: part of evaluation's
    reused: list[str] = field(default_factory=list)  # the splits whose cache an earlier run of the study computed
    notes: list[str] = field(default_factory=list)

    def feed(self, split: str, index: np.ndarray, width: int) -> None:
        """The bypassed prefix outputs the cached states of ``split``'s examples ``index``, padded to ``width``."""
        if self.inject is not None:
            self.inject.current = self.caches[split].batch(index, width, self.device)


def _structure(output: Any) -> Any:
    return ("tuple", len(output)) if isinstance(output, tuple) else "tensor"


def _find_embeddings(model: nn.Module, stack_name: str) -> tuple[nn.Module, str]:
    """The embeddings module beside the layer stack (``bert.embeddings``, ``distilbert.embeddings``, ...)."""
    owner = stack_name.rsplit(".", 2)[0]  # "bert.encoder.layer" -> "bert"
    candidates = [(n, m) for n, m in model.named_modules()
                  if n.endswith("embeddings") and n.rsplit(".", 1)[0] == owner and list(m.parameters())]
    if len(candidates) != 1:
        raise LookupError(f"no unique embeddings module under '{owner}'")
    return candidates[0][1], candidates[0][0]


def _set_child(model: nn.Module, dotted: str, module: nn.Module) -> None:
    parent_name, _, child = dotted.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    if isinstance(parent, nn.ModuleList):
        parent[int(child)] = module
    else:
        setattr(parent, child, module)


class FrozenPrefix:
    """Embeddings + layers ``0..m-1`` of ``model``, which no parameter below layer ``m`` trains."""

    def __init__(self, model: nn.Module, lowest_trainable_layer: int) -> None:
        self.model = model
        self.stack_name, self.stack = find_layer_stack(model)
        self.m = lowest_trainable_layer
        self.embeddings, self.embeddings_name = _find_embeddings(model, self.stack_name)
        if any(p.requires_grad for p in self.modules_params()):
            raise ValueError("a parameter in the frozen prefix requires grad")
        self.layer_output: Any = None
        self.embedding_width: int | None = None

    @classmethod
    def for_model(cls, model: nn.Module, lowest_trainable_layer: int) -> FrozenPrefix | None:
        """The prefix when there is one worth caching (m >= 1), else None."""
        if lowest_trainable_layer < 1:
            return None
        try:
            return cls(model, lowest_trainable_layer)
        except (LookupError, ValueError):
            return None

    def modules(self) -> list[nn.Module]:
        return [self.embeddings, *self.stack[: self.m]]

    def modules_params(self) -> Iterator[nn.Parameter]:
        for module in self.modules():
            yield from module.parameters()

    def set_eval(self) -> None:
        """Frozen layers run without dropout, cached or not, so both paths compute the same thing."""
        for module in self.modules():
            module.eval()

    def compute(self, split, batch_size: int, pad_id: int, device: torch.device,
                spill_bytes: int | None = None) -> HiddenCache:
        """Run the prefix once over ``split`` and keep every example's states at its top."""
        spill_bytes = DEFAULT_SPILL_BYTES if spill_bytes is None else spill_bytes

        lengths = split.lengths
        offsets = np.zeros(len(split) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        top = self.stack[self.m - 1]
        captured: dict[str, Any] = {}

        def grab_embeddings(_module, _inputs, output):
            captured["embedding_width"] = output.shape[-1]

        def grab(_module, _inputs, output):
            captured["structure"] = _structure(output)
            captured["states"] = output[0] if isinstance(output, tuple) else output
            raise _Stop

        hidden = None
        states: np.ndarray | None = None
        tmp = None
        handles = [self.embeddings.register_forward_hook(grab_embeddings), top.register_forward_hook(grab)]
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                for index in batches(split, batch_size, shuffle=False):
                    batch = collate(split, index, pad_id, device)
                    batch.pop("labels")
                    with contextlib.suppress(_Stop):
                        self.model(**batch)
                    out = captured["states"].float().cpu().numpy()
                    if hidden is None:
                        hidden = out.shape[-1]
                        if int(offsets[-1]) * hidden * 4 > spill_bytes:
                            tmp = tempfile.TemporaryFile(prefix="tunebench-prefix-", suffix=".f32")  # noqa: SIM115 (lives with the cache)
                        else:
                            states = np.empty((int(offsets[-1]), hidden), dtype=np.float32)
                    for row, i in enumerate(index):
                        if states is not None:
                            states[offsets[i]:offsets[i + 1]] = out[row, : lengths[i]]
                        else:
                            tmp.seek(int(offsets[i]) * hidden * 4)
                            tmp.write(memoryview(np.ascontiguousarray(out[row, : lengths[i]])).cast("B"))
        finally:
            for handle in handles:
                handle.remove()
            self.model.train(was_training)
        self.layer_output = captured["structure"]
        self.embedding_width = captured["embedding_width"]
        assert hidden is not None
        if tmp is not None:
            tmp.flush()
        return HiddenCache(states=states, offsets=offsets, hidden=hidden, file=tmp)

    @contextlib.contextmanager
    def bypass(self) -> Iterator[_Inject]:
        """Swap the prefix for the cache; yields the module whose ``current`` the caller sets per batch."""
        if self.layer_output is None or self.embedding_width is None:
            raise RuntimeError("compute() the cache before bypassing the prefix")
        inject = _Inject(self.layer_output)
        originals = [(self.embeddings_name, self.embeddings)]
        _set_child(self.model, self.embeddings_name, _Zeros(self.embedding_width))
        for i in range(self.m):
            originals.append((f"{self.stack_name}.{i}", self.stack[i]))
            self.stack[i] = inject if i == self.m - 1 else _Pass(self.layer_output)
        try:
            yield inject
        finally:
            for name, module in originals:
                _set_child(self.model, name, module)


# --- one cache per study: the registry the engine asks before computing ----------------------


@dataclass
class Shared:
    """A registered cache and what computing it cost (seconds) and produced (the bypass's shapes)."""

    cache: HiddenCache
    seconds: float
    layer_output: Any
    embedding_width: int


class SharedCaches:
    """Frozen-prefix caches of this process, by exact key (:meth:`key`), at most :data:`SHARED_ENTRIES`.

    ``computed`` counts the caches computed (a test counts them; the engine's record says which runs
    reused one)."""

    def __init__(self, entries: int = SHARED_ENTRIES) -> None:
        self.entries = entries
        self._items: OrderedDict[tuple, Shared] = OrderedDict()
        self.computed = 0

    @staticmethod
    def weights(prefix: FrozenPrefix) -> str:
        """A digest of the prefix's weights and buffers (their bytes, names, dtypes, shapes): once per run."""
        digest = hashlib.blake2b(digest_size=16)
        for module in prefix.modules():
            for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
                t = tensor.detach()
                digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
                if t.numel():
                    digest.update(t.cpu().contiguous().view(torch.uint8).numpy())  # the buffer, not a copy
        return digest.hexdigest()

    @staticmethod
    def key(weights: str, prefix: FrozenPrefix, split: Any, batch_size: int, device: torch.device) -> tuple:
        """Exact identity of a prefix's output on ``split``: its weights' digest (:meth:`weights`), depth, inputs."""
        inputs = hashlib.blake2b(digest_size=16)
        for ids in split.input_ids:
            inputs.update(np.asarray(ids, dtype=np.int64).tobytes() + b"|")
        for ids in split.token_type_ids or []:
            inputs.update(np.asarray(ids, dtype=np.int64).tobytes() + b"|")
        return weights, prefix.m, inputs.hexdigest(), len(split), batch_size, str(device)

    def get(self, key: tuple) -> Shared | None:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, key: tuple, shared: Shared) -> None:
        self.computed += 1
        self._items[key] = shared
        while len(self._items) > self.entries:
            _, old = self._items.popitem(last=False)
            _close(old.cache)

    def clear(self) -> None:
        for shared in self._items.values():
            _close(shared.cache)
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


def _close(cache: HiddenCache) -> None:
    if cache.file is not None:
        with contextlib.suppress(OSError):
            cache.file.close()


#: this process's registry: the driver opens and clears it around a study (None: every run computes its own)
_SHARED: SharedCaches | None = None


def current_shared() -> SharedCaches | None:
    """The registry of the study running in this process, if one is open."""
    return _SHARED


@contextlib.contextmanager
def shared_caches() -> Iterator[SharedCaches]:
    """Open this process's registry for a study (nested: the outer one stays) and clear it at the end."""
    global _SHARED
    if _SHARED is not None:
        yield _SHARED
        return
    _SHARED = SharedCaches()
    try:
        yield _SHARED
    finally:
        _SHARED.clear()
        _SHARED = None


def compute_shared(prefix: FrozenPrefix, split: Any, batch_size: int, pad_id: int, device: torch.device,
                   registry: SharedCaches | None, weights: str | None = None) -> tuple[HiddenCache, float, bool]:
    """``split``'s cache at the top of ``prefix``: from ``registry`` when it holds it, else computed (and
    registered).  ``weights``: :meth:`SharedCaches.weights` of ``prefix``, computed once for the run's
    splits.  Returns the cache, the seconds computing it took (when it was computed, by the run that
    did), and whether it was reused."""
    if registry is not None and weights is None:
        weights = SharedCaches.weights(prefix)
    key = SharedCaches.key(weights, prefix, split, batch_size, device) if registry is not None else None
    found = registry.get(key) if registry is not None else None
    if found is not None:
        prefix.layer_output, prefix.embedding_width = found.layer_output, found.embedding_width
        return found.cache, found.seconds, True
    started = time.perf_counter()
    cache = prefix.compute(split, batch_size, pad_id, device)
    seconds = time.perf_counter() - started
    if registry is not None:
        assert prefix.embedding_width is not None
        registry.put(key, Shared(cache, seconds, prefix.layer_output, prefix.embedding_width))
    return cache, seconds, False
