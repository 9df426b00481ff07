"""The OpenAPI schema where FastAPI cannot infer it, and the docs page that shows it.

``/api/predict`` and ``/api/predict/batch`` read several content types themselves, so FastAPI
sees no request body: `PREDICT_BODY` and `BATCH_BODY` describe it (as the routes'
``openapi_extra``), and `schema` adds the JSON models they refer to to the components.
``/docs`` is Swagger UI served from local files (the ``swagger_ui_bundle`` package, which
`create_app` mounts at `SWAGGER`), so the page works offline.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi

from .inputs import IMAGE_TYPES
from .limits import MAX_BATCH, MAX_PIXELS, MAX_UPLOAD_BYTES
from .schemas import BatchInput, ImageInput

SWAGGER = "/static/swagger"
REFUSALS = {413: {"description": f"Body over {MAX_UPLOAD_BYTES // 2**20} MiB or image over "
                                 f"{MAX_PIXELS / 1e6:g} megapixels"},
            415: {"description": "Unsupported content type"},
            404: {"description": "Unknown model"},
            422: {"description": "Malformed body, not an image, or no digit found"}}
_FILE = {"type": "string", "format": "binary"}


def _body(json_model, multipart: dict, image_types: tuple[str, ...] = ()) -> dict:
    """A request body read as JSON (``json_model``), multipart or an image of ``image_types``."""
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{json_model.__name__}"}},
        "multipart/form-data": {"schema": multipart},
        **{t: {"schema": _FILE} for t in image_types},
    }}}


PREDICT_BODY = _body(ImageInput, {"type": "object", "required": ["file"], "properties": {"file": _FILE}},
                     IMAGE_TYPES[:2])
BATCH_BODY = _body(BatchInput, {"type": "object", "required": ["files"], "properties": {
    "files": {"type": "array", "maxItems": MAX_BATCH, "items": _FILE}}})

docs_router = APIRouter(include_in_schema=False)


@docs_router.get("/docs")
def docs():
    return get_swagger_ui_html(
        openapi_url="/openapi.json", title="digitlab API",
        swagger_js_url=f"{SWAGGER}/swagger-ui-bundle.js", swagger_css_url=f"{SWAGGER}/swagger-ui.css",
        swagger_favicon_url=f"{SWAGGER}/favicon-32x32.png")


def schema(app: FastAPI) -> dict:
    """``app``'s OpenAPI schema with `ImageInput` and `BatchInput` in its components (made once)."""
    if app.openapi_schema is None:
        result = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = result.setdefault("components", {}).setdefault("schemas", {})
        for model in (ImageInput, BatchInput):
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(model_schema.pop("$defs", {}))
            components[model.__name__] = model_schema
        app.openapi_schema = result
    return app.openapi_schema
