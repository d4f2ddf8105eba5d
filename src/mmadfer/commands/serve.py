"""Run the web app: drop in videos, watch the timeline beside the video, try it live with the camera.

Opens at http://127.0.0.1:8765/ (loopback only by default). Workspaces: Analyze (a queue of uploaded videos with
progress and cancel), Viewer (the video with its timeline; click the chart to seek; the anonymised copy; downloads),
Live (the browser's camera and microphone through the same rolling 5.12 s buffer as predict --realtime) and Runs
(with --runs: training and evaluation run folders with their metrics, curves and confusion matrices).

With --project DIR the videos, their timelines, the labels people give them in the Viewer (DIR/labels.csv) and the
runs trained on them (Runs: "Train on my labels", i.e. prepare --labels + train --init from this checkpoint) stay in
DIR (created private, 0700) and are there again at the next start; the project's classes (--classes, when it is
created; default the checkpoint's) may differ from the checkpoint's.

Privacy: everything runs on this machine and the page loads nothing from elsewhere. Uploads and results go to
--data-dir, by default a private temporary folder deleted when the server stops (--keep keeps it). A server that was
killed cannot clean up: the next mmadfer serve deletes what it left (in --data-dir and in the temporary folder), or
lists it with --keep. Listening on a non-loopback --host requires the access token printed at start.

  mmadfer serve -c model.safetensors
  mmadfer serve -c dfew_fold1.pth --runs runs/ --port 8080
  mmadfer serve -c model.safetensors --host 0.0.0.0 --data-dir /srv/mmadfer --keep
  mmadfer serve -c dfew_fold1.pth --project ~/labelling/interviews --classes engaged,confused,neutral
"""
from __future__ import annotations

import argparse
import sys
import socket

from ..config import DEFAULT_MIN_FACE_COVERAGE
from ..runtime.backends import BACKENDS
from ..errors import one_line
from ._detectors import add_detector_argument, detector_name


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", "-c", required=True,
                   help="mmadfer .safetensors, the reference's released .pth, or an exported .onnx or OpenVINO .xml")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default %(default)s: this machine only; any other requires the "
                        "printed access token)")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="another name the page may be opened by (e.g. a DNS name of this machine; repeatable); the "
                        "machine's own names and addresses are accepted already")
    p.add_argument("--port", type=int, default=8765, help="port (default %(default)s; 0: a free one)")
    p.add_argument("--backend", choices=BACKENDS, default="auto", help="as for mmadfer predict (default auto)")
    p.add_argument("--device", help="cuda, cuda:1, cpu (default: cuda if available)")
    p.add_argument("--precision", help="torch backend arithmetic: fp32, bf16, ... (as for mmadfer predict)")
    p.add_argument("--cache-dir", metavar="DIR", help="where the int8 backends keep converted models")
    add_detector_argument(p)
    p.add_argument("--data-dir", metavar="DIR",
                   help="where uploads and results go (default: a private temporary folder); this server's jobs are "
                        "deleted when it stops, unless --keep; one server per folder")
    p.add_argument("--keep", action="store_true",
                   help="keep uploads and results after the server stops, and only list (not delete) what killed "
                        "servers left behind")
    p.add_argument("--max-upload-mb", type=float, default=500, metavar="N",
                   help="largest accepted upload (default %(default)g MB); larger ones get 413")
    p.add_argument("--workers", type=int, default=1, help="videos analysed at the same time (default %(default)s)")
    p.add_argument("--keep-audio", action="store_true", help="anonymised copies keep the audio track (voices identify)")
    p.add_argument("--runs", metavar="DIR", help="a folder of training/evaluation runs to show in the Runs workspace")
    p.add_argument("--project", metavar="DIR",
                   help="a labelling project: videos, timelines, labels (labels.csv) and runs kept in DIR (created "
                        "0700, never deleted at stop); label in the Viewer, train in Runs")
    p.add_argument("--classes", metavar="A,B,...",
                   help="with --project, when it is created: the project's classes (at most 9; default: the "
                        "checkpoint's)")
    p.add_argument("--annotator", default="", metavar="NAME",
                   help="with --project: the name written in the labels' annotator column (default: empty)")
    p.add_argument("--min-face-coverage", type=float, metavar="F", default=DEFAULT_MIN_FACE_COVERAGE,
                   help="as for mmadfer predict: windows with a face in fewer than this fraction of their frames are "
                        "labelled no_face in jobs and Live (default %(default)s; 0 turns it off)")
    p.add_argument("--min-confidence", type=float, metavar="P",
                   help="as for mmadfer predict: windows whose top probability is below P are labelled uncertain")


