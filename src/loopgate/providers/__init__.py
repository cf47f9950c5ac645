"""Model providers: one small interface (``base.Provider``), one registry, one adapter per wire API shape."""
