"""This directory is a slimbench suite: the plugin validates the variants before collection and parametrises the
fixtures (variant, candidate, device, batch, image, runtime) for the tests here. The options (--variants-file,
--variant, --reference, --device, --batch, --runtime, --imgsz, --image, --data, --images, --slimbench-smoke) are
declared here, not globally, so their generic names cannot clash with other projects' conftests."""

from slimbench.plugin import add_suite_options as pytest_addoption  # noqa: F401

slimbench_suite = True
