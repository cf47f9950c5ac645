"""v4 routes: model_configs (see the module's docstring once filled in)."""

from fastapi import APIRouter

router = APIRouter()
