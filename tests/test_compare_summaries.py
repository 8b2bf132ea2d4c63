"""tools/compare_summaries.py, the kept-behaviour check of a restructure: timings may move, nothing else."""

from __future__ import annotations

import copy
import json

import tiny_models

compare = tiny_models.load_tool("compare_summaries")

DOC = {
    "variants": {
        "pruned": {
            "static": {"params": 100, "gflops": 0.5},
            "speed_ratio": {"cpu-b1-t2-640": {"median_ratio": 0.3}},
            "deployment": {"onnx_params": 90, "onnx_size_mb": 1.5},
            "checks": [
                {"metric": "params_ratio", "limit": "max_params_ratio", "bound": 0.5, "value": 0.1, "passed": True},
                {"metric": "speed_ratio", "limit": "max_speed_ratio", "bound": 0.5, "value": 0.3, "passed": True},
            ],
        }
    },
    "verdicts": [{"variant": "pruned", "smaller": 8.0, "gates_passed": 2, "gates_failed": 0, "gates_not_run": []}],
}


def test_timings_and_drifting_sizes_may_move():
    after = copy.deepcopy(DOC)
    after["variants"]["pruned"]["speed_ratio"]["cpu-b1-t2-640"]["median_ratio"] = 0.6
    after["variants"]["pruned"]["deployment"]["onnx_size_mb"] = 1.7
    after["variants"]["pruned"]["checks"][1].update(value=0.6, passed=False)
    after["verdicts"][0].update(gates_passed=1, gates_failed=1)  # the count of gates stays 2
    assert compare.differences(DOC, after) == []


def test_a_changed_figure_is_named(tmp_path):
    after = copy.deepcopy(DOC)
    after["variants"]["pruned"]["static"]["params"] = 101
    del after["variants"]["pruned"]["checks"][0]
    lines = compare.differences(DOC, after)
    assert "pruned.static.params: 100 -> 101" in lines
    assert any(line.startswith("pruned.checks[0].limit: 'max_params_ratio' -> '<absent>'") for line in lines)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(DOC))
    b.write_text(json.dumps(after))
    assert compare.main([str(a), str(b)]) == 1
    assert compare.main([str(a), str(a)]) == 0
    assert compare.main([str(a), str(tmp_path / "missing.json")]) == 2
