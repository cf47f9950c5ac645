"""loopgate: a self-hosted server for the Humanloop v4 REST API."""

__version__ = "0.1.0"
