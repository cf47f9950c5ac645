"""v4 routes: feedback (see the module's docstring once filled in)."""

from fastapi import APIRouter

router = APIRouter()
