"""Root conftest: offline ultralytics and the pytester fixture for tests/ (the slimbench plugin itself is
registered through the pytest11 entry point, so users get it from their own repositories too)."""

import os

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

pytest_plugins = ["pytester"]
