"""The page: ``/``, the icon and ``/static/...`` (the page's scripts, styles and images, ES modules in subfolders
included). A static path is resolved inside the package's ``static`` folder and served only if it is a file of a
listed kind there, so nothing else of the package or the machine can be reached."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

__all__ = ["router", "STATIC"]

STATIC = Path(str(resources.files("mmadfer.serve") / "static")).resolve()
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".mjs":
          "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml",
          ".png": "image/png", ".json": "application/json", ".woff2": "font/woff2"}

router = APIRouter(include_in_schema=False)


@router.get("/")
def index():
    return FileResponse(STATIC / "index.html", media_type=_TYPES[".html"])


@router.get("/favicon.ico")
def favicon():
    return FileResponse(STATIC / "favicon.svg", media_type=_TYPES[".svg"])


@router.get("/static/{rel:path}")
def static(rel: str):
    path = (STATIC / rel).resolve()
    if "\0" in rel or not path.is_relative_to(STATIC) or not path.is_file() or path.suffix not in _TYPES:
        raise HTTPException(404, "no such file")
    return FileResponse(path, media_type=_TYPES[path.suffix])
