"""This directory is a slimbench suite: the plugin validates the variants before collection and parametrises the
fixtures (variant, candidate, device, batch, image, runtime) for the tests here. The options (--variants-file,
--variant, --reference, --device, --batch, --runtime, --imgsz, --image, --data, --agreement-images,
--slimbench-smoke) are declared here, not globally, so their generic names cannot clash with other projects'
conftests."""

import pytest

from slimbench.plugin import add_suite_options as pytest_addoption  # noqa: F401

pytest.register_assert_rewrite("slimbench.suite")  # the tests here are imported from there: full assert messages

slimbench_suite = True


def pytest_ignore_collect(collection_path, config):
    """The deployment matrix (test_matrix.py) is collected only when a precision is asked for (--precision or
    settings.precision): off, it adds nothing to a run, not even skips."""
    if collection_path.name == "test_matrix.py":
        from slimbench.plugin import get_session

        try:
            return not get_session(config).settings.precision or None
        except Exception:  # noqa: BLE001 - no suite session: let collection report the real problem
            return None
    return None
