"""The bottom layer: errors, files, metric declarations, timing keys; imports nothing else of slimbench."""
