"""The web app: a FastAPI app of one router per workspace (:mod:`mmadfer.serve.routes`), every route behind the
:class:`~mmadfer.serve.security.Guard` dependency and every response with the
:class:`~mmadfer.serve.security.SecurityHeaders`. The FastAPI docs pages (which load from CDNs) are off.
"""
from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from starlette.concurrency import run_in_threadpool

from .context import AppContext
from .datadir import DataDir
from .jobs import JobQueue
from .labelling import ProjectLabels
from .live import LiveSlot
from .project import Project
from .routes import jobs as jobs_routes, live as live_routes, model as model_routes, page as page_routes, \
    project as project_routes, runs as runs_routes
from .routes.page import STATIC
from .runner import serialised
from .runs import RunsFolder
from .security import Guard, SecurityHeaders
from .training import Trainer

__all__ = ["create_app", "STATIC"]


def create_app(recognizer, *, host: str = "127.0.0.1", port: int = 8765, data: DataDir | None = None,
               token: str | None = None, max_upload_mb: float = 500, workers: int = 1, runs: str | Path | None = None,
               keep_audio: bool = False, allowed_hosts: tuple[str, ...] = (), project: Project | None = None,
               annotator: str = "", train: dict | None = None) -> FastAPI:
    """The ASGI app for a loaded :class:`~mmadfer.Recognizer`.

    ``data``: where uploads and results go (default: a new private temporary folder); it is closed (deleted unless
    kept) when the app shuts down. ``runs``: a folder of training/evaluation runs to browse. ``host``, ``port``,
    ``token``, ``allowed_hosts``: what :class:`~mmadfer.serve.security.Guard` checks. The model's forward passes
    take turns (:func:`~mmadfer.serve.runner.serialised`); ``recognizer`` itself is left as it is. Its
    ``min_face_coverage`` and ``min_confidence`` label the windows of jobs and Live (``no_face``, ``uncertain``).

    ``project``: a labelling project (:class:`~mmadfer.serve.project.Project`); its folder is then the data folder
    (kept at stop) and its ``runs/`` the runs folder; labels are saved with ``annotator``. With a ``train`` dict
    (:class:`~mmadfer.serve.training.Trainer`'s keyword arguments, ``checkpoint`` among them) the project can be
    trained on its labels.
    """
    if project is not None:
        data = data or DataDir(project.root, keep=True)
        runs = project.runs
    data = data or DataDir()
    rec = serialised(recognizer)
    ctx = AppContext(recognizer=rec, queue=JobQueue(rec, data, workers=workers, keep_audio=keep_audio),
                     data=data, runs=RunsFolder(runs) if runs else None, slot=LiveSlot(), max_upload_mb=max_upload_mb,
                     project=project, labels=ProjectLabels(project, annotator) if project is not None else None,
                     trainer=Trainer(project, **train) if project is not None and train else None)
    guard = Guard(host=host, port=port, token=token, allowed_hosts=allowed_hosts)

    @asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:
            await run_in_threadpool(ctx.queue.close)
            if ctx.trainer is not None:
                await run_in_threadpool(ctx.trainer.close)
            data.close()

    app = FastAPI(title="mmadfer", docs_url=None, redoc_url=None, openapi_url=None, swagger_ui_oauth2_redirect_url=None,
                  lifespan=lifespan, dependencies=[Depends(guard)])
    app.state.context, app.state.guard = ctx, guard
    for routes in (page_routes, model_routes, jobs_routes, live_routes, runs_routes, project_routes):
        app.include_router(routes.router)
    app.add_middleware(SecurityHeaders)
    return app
