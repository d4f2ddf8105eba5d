"""The ``--detector`` option shared by ``predict``, ``prepare``, ``serve``, ``bench`` and ``distill``."""
from __future__ import annotations

import argparse

__all__ = ["add_detector_argument", "detector_name"]


def _spec(text: str) -> str:
    """Checks a ``--detector`` value when the command line is parsed (a bad name stops before any work)."""
    from ..media.detectors import parse_detector

    try:
        parse_detector(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def add_detector_argument(p: argparse.ArgumentParser, default: str = "auto") -> None:
    """``--detector NAME[:OPTIONS]`` and its old spelling ``--no-faces`` (= ``--detector none``)."""
    from ..media.detectors import DETECTORS

    names = "; ".join(f"{k}: {v}" for k, v in DETECTORS.items())
    means = ": mtcnn, or whole frames with a warning if facenet-pytorch is missing" if default == "auto" else ""
    p.add_argument("--detector", type=_spec, default=default, metavar="NAME",
                   help=f"face detector ({names}; default {default}{means}). Options after a colon, e.g. "
                        "mtcnn-fast:every=3,max_side=256")
    p.add_argument("--no-faces", action="store_true",
                   help="skip face detection (for videos that are face crops already, like DFEW's): --detector none")


def detector_name(args: argparse.Namespace) -> str:
    """The detector the command line asked for (``--no-faces`` wins)."""
    return "none" if args.no_faces else args.detector
