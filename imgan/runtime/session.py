"""The one ONNX Runtime session factory: provider choice, threads, caching.

``device="auto"`` uses CUDA only when a GPU really answers (the driver initialises and reports a
device) *and* ONNX Runtime's CUDA provider actually loads; otherwise the CPU, without the red
error lines onnxruntime-gpu prints when it merely tries. ``device="cuda"`` that cannot load is a
:class:`ProviderError`, never a silent CPU run.

Running a model never lets an onnxruntime exception out: a failure becomes an
:class:`InferenceError` naming the model and the input shapes (the batch adds the file name).
Models whose inner reflect pads refuse tiny inputs (a 1x1 picture, a 4000x3 strip) get them
mirror-padded to MIN_MODEL_SIDE on the NumPy side and their outputs cropped back.
"""
from __future__ import annotations

import ctypes
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import InferenceError, ProviderError, UsageError, WeightsError
from .tiling import crop_to_inputs, pad_small_inputs

DEVICES = ("auto", "cpu", "cuda")
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
# HEURISTIC: a new input shape does not trigger cuDNN's exhaustive (slow) algorithm search.
CUDA_OPTIONS = {"cudnn_conv_algo_search": "HEURISTIC", "arena_extend_strategy": "kSameAsRequested"}


@lru_cache(maxsize=1)
def cuda_device_count() -> int:
    """GPUs the CUDA driver sees (0 when there is no driver), without importing torch."""
    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            driver = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return 0
        return count.value
    return 0


def cuda_provider_installed() -> bool:
    import onnxruntime as ort

    return CUDA in ort.get_available_providers()


def default_threads() -> int | None:
    value = os.environ.get("OMP_NUM_THREADS")
    return int(value) if value and value.isdigit() and int(value) > 0 else None


@dataclass
class OnnxModel:
    """A loaded ONNX model: call it with NCHW float32 arrays; it returns the first output."""

    path: Path
    session: object
    device: str

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.session.get_inputs()]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.session.get_outputs()]

    def __call__(self, *inputs: np.ndarray) -> np.ndarray:
        return self.run(*inputs)[0]

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        try:
            return self._run(inputs)
        except Exception as exc:  # onnxruntime's own types (InvalidArgument, Fail, ...) derive from Exception
            padded = pad_small_inputs(inputs)
            if padded is None:
                raise self._failure(inputs, exc) from exc  # the cause shows under IMGAN_DEBUG=1
        try:  # a model that refuses tiny inputs: run it on mirror-padded ones, crop the results back
            return crop_to_inputs(self._run(padded), np.asarray(inputs[0]), padded[0])
        except Exception as exc:
            raise self._failure(inputs, exc) from exc

    def _run(self, inputs) -> list[np.ndarray]:
        feeds = {name: np.ascontiguousarray(x, dtype=np.float32) for name, x in zip(self.input_names, inputs)}
        return self.session.run(None, feeds)

    def _failure(self, inputs, exc: Exception) -> InferenceError:
        shapes = ", ".join("x".join(map(str, np.shape(x))) for x in inputs)
        return InferenceError(f"ONNX Runtime failed on an input of shape {shapes}: {_ort_message(exc)}",
                              path=self.path.name, hint="IMGAN_DEBUG=1 shows the details")


def _ort_message(exc: Exception) -> str:
    """The useful part of an onnxruntime error, on one line (its text repeats codes and node names)."""
    text = " ".join(str(exc).split())
    return text.split("Status Message: ", 1)[-1] if "Status Message: " in text else (text or type(exc).__name__)


def _session_options(threads: int | None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    threads = threads or default_threads()
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 4  # fatal only: we report provider and run failures ourselves, in one line
    return options


def _create(path: Path, providers: list, threads: int | None):
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(path), sess_options=_session_options(threads), providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types for corrupt files
        if "CUDA" in str(exc) or "cuda" in str(exc):
            raise ProviderError(f"CUDA provider failed: {exc}", path=path) from None
        raise WeightsError(f"ONNX Runtime cannot load this model: {exc}", path=path,
                           hint="is it a valid .onnx file for this task?") from None


def _cuda_session(path: Path, threads: int | None):
    """A CUDA session, or the reason there cannot be one."""
    if not cuda_provider_installed():
        return None, "onnxruntime has no CUDA provider (install onnxruntime-gpu)"
    if cuda_device_count() == 0:
        return None, "no CUDA GPU/driver found"
    session = _create(path, [(CUDA, CUDA_OPTIONS), CPU], threads)
    if session.get_providers()[0] != CUDA:
        return None, "the CUDA provider did not load (check CUDA/cuDNN libraries)"
    return session, None


_lock = threading.Lock()


@lru_cache(maxsize=16)
def _cached_model(path: str, mtime_ns: int, device: str, threads: int | None) -> OnnxModel:
    model_path = Path(path)
    if device in ("auto", "cuda"):
        session, reason = _cuda_session(model_path, threads)
        if session is not None:
            return OnnxModel(model_path, session, "cuda")
        if device == "cuda":
            raise ProviderError(f"--device cuda was asked for but {reason}", path=model_path,
                                hint="use --device cpu or auto")
    return OnnxModel(model_path, _create(model_path, [CPU], threads), "cpu")


def load_model(path: str | os.PathLike, device: str = "auto", threads: int | None = None) -> OnnxModel:
    """An ONNX model on the chosen device; sessions are cached per (file, device, threads)."""
    if device not in DEVICES:
        raise UsageError(f"unknown device {device!r}", hint=f"use one of {', '.join(DEVICES)}")
    model_path = Path(path)
    if not model_path.is_file():
        raise WeightsError("no such model file", path=model_path)
    with _lock:
        return _cached_model(str(model_path.resolve()), model_path.stat().st_mtime_ns, device, threads)
