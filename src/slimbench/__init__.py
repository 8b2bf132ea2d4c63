"""slimbench: prove that pruned YOLO detectors are smaller, faster and still detect what the original does."""

__version__ = "0.1.0"
