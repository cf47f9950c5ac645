"""The log browser, mounted at ``/ui`` (and ``/`` redirects there); kept out of the OpenAPI schema."""

from fastapi import APIRouter

from loopgate.ui import auth_pages, config_pages, evaluation_pages, log_pages, project_pages

router = APIRouter(include_in_schema=False)
for pages in (auth_pages, project_pages, log_pages, config_pages, evaluation_pages):
    router.include_router(pages.router)
