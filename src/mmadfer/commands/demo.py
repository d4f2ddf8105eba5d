"""Try mmadfer end to end on this machine, with no downloads: sample video -> demo model -> timeline, chart, anonymised copy.

1. Makes a short real-looking sample: scikit-image's astronaut photo (a real face), animated, with a voice-like track.
2. Trains a tiny model on a small synthetic audio-visual set for about a minute on the CPU (or reuses the one it
   trained before in the same folder; or uses --checkpoint).
3. Runs the predict path on the sample and writes the timeline (CSV), its chart (PNG) and a copy with the face
   pixelated and the label drawn (MP4) into the output folder, which it names at the end.

The demo model is trained on synthetic cartoon faces and tones, so its labels say nothing about a real person's
expression: the demo shows the pipeline, not accuracy. Real use needs the authors' released DFEW or MAFW checkpoints
(github.com/katerynaCh/MMA-DFER; see the README), loaded as they are:

  mmadfer predict my_video.mp4 --checkpoint <released DFEW .pth> --plot
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DEFAULT_OUT = "mmadfer-demo"
MODEL_NAME = "demo_model.safetensors"
DISCLAIMER = """\
NOTE: the demo model is a tiny one trained for about a minute on synthetic data: cartoon faces and tones in 4
made-up classes ({classes}). Its labels on the sample say nothing about the person's
expression; the demo shows the pipeline, not accuracy. For real use, download the authors' released DFEW or MAFW
checkpoints from the MMA-DFER repository (github.com/katerynaCh/MMA-DFER; see the README) and load them as they are:
    mmadfer predict VIDEO --checkpoint <released DFEW .pth> --plot"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: ./%(default)s)")
    p.add_argument("--seconds", type=float, default=12.0, help="length of the sample video (default %(default)s)")
    p.add_argument("--checkpoint", help="use this model instead of training the synthetic demo model")
    p.add_argument("--retrain", action="store_true", help="train the demo model again even if OUT has one")
    p.add_argument("--quick", action="store_true", help="train for fewer steps (for tests; the model learns less)")
    p.add_argument("--device", help="cuda or cpu (default: cuda if available)")


def _say(msg: str) -> None:
    print(msg, flush=True)


def train_demo_model(out: Path, *, quick: bool = False, device: str | None = None) -> Path:
    """Train the tiny demo model with the training engine (the ``synthetic`` preset) on a synthetic set written to
    ``out/train/data``; return its final checkpoint, re-saved as ``out/demo_model.safetensors`` with its
    provenance marked as the demo's (synthetic).

    An interrupted run continues from its last state on the next call (``fit(resume='auto')``).
    """
    from ..checkpoints import load_checkpoint, save_checkpoint
    from ..data.synthetic import write_synthetic_dataset
    from ..train.engine import fit
    from ..train.config import TrainConfig

    data, run_dir = out / "train" / "data", out / "train" / "run"
    preset = TrainConfig.preset("synthetic")
    # the preset's own set and schedule; --quick only checks the path (tests)
    clips, epochs = (32, 2) if quick else (preset.data.synth_clips, preset.train.epochs)
    write_synthetic_dataset(data, clips, size=preset.data.synth_size, raw=False)
    cfg = preset.replace([
        f"data.root={data}", f"run_dir={run_dir}", f"train.epochs={epochs}", "train.tensorboard=false",
        f"train.device={device or 'auto'}",
    ])
    result = fit(cfg, resume="auto")
    uar, war = result["metrics"].get("uar"), result["metrics"].get("war")
    if uar is not None:
        _say(f"      held-out synthetic clips: UAR {uar:.2f}, WAR {war:.2f} (chance: 0.25)")
    model = load_checkpoint(result["checkpoint"])  # the run's model, re-saved saying it is the demo's
    return save_checkpoint(model, out / MODEL_NAME, extra=model.source["extra"],
                           trained_on={**(model.trained_on or {}), "synthetic": True, "demo": True})


def run(args: argparse.Namespace) -> int:
    from ..errors import MmadferError

    if args.seconds <= 0:
        print("error: --seconds must be positive", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        return _run(args, out, t0)
    except (MmadferError, ImportError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, out: Path, t0: float) -> int:
    from ..data.synthetic import make_astronaut_video
    from ..predict.anonymize import anonymize_video
    from ..predict.recognizer import Recognizer
    from ..predict.table import write_table
    from ..predict.timeline import plot_timeline

    sample = out / "sample.mp4"
    _say(f"[1/3] sample video: {args.seconds:g} s of scikit-image's astronaut photo, animated, with a voice-like track")
    make_astronaut_video(sample, seconds=args.seconds, fps=15, size=256)

    if args.checkpoint:
        checkpoint = Path(args.checkpoint)
        _say(f"[2/3] model: {checkpoint}")
    else:
        checkpoint = out / MODEL_NAME
        if checkpoint.is_file() and not args.retrain:
            _say(f"[2/3] model: reusing the demo model trained earlier ({checkpoint}; --retrain to train again)")
        else:
            _say("[2/3] model: training a tiny model on a synthetic audio-visual set (about a minute on a CPU; the "
                 "trainer's warning about random encoders is expected here: the demo model has no pretrained ones)")
            checkpoint = train_demo_model(out, quick=args.quick, device=args.device)

    rec = Recognizer.from_checkpoint(checkpoint, device=args.device)
    synthetic = rec.provenance["synthetic"]
    stride = 1.0
    _say(f"[3/3] predicting: {rec.window_s:g} s windows every {stride:g} s, faces found by MTCNN, on {rec.device}")
    table = rec.predict_video(sample, stride_s=stride, progress=True)
    csv_path = write_table(table, out / "sample_timeline.csv")
    png_path = out / "sample_timeline.png"
    plot_timeline(table, png_path, title="mmadfer demo: " + ("synthetic-trained model" if synthetic else
                                                              checkpoint.name))
    anon_path = anonymize_video(sample, out / "sample_anonymized.mp4", table, detector=rec.detector)

    top = table.label.value_counts()
    _say(f"\n{len(table)} windows; most frequent label: {top.index[0]} ({top.iloc[0]} of {len(table)}); "
         f"face found in {100 * table.face_coverage.mean():.0f}% of sampled frames")
    _say(f"Done in {time.perf_counter() - t0:.0f} s. Results in {out.resolve()}/:")
    for path, what in ((sample, "the sample video"), (csv_path, "the timeline, one row per window"),
                       (png_path, "the timeline chart"), (anon_path, "the copy with the face pixelated and labels")):
        _say(f"  {Path(path).name:<24} {what}")
    if synthetic:
        from ..data.synthetic import SYNTH_CLASSES

        _say("\n" + DISCLAIMER.format(classes=", ".join(SYNTH_CLASSES)))
    return 0
