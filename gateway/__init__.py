"""Dublin gateway: signed standard forms between Dublin units over mutual TLS.

The version is pyproject.toml's, read from the installed distribution (`gateway --version`)."""
