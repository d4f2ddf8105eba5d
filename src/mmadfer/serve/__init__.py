"""``mmadfer serve``: a local web app (Analyze queue, Viewer, Live, Runs) over the same predictions as the CLI.

:func:`~mmadfer.serve.app.create_app` builds the ASGI app; :mod:`~mmadfer.serve.security` guards it (Host, Origin,
token, Content-Security-Policy), :mod:`~mmadfer.serve.jobs` runs uploaded videos in the background and
:mod:`~mmadfer.serve.live` streams the browser's camera into the rolling buffer of :mod:`mmadfer.predict.realtime`.
"""
