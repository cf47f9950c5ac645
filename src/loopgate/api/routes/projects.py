"""v4 routes: projects (see the module's docstring once filled in)."""

from fastapi import APIRouter

router = APIRouter()
