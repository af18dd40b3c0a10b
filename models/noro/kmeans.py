"""Noro's content units: HuBERT features snapped to their nearest k-means centre.

The reference (``HubertExtractor``) computes ``ids = argmax(-cdist(features, centres))`` and feeds the
model ``centres[ids]``: the model sees centre vectors, never raw HuBERT features. The centres are the
``cluster_centers_`` of a user-supplied scikit-learn k-means (``preprocess.kmeans_model_path``, a
joblib file) fitted on HuBERT-base layer-9 features; Amphion publishes none.

:func:`read_cluster_centres` reads that file WITHOUT running pickled code and without scikit-learn:
joblib's own array reader, with only numpy's array / dtype constructors allowed and every scikit-learn
(or numpy.random) class replaced by an inert record of its attributes. ``.npy``, ``.safetensors`` and
``.pt`` files holding the ``[K, D]`` centres work too.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from models.core.checkpoints import CheckpointError, load_state_dict_file

__all__ = ["KMeansQuantizer", "read_cluster_centres", "random_centres"]

#: Keys under which a tensor file may hold the centres.
_CENTRE_KEYS = ("cluster_centers", "cluster_centers_", "centres", "centers")
_PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle", ".bin", ".km")


class KMeansQuantizer(nn.Module):
    """``[B, T, D]`` features -> ``(ids [B, T] int64, centre vectors [B, T, D])``."""

    def __init__(self, centres: torch.Tensor) -> None:
        super().__init__()
        if centres.dim() != 2 or centres.shape[0] < 1:
            raise ValueError(f"cluster centres must be [K, D] with K >= 1, got {tuple(centres.shape)}")
        # float32 as the reference's features are; a float64 sklearn array is cast once here.
        self.register_buffer("cluster_centers", centres.detach().to(torch.float32).contiguous())

    @property
    def num_clusters(self) -> int:
        return int(self.cluster_centers.shape[0])

    @property
    def dim(self) -> int:
        return int(self.cluster_centers.shape[1])

    @torch.inference_mode()
    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if feats.dim() != 3 or feats.shape[-1] != self.dim:
            raise ValueError(f"expected features [B, T, {self.dim}], got {tuple(feats.shape)}")
        centres = self.cluster_centers.unsqueeze(0).expand(feats.shape[0], -1, -1)
        # The reference's distance (torch.cdist, p=2) so that near-ties resolve the same way.
        ids = torch.cdist(feats.to(self.cluster_centers.dtype), centres, p=2).argmin(dim=-1)
        return ids, self.cluster_centers[ids]


def random_centres(num_clusters: int, dim: int, seed: int = 0) -> torch.Tensor:
    """Tiny builds: ``[K, D]`` standard-normal centres from a seeded generator."""
    return torch.randn((num_clusters, dim), generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------
# Reading the user's k-means file
# ---------------------------------------------------------------------------------------------


class _Record:
    """Stands in for a scikit-learn estimator (or numpy random state): keeps its attributes, runs nothing."""

    def __init__(self, *args, **kwargs) -> None:
        self.args = args

    def __setstate__(self, state) -> None:
        self.state = state


# numpy's array / dtype / scalar constructors: what pickled arrays are rebuilt from.
_NUMPY_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
}
_INERT_PREFIXES = ("sklearn.", "numpy.random")


def _restricted_unpickler(file_handle, filename: str):
    from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler

    class Restricted(NumpyUnpickler):
        dispatch = NumpyUnpickler.dispatch.copy()

        def find_class(self, module: str, name: str):
            if (module, name) in _NUMPY_ALLOWED:
                return super().find_class(module, name)
            if (module, name) == ("joblib.numpy_pickle", "NumpyArrayWrapper"):
                return NumpyArrayWrapper
            if module == "numpy.dtypes" and name.endswith("DType"):  # numpy 2's dtype classes
                return super().find_class(module, name)
            if module.startswith(_INERT_PREFIXES):
                return type(name, (_Record,), {"__module__": "noro.inert." + module})
            raise CheckpointError(f"{filename}: refusing to load {module}.{name} from a k-means file "
                                  "(only numpy arrays and scikit-learn estimators' attributes are read)")

        def load_build(self):
            # joblib reads an object-dtype array with a nested, unrestricted pickle.load: refuse it first.
            state, target = self.stack[-1], self.stack[-2] if len(self.stack) > 1 else None
            if isinstance(target, NumpyArrayWrapper) and isinstance(state, dict):
                dtype = state.get("dtype")
                if dtype is None or getattr(dtype, "hasobject", True):
                    raise CheckpointError(f"{filename}: object arrays are not read from a k-means file")
            return super().load_build()

        dispatch[pickle.BUILD[0]] = load_build

    return Restricted(filename, file_handle, True)


def _centres_from(obj, source: str) -> np.ndarray:
    state = getattr(obj, "state", None)
    if isinstance(state, dict) and "cluster_centers_" in state:
        obj = state["cluster_centers_"]
    elif isinstance(obj, dict):
        obj = next((obj[k] for k in _CENTRE_KEYS if k in obj), obj)
    if not isinstance(obj, np.ndarray) or obj.ndim != 2 or not np.issubdtype(obj.dtype, np.floating):
        raise CheckpointError(f"{source}: no k-means cluster centres found (expected a fitted scikit-learn "
                              "KMeans / MiniBatchKMeans with cluster_centers_, or a [K, D] float array)")
    return obj


def _read_pickle(path: Path) -> np.ndarray:
    try:
        from joblib.numpy_pickle import _validate_fileobject_and_memmap
    except ImportError as exc:  # joblib moved its private reader: say so rather than guess
        raise CheckpointError(f"{path}: reading a joblib k-means file needs joblib's numpy reader ({exc})") from exc
    with open(path, "rb") as raw, _validate_fileobject_and_memmap(raw, str(path), None) as (fobj, _):
        if isinstance(fobj, str):
            raise CheckpointError(f"{path}: a joblib < 0.10 file (arrays in side files) is not supported")
        try:
            obj = _restricted_unpickler(fobj, str(path)).load()
        except CheckpointError:
            raise
        except Exception as exc:  # truncated file, not a pickle, ...
            raise CheckpointError(f"cannot read the k-means file {path}: {type(exc).__name__}: {exc}") from exc
    return _centres_from(obj, str(path))


def read_cluster_centres(path: str | Path) -> torch.Tensor:
    """The ``[K, D]`` centres (float32) of a k-means file: joblib / pickle (scikit-learn estimator),
    ``.npy``, ``.safetensors`` or ``.pt`` / ``.pth``; :class:`CheckpointError` naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"k-means file not found: {path} (the scikit-learn k-means fitted on HuBERT-base "
                              "layer-9 features that Noro was trained with)")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            centres = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise CheckpointError(f"cannot read {path}: {exc}") from exc
        centres = _centres_from(centres, str(path))
    elif suffix in (".safetensors", ".pt", ".pth"):
        state = load_state_dict_file(path)
        found = next((state[k] for k in _CENTRE_KEYS if k in state), None)
        if found is None:
            raise CheckpointError(f"{path}: no tensor named one of {list(_CENTRE_KEYS)}")
        centres = _centres_from(found.float().numpy(), str(path))
    elif suffix in _PICKLE_SUFFIXES or not suffix:
        centres = _read_pickle(path)
    else:
        raise CheckpointError(f"{path}: unknown k-means file type {suffix!r} (expected .joblib / .pkl / .bin, "
                              ".npy, .safetensors or .pt)")
    return torch.from_numpy(np.ascontiguousarray(centres, dtype=np.float32))
