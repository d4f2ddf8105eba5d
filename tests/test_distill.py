"""``mmadfer distill``: the teacher pass and the student's training resume after a kill, and the report's agreement
equals one computed independently from the two models' ``predict`` timelines of the held-out videos."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import cohen_kappa_score

from mmadfer import ModelConfig, PreprocessConfig
from mmadfer.checkpoints import load_checkpoint, save_checkpoint
from mmadfer.data.synthetic import SYNTH_CLASSES, render_clip
from mmadfer.distill import soft_targets
from mmadfer.distill.run import DistillSettings, distill, student_config
from mmadfer.media.encode import write_video
from mmadfer.model.mmadfer import MMADFER
from mmadfer.predict import Recognizer

class Killed(Exception):
    """Stands for the process being killed at that point."""


WINDOW_FRAMES = 64  # 0.64 s windows: each 2 s video gives 3


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("distill")
    videos = []
    for i in range(5):
        clip = render_clip(i % 4, num_frames=50, size=32, seed=(7, i))
        videos.append(str(write_video(d / f"v{i}.mp4", clip.frames, clip.fps, clip.waveform, clip.sample_rate)))
    torch.manual_seed(0)
    teacher = MMADFER(ModelConfig.tiny(num_classes=4, class_names=SYNTH_CLASSES, audio_frames=WINDOW_FRAMES,
                                       preprocess=PreprocessConfig(img_size=32, audio_frames=WINDOW_FRAMES)))
    with torch.no_grad():
        for name, p in teacher.named_parameters():
            if name.endswith("_gate"):
                p.fill_(0.5)
    ck = save_checkpoint(teacher.eval(), d / "teacher.safetensors")
    labels = d / "labels.csv"
    labels.write_text("video,label\n" + "".join(f"v{i}.mp4,{SYNTH_CLASSES[i % 4]}\n" for i in range(5)))
    return d, videos, ck, labels


def _teacher(ck):
    return Recognizer.from_checkpoint(ck, device="cpu", backend="torch", precision="fp32", detector=None,
                                      multi_face=False)


SETTINGS = DistillSettings(student="vit-tiny", student_overrides={"img_size": 32}, epochs=2, batch_size=4,
                           heldout=0.4, seed=0)


@pytest.mark.slow
def test_distill_resumes_after_a_kill_and_reports_true_agreement(setup, monkeypatch):
    d, videos, ck, labels = setup
    teacher = _teacher(ck)
    cfg = student_config(SETTINGS.student, teacher.cfg, **SETTINGS.student_overrides)
    work = d / "work"

    # the teacher pass is killed during its third video: two are cached, and a rerun does only the rest
    real, calls = soft_targets._one_video, []

    def dies_on_third(*a, **k):
        calls.append(a[2])
        if len(calls) == 3:
            raise Killed
        return real(*a, **k)

    monkeypatch.setattr(soft_targets, "_one_video", dies_on_third)
    with pytest.raises(Killed):
        soft_targets.teacher_pass(teacher, ck, videos, cfg.preprocess, work / "cache", progress=False)
    cached = sorted((work / "cache").glob("*.safetensors"))
    assert len(cached) == 2 and not list((work / "cache").glob(".*"))  # no half-written file left behind
    stamps = {f: f.stat().st_mtime_ns for f in cached}
    calls.clear()

    def counted(*a, **k):
        calls.append(a[2])
        return real(*a, **k)

    monkeypatch.setattr(soft_targets, "_one_video", counted)
    done = soft_targets.teacher_pass(teacher, ck, videos, cfg.preprocess, work / "cache", progress=False)
    assert len(done["skipped"]) == 2 and len(done["done"]) == 3 and len(calls) == 3
    assert all(f.stat().st_mtime_ns == t for f, t in stamps.items())

    # training killed after its first epoch resumes from the saved state and ends where an unbroken run ends
    from mmadfer.distill import run as run_module

    real_train = run_module.train_student

    def killed_after_first_epoch(*a, **k):
        def stop(epoch, loss):
            raise Killed

        return real_train(*a, **{**k, "on_epoch": stop})

    monkeypatch.setattr(run_module, "train_student", killed_after_first_epoch)
    with pytest.raises(Killed):
        distill(teacher, ck, videos, d / "student.safetensors", work, SETTINGS, progress=False)
    assert len(list((work / "state").glob("state-0001-*.pt"))) == 1
    monkeypatch.setattr(run_module, "train_student", real_train)
    rep = distill(teacher, ck, videos, d / "student.safetensors", work, SETTINGS, labels=labels, progress=False)
    unbroken = d / "unbroken"
    unbroken.mkdir()
    (unbroken / "cache").symlink_to(work / "cache")
    distill(teacher, ck, videos, d / "unbroken.safetensors", unbroken, SETTINGS, progress=False)
    a, b = load_checkpoint(d / "student.safetensors"), load_checkpoint(d / "unbroken.safetensors")
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(x, y, rtol=0, atol=0, msg=name)
    assert [h["epoch"] for h in rep["history"]] == [1, 2]

    # the report against an independent computation: both checkpoints through predict on the held-out videos
    assert json.loads((work / "report.json").read_text())["heldout"] == rep["heldout"]
    held = rep["heldout_videos"]
    assert len(held) == 2 and rep["heldout"]["windows"] == 6
    student = Recognizer.from_checkpoint(d / "student.safetensors", device="cpu", backend="torch", precision="fp32",
                                         detector=None)
    assert student.provenance["distilled_from"] == str(ck) and "distilled from" in student.provenance["dataset"]
    probs = [f"p_{c}" for c in SYNTH_CLASSES]  # the top class from the raw probabilities (labels may say no_face)
    t_labels = np.concatenate([np.asarray(SYNTH_CLASSES)[_teacher(ck).predict_video(v)[probs].to_numpy().argmax(1)]
                               for v in held])
    s_labels = np.concatenate([np.asarray(SYNTH_CLASSES)[student.predict_video(v)[probs].to_numpy().argmax(1)]
                               for v in held])
    assert rep["heldout"]["top1_agreement"] == pytest.approx(np.mean(t_labels == s_labels))
    if len(set(t_labels) | set(s_labels)) > 1:
        assert rep["heldout"]["kappa"] == pytest.approx(cohen_kappa_score(t_labels, s_labels))
    true = np.concatenate([[SYNTH_CLASSES.index(SYNTH_CLASSES[int(v[-5]) % 4])] * 3 for v in held])
    war = np.mean(np.array([SYNTH_CLASSES.index(x) for x in s_labels]) == true)
    assert rep["labelled"]["student"]["war"] == pytest.approx(war)
    assert rep["speed"]["teacher_s_per_clip"] > 0 and rep["speed"]["student_s_per_clip"] > 0
    assert "carries that checkpoint's terms" in (work / "report.txt").read_text()
