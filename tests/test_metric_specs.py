"""The metric declarations: the config schema and the baseline rules follow from them, and they are consistent."""

import dataclasses

from slimbench.bench.baseline_compare import RULES
from slimbench.config.suite import THRESHOLD_KEYS, Thresholds
from slimbench.core import metric_specs


def test_threshold_keys_and_baseline_rules_come_from_the_declarations():
    assert metric_specs.limit_keys() == THRESHOLD_KEYS
    assert tuple(f.name for f in dataclasses.fields(Thresholds)) == THRESHOLD_KEYS
    assert list(RULES) == [m.key for m in metric_specs.METRICS if m.tolerance is not None]
    assert RULES["params"].direction == "max" and RULES["map50"].direction == "min"
    assert RULES["detections"].direction == "both"
    assert str(RULES["file_size_mb"].tolerance) == "1%"


def test_declarations_are_consistent():
    keys = [m.key for m in metric_specs.METRICS]
    assert len(keys) == len(set(keys))
    assert len(THRESHOLD_KEYS) == len(set(THRESHOLD_KEYS))
    for m in metric_specs.METRICS:
        assert m.table in metric_specs.TABLES, m.key
        assert m.better in ("lower", "higher", ""), m.key
        for lim in m.limits:
            assert lim.key.startswith(lim.kind + "_"), lim.key
            assert metric_specs.spec_of_limit(lim.key) is m
    assert metric_specs.integer_limit_keys() == {"max_params", "max_zeroed_channels"}


def test_a_column_shows_the_metric_of_its_name_first():
    assert metric_specs.spec_of_column("channels_removed_pct").key == "channels_removed_pct"
    assert metric_specs.spec_of_column("params").key == "params"
    assert metric_specs.spec_of_column("latency_ms[ort-cpu-b1-t2]").key == "latency_ms"
    assert metric_specs.spec_of_column("agreement_recall_sample").key == "agreement_recall"
    assert metric_specs.spec_of_column("stored_dtype") is None
    for m in metric_specs.METRICS:  # a column named after a metric shows that metric, whoever else declares it
        for c in m.columns:
            if c in metric_specs.SPECS:
                assert metric_specs.spec_of_column(c).key == c


def test_the_terminal_static_table_is_derived_from_the_declarations():
    from slimbench.core.metric_specs import METRICS
    from slimbench.report.terminal import static_table

    st = {
        "params": 681578,
        "gflops": 2.0965,
        "file_size_mb": 1.53,
        "normalized_size_mb": 1.373,
        "total_channels": 2731,
        "total_zeroed_channels": 120,
        "channels_removed_pct": 51.54,
    }
    head, row = static_table([("pruned", st)])
    stored = [m for m in METRICS if m.table == "size" and m.tolerance is not None]
    assert all(m.label in head for m in stored), head
    assert row.split() == ["pruned", "681,578", "2.096", "1.53", "1.373", "2,731", "120", "51.5"]


def test_every_limit_names_the_shipped_test_that_judges_it():
    """Deselection is traced back to limits through these names: each must be a test the package ships."""
    import ast
    from importlib import resources

    shipped = set()
    for f in (resources.files("slimbench") / "suite").iterdir():
        if f.name.startswith("test_") and f.name.endswith(".py"):
            tree = ast.parse(f.read_text(encoding="utf-8"))
            shipped |= {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}
    for key in metric_specs.limit_keys():
        assert metric_specs.gating_test(key) in shipped, key
