"""MONAI Label's ASGI app, importable under pydicom 3, with request errors answered as 4xx.

Start the server with it in place of MONAI Label's default ``monailabel.app:app``:

    monailabel start_server --app monailabel_app --studies /data/studies \\
        --uvicorn_app c2s_monai.monailabel_adapter.server:app

It is MONAI Label's own app, imported after :func:`~c2s_monai.monailabel_adapter.alias_pydicom_storage_uids`
(done by importing the package) so that MONAI Label's start-up import of ``pydicom_seg`` works,
with two changes to how a bad request is answered (MONAI Label 0.8.5 answers every one with
a bare 500, docs/monai-label.md "Errors"):

- :func:`monailabel_error`: a ``MONAILabelException`` is answered with its message,
  ``{"detail": msg, "error": code}``: 404 for an image (or label) that is not there, 400 for
  ``MONAILabelError.INVALID_INPUT`` (bad request options, an unavailable device, an unknown
  model), 500 otherwise;
- ``POST /infer/{model}`` (:func:`run_inference`, matched before MONAI Label's route, same
  parameters) first refuses with 400 a
  request without an image id, uploaded file or session (MONAI Label's 500 "Neither Image nor
  File not Session ID input is provided") and ``params`` that are not a JSON object, then runs
  MONAI Label's own ``run_inference``.
"""

import json
import logging
from typing import Annotated

# the alias must exist before MONAI Label is imported
# isort: off
from c2s_monai import monailabel_adapter  # noqa: F401
from monailabel.app import app

# isort: on
from fastapi import BackgroundTasks, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse
from monailabel.config import settings
from monailabel.endpoints import infer
from monailabel.endpoints.user.auth import RBAC, User
from monailabel.interfaces.exception import ImageNotFoundException, LabelNotFoundException, MONAILabelError, MONAILabelException

__all__ = ["app", "monailabel_error", "run_inference"]

logger = logging.getLogger(__name__)

INFER_PATH = f"{settings.MONAI_LABEL_API_STR}/infer/{{model}}"
NO_IMAGE = "no image: give image=<id> of an image in the datastore, or upload a file; nothing was denoised."


async def monailabel_error(request: Request, exc: Exception) -> JSONResponse:
    """Answer a ``MONAILabelException`` with its message and a status that says whose fault it is."""
    if not isinstance(exc, MONAILabelException):  # registered for MONAILabelException only
        raise exc
    if isinstance(exc, (ImageNotFoundException, LabelNotFoundException)):
        status = 404
    elif exc.error == MONAILabelError.INVALID_INPUT:
        status = 400
    else:
        status = 500
        logger.error("%s %s: %s", request.method, request.url.path, exc.msg, exc_info=exc)
    return JSONResponse({"detail": exc.msg, "error": exc.error.value}, status_code=status)


async def run_inference(
    background_tasks: BackgroundTasks,
    model: str,
    user: Annotated[User, Depends(RBAC(settings.MONAI_LABEL_AUTH_ROLE_USER))],
    image: str = "",
    session_id: str = "",
    params: Annotated[str, Form()] = "{}",
    file: Annotated[UploadFile | None, File()] = None,
    label: Annotated[UploadFile | None, File()] = None,
    output: infer.ResultType | None = None,
):
    """MONAI Label's ``POST /infer/{model}``, refusing with 400 a request it cannot serve."""
    if not file and not image.strip() and not session_id:
        raise HTTPException(status_code=400, detail=NO_IMAGE)
    try:
        options = json.loads(params) if params else {}
    except json.JSONDecodeError as error:
        raise HTTPException(status_code=400, detail=f"params must be a JSON object, got {params!r} ({error}); nothing was denoised.") from error
    if not isinstance(options, dict):
        raise HTTPException(status_code=400, detail=f"params must be a JSON object, got {params!r}; nothing was denoised.")
    return infer.run_inference(background_tasks, model, image, session_id, params, file, label, output)


def _route_infer_first() -> None:
    """Serve ``POST /infer/{model}`` with :func:`run_inference`: added, then moved before MONAI Label's routes.

    Routes are matched in order, so MONAI Label's own route (still listed, and still the one
    the OpenAPI page describes: same parameters) is no longer reached.
    """
    app.router.add_api_route(INFER_PATH, run_inference, methods=["POST"], include_in_schema=False, name="c2s_run_inference")
    routes = app.router.routes
    added = [index for index, route in enumerate(routes) if getattr(route, "endpoint", None) is run_inference]
    if len(added) != 1:
        raise RuntimeError(f"POST {INFER_PATH}: the checked route is listed {len(added)} times among the app's routes, expected once.")
    routes.insert(0, routes.pop(added[0]))


app.add_exception_handler(MONAILabelException, monailabel_error)
_route_infer_first()
