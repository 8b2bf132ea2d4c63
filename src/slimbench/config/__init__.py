"""The suite config: variants, settings, limits, the [baseline] table, command line overrides."""