def run(args: argparse.Namespace) -> int:
    from .._optional import require

    try:
        require("fastapi", "mmadfer serve")
        uvicorn = require("uvicorn", "mmadfer serve")
    except ImportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from ..runtime.load import conversion_target, resolve_backend
    from ..errors import CheckpointError
    from ..evaluation.selective import check_thresholds
    from ..predict.recognizer import Recognizer
    from ..serve.app import create_app
    from ..serve.datadir import DataDir, DataDirError
    from ..serve.project import Project, ProjectError
    from ..serve.runs import RunsFolder
    from ..serve.security import is_loopback, new_token

    if args.max_upload_mb <= 0 or args.workers < 1:
        print("error: --max-upload-mb must be positive and --workers at least 1", file=sys.stderr)
        return 2
    try:
        check_thresholds(args.min_confidence, args.min_face_coverage)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.project and (args.data_dir or args.runs):
        print("error: --project keeps its own data and runs (DIR/jobs, DIR/runs): drop --data-dir and --runs",
              file=sys.stderr)
        return 2
    if args.classes and not args.project:
        print("error: --classes sets a project's classes: it needs --project DIR", file=sys.stderr)
        return 2
    if args.runs:
        try:
            RunsFolder(args.runs)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    backend = args.backend if args.backend != "auto" else resolve_backend(args.checkpoint, args.device,
                                                                            args.precision)
    try:
        target = conversion_target(backend, args.checkpoint, args.cache_dir)
        if target is not None and not target.is_file():
            print(f"converting {args.checkpoint} for the {backend} backend, once (minutes for the reference model); "
                  f"kept in {target.parent}", file=sys.stderr)
        rec = Recognizer.from_checkpoint(args.checkpoint, device=args.device, backend=args.backend,
                                         precision=args.precision, detector=detector_name(args),
                                         cache_dir=args.cache_dir, min_confidence=args.min_confidence,
                                         min_face_coverage=args.min_face_coverage or None)
    except (CheckpointError, ValueError, ImportError) as e:
        print(f"error: cannot load the model: {one_line(e)}", file=sys.stderr)
        return 2
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
        sock.listen(128)  # connections wait in the backlog from now on, so the printed address works at once
    except OSError as e:
        print(f"error: cannot listen on {args.host}:{args.port} ({e.strerror})", file=sys.stderr)
        return 2
    port = sock.getsockname()[1]
    token = None if is_loopback(args.host) else new_token()
    project = None
    try:
        if args.project:
            project = Project(args.project, classes=args.classes, default=rec.labels)
        data = DataDir(project.root if project else args.data_dir, keep=args.keep or project is not None)
    except (DataDirError, ProjectError, OSError) as e:
        print(f"error: {one_line(e, args.project or args.data_dir)}", file=sys.stderr)
        sock.close()
        return 2
    left = data.sweep()
    if left and data.keep:
        why = "a project's uploads are never deleted" if project else "--keep"
        print(f"left by {len(left)} killed server run(s), kept ({why}; delete them by hand):", file=sys.stderr)
        for path in left:
            print(f"  {path}", file=sys.stderr)
    elif left:
        print(f"deleted what killed server runs left: {len(left)} folder(s)", file=sys.stderr)
    app = create_app(rec, host=args.host, port=port, data=data, token=token, max_upload_mb=args.max_upload_mb,
                     workers=args.workers, runs=args.runs, keep_audio=args.keep_audio,
                     allowed_hosts=tuple(args.allowed_host), project=project, annotator=args.annotator,
                     train=_training(args, rec) if project else None)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    print(f"mmadfer serve: {rec.backend} on {rec.device}, {args.checkpoint}", file=sys.stderr)
    print(f"data: {data.root} ({'kept' if data.keep else 'deleted when the server stops'})", file=sys.stderr)
    if project:
        print(f"project: {project.root}, classes {', '.join(project.classes)}", file=sys.stderr)
    if token:
        print("listening beyond this machine: every request needs the access token in this address", file=sys.stderr)
    print(f"open {url}  (Ctrl-C stops)", file=sys.stderr, flush=True)
    # log_config=None: uvicorn leaves the process's logging as it is (its default dictConfig would close every
    # handler already installed, a library's or the caller's); its own loggers still honour log_level
    config = uvicorn.Config(app, log_level="warning", log_config=None, access_log=False, server_header=False,
                            date_header=False, ws_max_size=4 * 1024 * 1024, timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled: a normal stop
        pass
    finally:
        data.close()  # also done at the app's shutdown; here for a server that failed to start
        sock.close()
    return 0


def _training(args: argparse.Namespace, rec) -> dict | None:
    """What "Train on my labels" starts from: this checkpoint (not an exported .onnx or OpenVINO .xml, which hold no
    trainable weights), preparing face crops when this server detects faces."""
    from pathlib import Path

    if Path(args.checkpoint).suffix.lower() in (".onnx", ".xml"):
        return None
    return {"checkpoint": args.checkpoint, "faces": rec.detector is not None}
