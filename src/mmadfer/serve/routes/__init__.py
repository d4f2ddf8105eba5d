"""The web app's routers, one per workspace: :mod:`.page` (the page and its static files), :mod:`.model` (what the
loaded model is), :mod:`.jobs` (Analyze and the Viewer), :mod:`.live` and :mod:`.runs`. Each reads the app's
:class:`~mmadfer.serve.context.AppContext` through the :func:`~mmadfer.serve.context.context` dependency; the
security checks are the app's own dependency (:class:`~mmadfer.serve.security.Guard`), on every route."""
