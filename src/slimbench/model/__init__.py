"""A checkpoint as a detector: loading (sha256 before unpickling), detections, static figures."""
