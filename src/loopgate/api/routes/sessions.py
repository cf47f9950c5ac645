"""v4 routes: sessions (see the module's docstring once filled in)."""

from fastapi import APIRouter

router = APIRouter()
