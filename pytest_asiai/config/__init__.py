"""Configuration: engines.toml into the case matrix, command-line and ini options, typed plugin state keys."""
