"""The HTTP layer: app factory, authentication, SSE, and one module of routes per v4 group."""
