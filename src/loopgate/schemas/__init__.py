"""Pydantic wire models: what the Humanloop SDK sends, field for field as the v4 OpenAPI document has them."""
