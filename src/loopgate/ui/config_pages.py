"""A project's model-config versions: parameters, a diff of two versions, deploy and undeploy."""

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from loopgate.errors import RequestInvalid
from loopgate.schemas.projects import EnvironmentProjectConfigRequest
from loopgate.ui.diff import changed_count, pretty_json, side_by_side
from loopgate.ui.project_pages import project_context, projects_service
from loopgate.ui.render import page
from loopgate.ui.routing import PageRoute, first, read_form, see_other
from loopgate.ui.session import SignedIn, check_form

router = APIRouter(route_class=PageRoute)

# The parameters a version's row shows; the rest is in its full JSON.
SUMMARY_FIELDS = ("provider", "model", "temperature", "max_tokens", "top_p", "stop", "response_format")


def diff_document(config: dict[str, Any]) -> dict[str, Any]:
    """A version's parameters without its id, so two versions differ only where their parameters do."""
    return {key: value for key, value in config.items() if key != "id"}


def _default_pair(ids: list[str]) -> tuple[str, str]:
    """The two newest versions, older on the left."""
    return (ids[-2], ids[-1]) if len(ids) >= 2 else ("", "")


@router.get("/ui/projects/{project_id}/configs")
async def config_versions(
    request: Request, viewer: SignedIn, project_id: str, a: str = "", b: str = "", notice: str = ""
) -> Response:
    context = await project_context(request, viewer, project_id, "configs")
    service = projects_service(request)
    versions = await service.configs(viewer.org_id, project_id)
    deployments = await service.deployments.deployed_configs(viewer.org_id, project_id)
    by_id = {view["config"]["id"]: view for view in versions}
    numbers = {config_id: number for number, config_id in enumerate(by_id, start=1)}
    environments_of: dict[str, list[str]] = {}
    for deployment in deployments:
        if deployment["model_config_id"]:
            environments_of.setdefault(deployment["model_config_id"], []).append(
                deployment["environment_name"]
            )
    if not (a in by_id and b in by_id):
        a, b = _default_pair(list(by_id))
    rows = []
    if a and b:
        rows = side_by_side(
            pretty_json(diff_document(by_id[a]["config"])), pretty_json(diff_document(by_id[b]["config"]))
        )
    return page(
        "configs.html",
        title=f"{context['project'].name} · Model configs",
        **context,
        versions=list(reversed(versions)),  # newest first, like the logs
        numbers=numbers,
        environments_of=environments_of,
        deployments=deployments,
        summary_fields=SUMMARY_FIELDS,
        left=a,
        right=b,
        rows=rows,
        changes=changed_count(rows),
        notice=notice,
        pretty_json=pretty_json,
    )


@router.post("/ui/projects/{project_id}/deploy")
async def deploy(request: Request, viewer: SignedIn, project_id: str) -> Response:
    form = await read_form(request)
    check_form(request, viewer, form)
    config_id, environment_id = first(form, "config_id"), first(form, "environment_id")
    if not config_id or not environment_id:
        raise RequestInvalid(["body"], "Choose a version and an environment to deploy it to.")
    body = EnvironmentProjectConfigRequest.model_validate(
        {"config_id": config_id, "environments": [{"id": environment_id}]}
    )
    # The same service as PATCH /v4/projects/{id}/deploy-config: the same checks, the same result.
    await projects_service(request).deployments.deploy(viewer.org_id, project_id, body)
    return see_other(f"/ui/projects/{project_id}/configs?notice=deployed")


@router.post("/ui/projects/{project_id}/undeploy")
async def undeploy(request: Request, viewer: SignedIn, project_id: str) -> Response:
    form = await read_form(request)
    check_form(request, viewer, form)
    await projects_service(request).deployments.undeploy(
        viewer.org_id, project_id, first(form, "environment_id")
    )
    return see_other(f"/ui/projects/{project_id}/configs?notice=undeployed")
