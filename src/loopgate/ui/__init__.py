"""The built-in log browser: server-rendered pages over the same services as /v4 (see docs/ui.md)."""
