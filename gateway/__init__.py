"""Dublin gateway: signed standard forms between Dublin units over mutual TLS."""

__version__ = "0.1.0"
