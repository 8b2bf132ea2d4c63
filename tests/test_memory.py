"""Peak memory of inference in a fresh process per measurement: a larger model needs more than a smaller one at
batch 8, ONNX Runtime is measured without torch in the process, and a bad checkpoint is one error line."""

from __future__ import annotations

import pytest
import tiny_models

from slimbench.core.errors import SlimbenchError
from slimbench.measure.memory import measure
from slimbench.model.checkpoint import check_file, save_detector, sha256_of


@pytest.fixture(scope="module")
def sizes(tmp_path_factory):
    root = tmp_path_factory.mktemp("memory")
    big = save_detector(tiny_models.build_detector("yolov8s.yaml", nc=2), root / "big.pt")
    small = save_detector(tiny_models.build_detector("yolov8n.yaml", nc=2, width=0.0625), root / "small.pt")
    return big, small


def test_a_larger_model_peaks_higher_at_batch_8(sizes):
    big, small = (measure(p, "torch", 8, 256) for p in sizes)
    assert big["peak_rss_mb"] > small["peak_rss_mb"] + 20, (big, small)  # measured: about 918 vs 830 MB
    for figs in (big, small):
        assert figs["batch"] == 8 and figs["runtime"] == "torch" and figs["cuda_max_allocated_mb"] is None
        # inference memory: the peak over the loaded state, less the library code paged in meanwhile (RssFile)
        assert figs["file_growth_mb"] >= 0
        added = figs["peak_rss_mb"] - figs["loaded_rss_mb"] - figs["file_growth_mb"]
        assert figs["inference_mb"] == pytest.approx(max(added, 0))
        assert 0 <= figs["inference_mb"] < figs["peak_rss_mb"]
    assert big["inference_mb"] > small["inference_mb"], "larger activations at batch 8"


def test_onnxruntime_is_measured_without_torch(tiny, tmp_path):
    from slimbench.model.checkpoint import load_detector
    from slimbench.runtimes.export import export_onnx

    onnx = export_onnx(load_detector(tiny.pruned), sha256_of(tiny.pruned), 64, tmp_path, name="pruned").path
    figs = measure(tiny.pruned, "onnxruntime", 2, 64, onnx=onnx, threads=1)
    assert figs["runtime"] == "onnxruntime" and figs["batch"] == 2
    assert figs["peak_rss_mb"] < 400, "no torch in the child: an ONNX Runtime process is far smaller"


def test_a_bad_checkpoint_is_one_line(tiny, tmp_path):
    with pytest.raises(SlimbenchError, match="sha256 mismatch"):
        measure(tiny.pruned, "torch", 1, 64, sha256="0" * 64)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    check_file(broken)
    with pytest.raises(SlimbenchError) as e:
        measure(broken, "torch", 1, 64)
    assert "memory measurement (torch, batch 1) failed" in str(e.value) and "\n" not in str(e.value)
