"""Configuration: engines.toml into the case matrix (matrix, validated by validate), command-line and
ini options (options, pathargs), typed plugin state keys (stash)."""
