"""ONNX export through ultralytics' exporter into the cache: built once, reused (no second export), verified by
hash before use (a tampered file is rebuilt, never loaded), nothing written next to the checkpoint, and a failed
export is one line naming the variant and the exporter's reason."""

from __future__ import annotations

import json

import pytest

from slimbench.core.errors import SlimbenchError
from slimbench.model.checkpoint import load_detector, sha256_of
from slimbench.runtimes import export


@pytest.fixture
def counted(monkeypatch):
    """Count the exporter's runs (the real exporter still runs)."""
    calls = []
    real = export._run_exporter

    def spy(*a, **k):
        calls.append(a[-1])
        return real(*a, **k)

    monkeypatch.setattr(export, "_run_exporter", spy)
    return calls


def test_export_is_cached_and_reused(tiny, tmp_path, counted):
    model = load_detector(tiny.pruned)
    sha = sha256_of(tiny.pruned)
    before = sorted(p.name for p in tiny.root.iterdir())
    first = export.export_onnx(model, sha, 64, tmp_path, name="pruned")
    assert first.built and counted == ["pruned"]
    assert first.path.parent == tmp_path / "onnx" and first.path.name == f"{export.cache_key(sha, 64)}.onnx"
    assert first.sha256 == sha256_of(first.path) and first.size_mb == first.path.stat().st_size / 1e6
    side = json.loads(first.path.with_suffix(".json").read_text())
    assert side["onnx_sha256"] == first.sha256 and side["checkpoint_sha256"] == sha and side["imgsz"] == 64
    assert sorted(p.name for p in tiny.root.iterdir()) == before, "nothing written next to the checkpoint"
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == sorted([first.path.name, side_name(first.path)])

    again = export.export_onnx(load_detector(tiny.pruned), sha, 64, tmp_path, name="pruned")
    assert not again.built and counted == ["pruned"], "no second export"
    assert again.path == first.path and again.sha256 == first.sha256

    other = export.export_onnx(model, sha, 96, tmp_path, name="pruned")  # another imgsz: another key
    assert other.built and other.path != first.path and len(counted) == 2


def side_name(path):
    return path.with_suffix(".json").name


@pytest.mark.parametrize("damage", ["tamper", "truncate", "sidecar"])
def test_a_corrupt_cache_file_is_rebuilt_never_used(tiny, tmp_path, counted, damage):
    model = load_detector(tiny.pruned)
    sha = sha256_of(tiny.pruned)
    first = export.export_onnx(model, sha, 64, tmp_path, name="pruned")
    data = first.path.read_bytes()
    if damage == "tamper":
        first.path.write_bytes(data[:-100] + bytes(100))
    elif damage == "truncate":
        first.path.write_bytes(data[: len(data) // 2])
    else:
        first.path.with_suffix(".json").write_text("{not json")
    assert export.verify(first.path, {"checkpoint_sha256": sha}) is not None
    rebuilt = export.export_onnx(model, sha, 64, tmp_path, name="pruned")
    assert rebuilt.built and len(counted) == 2
    assert sha256_of(rebuilt.path) == rebuilt.sha256, "whole again (not byte-identical: the exporter stamps a date)"
    assert rebuilt.path == first.path and abs(rebuilt.size_mb - first.size_mb) < 0.01


def test_cache_key_names_what_changes_the_file():
    sha = "ab" * 32
    assert export.cache_key(sha, 640, True, "8.4.1") == "abababababababab-640-u8.4.1-dyn"
    assert export.cache_key(sha, 640, False, "8.4.1") != export.cache_key(sha, 640, True, "8.4.1")
    assert export.cache_key(sha, 640, True, "8.4.2") != export.cache_key(sha, 640, True, "8.4.1")


def test_a_failed_export_is_one_line_naming_the_variant(tiny, tmp_path, monkeypatch):
    from ultralytics.engine.model import Model

    def broken(self, **kwargs):
        raise RuntimeError("Unsupported ONNX opset\nfor this layer")

    monkeypatch.setattr(Model, "export", broken)
    with pytest.raises(SlimbenchError) as e:
        export.export_onnx(load_detector(tiny.pruned), sha256_of(tiny.pruned), 64, tmp_path, name="pruned")
    assert str(e.value) == "pruned: ONNX export failed (RuntimeError: Unsupported ONNX opset for this layer)"
    assert not list((tmp_path / "onnx").glob("*.onnx")), "nothing cached"
    assert not any(p.name.startswith(".export-") for p in (tmp_path / "onnx").iterdir()), "temp folder removed"


def test_two_exports_of_one_checkpoint_give_identical_gated_figures(tiny, tmp_path):
    """The baseline gates the graph's weights, which repeat; the file size (shape annotations) may not."""
    sha = sha256_of(tiny.original)
    first = export.export_onnx(load_detector(tiny.original), sha, 64, tmp_path / "a", name="original")
    second = export.export_onnx(load_detector(tiny.original), sha, 64, tmp_path / "b", name="original")
    assert first.built and second.built
    assert (first.params, first.weights_mb) == (second.params, second.weights_mb)
    assert first.params == export.graph_figures(first.path)[0] > 0
    reused = export.export_onnx(load_detector(tiny.original), sha, 64, tmp_path / "a", name="original")
    assert not reused.built and (reused.params, reused.weights_mb) == (first.params, first.weights_mb)
