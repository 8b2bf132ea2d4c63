"""pytest plugin: slimbench options and fixtures (registered through the pytest11 entry point)."""
