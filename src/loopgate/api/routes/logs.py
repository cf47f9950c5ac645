"""v4 routes: logs (see the module's docstring once filled in)."""

from fastapi import APIRouter

router = APIRouter()
