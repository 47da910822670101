"""Weights as data (cards, sha256, user folder, files by path) and the ONNX Runtime session factory."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from imgan.errors import ProviderError, UsageError, WeightsError
from imgan.runtime import session as session_module
from imgan.runtime.session import load_model
from imgan.weights import catalogue, resolve_weights, shipped_weights_dir, weights_from_file


@pytest.fixture
def bicubic_file():
    return shipped_weights_dir() / "bicubic-x2.onnx"


def test_shipped_card_is_complete(bicubic_file):
    weights = resolve_weights("bicubic", None, default="x2")
    assert weights.scale == 2 and weights.file == bicubic_file and len(weights.sha256) == 64
    assert weights.verified_path() == bicubic_file
    assert weights.tile_overlap == 4 and weights.card.card_format == 2


def test_sha_mismatch_is_a_clear_error(tmp_path, bicubic_file):
    copy = tmp_path / "bicubic-x2.onnx"
    shutil.copy(bicubic_file, copy)
    card = json.loads(bicubic_file.with_suffix(".json").read_text())
    card["sha256"] = "0" * 64
    (tmp_path / "bicubic-x2.json").write_text(json.dumps(card))
    with pytest.raises(WeightsError, match="sha256 mismatch") as info:
        weights_from_file(copy, "bicubic").verified_path()
    assert str(copy) in info.value.one_line()


def test_user_weights_override_and_task_mismatch(tmp_path, isolated_home, bicubic_file):
    user = isolated_home / "weights"
    user.mkdir()
    shutil.copy(bicubic_file, user / "bicubic-x2.onnx")
    card = json.loads(bicubic_file.with_suffix(".json").read_text())
    (user / "bicubic-x2.json").write_text(json.dumps({**card, "description": "mine"}))
    assert catalogue()["bicubic"]["x2"].origin == "user"
    assert resolve_weights("bicubic", "x2").description == "mine"
    with pytest.raises(WeightsError, match="not 'style'"):
        weights_from_file(user / "bicubic-x2.onnx", "style")
    with pytest.raises(UsageError, match="available: x2"):
        resolve_weights("bicubic", "x3")


def test_any_onnx_file_without_card_is_probed_once(tmp_path, isolated_home, bicubic_file):
    bare = tmp_path / "mine.onnx"
    shutil.copy(bicubic_file, bare)
    weights = resolve_weights("bicubic", str(bare))
    assert weights.file == bare and weights.scale == 2 and weights.sha256 == resolve_weights("bicubic", "x2").sha256
    stored = list((isolated_home / "probed").glob("*.json"))
    assert len(stored) == 1 and weights.verified_path() == bare
    stored[0].write_text(stored[0].read_text().replace('"scale": 2', '"scale": 3'))
    assert resolve_weights("bicubic", str(bare)).scale == 3  # the stored probe is used, not a new one


def test_session_runs_caches_and_refuses_unknown_device(bicubic_file):
    model = load_model(bicubic_file, device="cpu")
    assert load_model(bicubic_file, device="cpu") is model
    out = model(np.full((1, 3, 4, 5), 0.25, dtype=np.float32))
    assert out.shape == (1, 3, 8, 10) and np.allclose(out, 0.25, atol=1e-6)
    assert model.device == "cpu"
    with pytest.raises(UsageError, match="unknown device"):
        load_model(bicubic_file, device="tpu")


def test_explicit_cuda_is_an_error_when_no_gpu(bicubic_file, monkeypatch):
    monkeypatch.setattr(session_module, "cuda_device_count", lambda: 0)
    session_module._cached_model.cache_clear()
    with pytest.raises(ProviderError, match="no CUDA GPU"):
        load_model(bicubic_file, device="cuda")
    assert load_model(bicubic_file, device="auto").device == "cpu"


def test_auto_uses_cuda_only_when_the_provider_really_loads(bicubic_file, monkeypatch):
    """A GPU that the driver reports but whose provider does not load: auto → CPU, cuda → error."""
    class FakeSession:
        def __init__(self, providers):
            self._providers = providers

        def get_providers(self):
            return self._providers

    monkeypatch.setattr(session_module, "cuda_device_count", lambda: 1)
    monkeypatch.setattr(session_module, "cuda_provider_installed", lambda: True)
    monkeypatch.setattr(session_module, "_create", lambda path, providers, threads: FakeSession(["CPUExecutionProvider"]))
    session_module._cached_model.cache_clear()
    assert load_model(bicubic_file, device="auto").device == "cpu"
    session_module._cached_model.cache_clear()
    with pytest.raises(ProviderError, match="did not load"):
        load_model(bicubic_file, device="cuda")
    session_module._cached_model.cache_clear()


def test_corrupt_model_file_is_weights_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(WeightsError, match="cannot load"):
        load_model(bad, device="cpu")
