"""The web front end: a draw-a-digit page and an HTTP API over a trained model (FastAPI).

``create_app(models)`` builds the application; ``digitlab serve`` runs it with uvicorn. Needs the
``web`` extra: ``pip install 'digitlab[web]'``.
"""

from .app import create_app
from .limits import MAX_BATCH, MAX_PIXELS, MAX_UPLOAD_BYTES
from .store import ModelNotFound, ModelStore

__all__ = ["MAX_BATCH", "MAX_PIXELS", "MAX_UPLOAD_BYTES", "ModelNotFound", "ModelStore", "create_app"]
