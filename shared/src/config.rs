//! dbsafe.toml: finding, parsing and validating the configuration.
