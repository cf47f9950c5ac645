"""v4 routes: generation_variants (see the module's docstring once filled in)."""

from fastapi import APIRouter

router = APIRouter()
