"""The OpenAPI schema where FastAPI cannot infer it, and the docs page that shows it.

``/api/predict`` and ``/api/predict/batch`` read several content types themselves, so FastAPI
sees no request body: `PREDICT_BODY` and `BATCH_BODY` describe it (as the routes'
``openapi_extra``), and `schema` adds the JSON models they refer to to the components.
``/docs`` is Swagger UI served from local files (the ``swagger_ui_bundle`` package, which
`create_app` mounts at `SWAGGER`), so the page works offline. Its one inline script (the call that
starts Swagger UI) is allowed by its hash in the page's Content-Security-Policy, `DOCS_POLICY`.
"""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi

from .inputs import IMAGE_TYPES
from .limits import MAX_BATCH, MAX_DIGITS, MAX_PIXELS, MAX_UPLOAD_BYTES
from .schemas import BatchInput, ImageInput

SWAGGER = "/static/swagger"
REFUSALS = {404: {"description": "Unknown model"},
            408: {"description": "The body stopped arriving"},
            413: {"description": f"Body over {MAX_UPLOAD_BYTES // 2**20} MiB or image over "
                                 f"{MAX_PIXELS / 1e6:g} megapixels"},
            415: {"description": "Unsupported content type"},
            422: {"description": f"Malformed body, not an image, no digit found, or (number=true) over "
                                 f"{MAX_DIGITS} digits"},
            503: {"description": "Busy: too many large bodies at once, or the work took too long; "
                                 "see Retry-After"}}
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
    "files": {"type": "array", "minItems": 1, "maxItems": MAX_BATCH, "items": _FILE}}})

docs_router = APIRouter(include_in_schema=False)


# The page's policy (`app.PAGE_POLICY`), plus the hashes of the inline scripts of FastAPI's
# Swagger UI page. (Swagger UI itself needs no inline style, eval or data from elsewhere.)
DOCS_POLICY = ("default-src 'self'; script-src 'self' {scripts}; img-src 'self' data:; object-src 'none'; "
               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


@docs_router.get("/docs")
def docs():
    page = get_swagger_ui_html(
        openapi_url="/openapi.json", title="digitlab API",
        swagger_js_url=f"{SWAGGER}/swagger-ui-bundle.js", swagger_css_url=f"{SWAGGER}/swagger-ui.css",
        swagger_favicon_url=f"{SWAGGER}/favicon-32x32.png")
    inline = re.findall(rb"<script>(.*?)</script>", page.body, re.DOTALL)
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s).digest()).decode()}'" for s in inline)
    page.headers["content-security-policy"] = DOCS_POLICY.format(scripts=hashes)
    return page


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
