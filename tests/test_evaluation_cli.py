"""`evaluate` beyond accuracy, `calibrate` and `predict --min-confidence` end to end through the CLI, on a small
synthetic set and a tiny, deliberately over-confident model. Every number in metrics.json that matters is recomputed
here independently from predictions.csv (numpy and scikit-learn, not mmadfer's functions)."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import accuracy_score, log_loss, recall_score

from browser_helpers import CHROMIUM, CHROMIUM_ARGS, axe_violations, overflow

from mmadfer.checkpoints import load_checkpoint, read_checkpoint_metadata, save_checkpoint
from mmadfer.cli import main
from mmadfer.data.synthetic import SYNTH_CLASSES, write_synthetic_dataset
from mmadfer.evaluation.report import SECTIONS
from mmadfer.model.mmadfer import MMADFER
from mmadfer.train.config import TrainConfig

COMMON = ["--dataset", "folder", "--fold", "1", "--num-workers", "0", "--device", "cpu"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalcli")
    data = root / "synth"
    write_synthetic_dataset(data, 40, size=32, raw=False)  # fold 1: 32 train, 8 test clips
    cfg = TrainConfig.preset("synthetic").model.model_config(SYNTH_CLASSES)
    torch.manual_seed(0)
    model = MMADFER(cfg).eval()
    with torch.no_grad():  # an over-confident model: large logits, random ranking
        model.head.weight.mul_(30.0)
    ckpt = save_checkpoint(model, root / "overconfident.safetensors", include_frozen=True)
    return root, data, ckpt


def _ece(conf: np.ndarray, correct: np.ndarray) -> float:
    total = 0.0
    for b in range(15):  # [b/15, (b+1)/15), the last bin closed
        lo, hi = b / 15, (b + 1) / 15
        inside = (conf >= lo) & ((conf < hi) if b < 14 else (conf <= 1.0))
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    return total


def _uar(y, p):
    return recall_score(y, p, labels=np.unique(y), average="macro")


@pytest.mark.slow
def test_evaluate_numbers_match_an_independent_computation(setup, tmp_path, capsys):
    root, data, ckpt = setup
    ann = pd.read_csv(data / "annotations" / "set_1_train.txt", sep=" ", header=None)
    ids = list(ann[0])
    # ids as the annotation names them, as full paths and as bare names; one unknown id
    shown = [i if k % 3 == 0 else (str(data / i) if k % 3 == 1 else Path(i).name) for k, i in enumerate(ids)]
    groups = pd.DataFrame({"clip": shown + ["clips/not_a_clip"], "camera": (["a", "b"] * 20)[:len(ids)] + ["a"]})
    groups.to_csv(tmp_path / "groups.csv", index=False)
    out = tmp_path / "eval"
    assert main(["evaluate", "-c", str(ckpt), "--data", str(data), *COMMON, "--split", "train", "--out", str(out),
                 "--groups", str(tmp_path / "groups.csv"), "--min-group-n", "5", "--bootstrap", "200", "--seed", "3",
                 "--min-confidence", "0.9", "--price-per-hour", "2", "--report"]) == 0
    assert "UAR" in capsys.readouterr().out
    m = json.loads((out / "metrics.json").read_text())
    preds = pd.read_csv(out / "predictions.csv")
    probs = preds[[f"p_{c}" for c in SYNTH_CLASSES]].to_numpy()
    y, p = preds["label"].to_numpy(), probs.argmax(1)
    conf, correct = probs.max(1), (p == y).astype(float)
    assert len(preds) == 32 and (p == preds["pred"]).all()
    assert m["ece"] == pytest.approx(_ece(conf, correct), abs=1e-5)
    assert m["uar"] == pytest.approx(_uar(y, p)) and m["war"] == pytest.approx(accuracy_score(y, p))
    assert m["nll"] == pytest.approx(log_loss(y, probs / probs.sum(1, keepdims=True), labels=range(4)), rel=1e-4)
    assert m["brier"] == pytest.approx(((probs - np.eye(4)[y]) ** 2).sum(1).mean(), abs=1e-5)
    assert m["ece"] > 0.3  # the model is over-confident: this is what the test is about

    # the intervals: 200 resamples of the rows of predictions.csv, numpy Generator seeded with 3, percentiles
    rng = np.random.default_rng(3)
    reps = {"uar": [], "war": [], "ece": []}
    for _ in range(200):
        idx = rng.integers(0, len(y), size=len(y))
        reps["uar"].append(_uar(y[idx], p[idx]))
        reps["war"].append(accuracy_score(y[idx], p[idx]))
        reps["ece"].append(_ece(conf[idx], correct[idx]))
    for k, r in reps.items():
        assert m["ci95"][k] == pytest.approx(np.percentile(r, [2.5, 97.5]), abs=1e-4), k
        assert m["ci95"][k][0] <= m[k] + 1e-9 or k == "ece"

    # subgroups: the group of each clip, from the CSV, independently; per-group UAR and its interval
    sub = m["subgroups"]
    assert sub["unmatched"] == ["clips/not_a_clip"] and sub["matched"] == 32
    cam = np.array([(["a", "b"] * 20)[k] for k in range(len(ids))])
    order = {str((data / i).resolve()): k for k, i in enumerate(ids)}
    cam_of_row = np.array([cam[order[str(Path(path).resolve())]] for path in preds["path"]])
    rows = {r["group"]: r for r in sub["columns"]["camera"]["groups"]}
    rng = np.random.default_rng(3)
    boot = {"a": [], "b": []}
    for _ in range(200):
        idx = rng.integers(0, len(y), size=len(y))
        for g in boot:
            sel = idx[cam_of_row[idx] == g]
            boot[g].append(_uar(y[sel], p[sel]) if len(sel) else np.nan)
    for g in ("a", "b"):
        sel = cam_of_row == g
        assert rows[g]["n"] == sel.sum() == 16
        assert rows[g]["uar"] == pytest.approx(_uar(y[sel], p[sel]))
        assert rows[g]["ci95"]["uar"] == pytest.approx(np.nanpercentile(boot[g], [2.5, 97.5]), abs=1e-9)
    gap = sub["columns"]["camera"]["gaps"]["uar"]
    assert gap["gap"] == pytest.approx(abs(rows["a"]["uar"] - rows["b"]["uar"]))
    assert gap["flagged"] == (gap["ci95"][0] > 0 or gap["ci95"][1] < 0)

    # abstention and risk-coverage
    kept = conf >= 0.9
    assert m["selective"]["coverage"] == pytest.approx(kept.mean())
    if kept.any():
        assert m["selective"]["covered_accuracy"] == pytest.approx(correct[kept].mean())
    rc = pd.read_csv(out / "risk_coverage.csv")
    risk = np.cumsum(1 - correct[np.argsort(-conf, kind="stable")]) / np.arange(1, len(y) + 1)
    np.testing.assert_allclose(rc["risk"], risk, atol=1e-5)
    assert m["aurc"] == pytest.approx(risk.mean(), abs=1e-5)

    # operating cost: 1.28 s windows of this model, 2813 per hour of video
    oc = m["operating_cost"]
    assert oc["windows_per_video_hour"] == 2813 and oc["clips"] == 32
    assert oc["video_hours_per_hour"] == pytest.approx(oc["clips_per_s"] * 3600 / 2813)
    assert oc["cost_per_video_hour"] == pytest.approx(2 / oc["video_hours_per_hour"])
    for name in ("reliability.png", "risk_coverage.png", "subgroups_camera.png", "confusion.png", "report.html"):
        assert (out / name).is_file(), name
    prov = m["provenance"]
    from mmadfer.io import sha256_file

    assert prov["checkpoint_sha256"] == sha256_file(ckpt) and "--groups" in prov["command"]
    _check_report(out / "report.html", prov["checkpoint_sha256"])


def _check_report(path: Path, sha: str) -> None:
    text = path.read_text(encoding="utf-8")
    for title in SECTIONS:  # no --cost-matrix in this run: that section is left out
        assert (f"<h2>{title}</h2>" in text) == (title != "Cost matrix"), title
    assert '<ul class="verdict">' in text and "by chance (4 classes): " in text and "<strong>model only</strong>" in text
    assert sha in text
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//)""", text, re.I)
    assert "http://" not in text and "https://" not in text and "<script" not in text.lower()
    assert text.count('src="data:image/png;base64,') >= 4
    if CHROMIUM is None:
        pytest.skip("chromium is not installed: the report was checked as text only")
    from playwright import sync_api

    shots = Path(os.environ.get("MMADFER_TEST_ARTIFACTS") or path.parent)
    shots.mkdir(parents=True, exist_ok=True)
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            for name, size in (("evaluation_report.png", {"width": 1200, "height": 900}),
                               ("evaluation_report_phone.png", {"width": 390, "height": 844})):
                page = browser.new_page(viewport=size)
                page.on("request", lambda r: requests.append(r.url))
                page.goto(path.resolve().as_uri())
                assert axe_violations(page) == [], name  # as a reader with assistive technology meets it
                assert overflow(page) <= 0, name  # no sideways scrolling, on a phone too
                page.screenshot(path=str(shots / name), full_page=True)
                page.close()
        finally:
            browser.close()
    assert all(u.startswith(("file:", "data:")) for u in requests), requests  # offline: nothing fetched


def test_calibrate_lowers_heldout_nll_without_changing_labels(setup, tmp_path, capsys):
    root, data, ckpt = setup
    out = tmp_path / "cal.safetensors"
    assert main(["calibrate", "-c", str(ckpt), "--data", str(data), *COMMON, "--split", "train", "--out", str(out),
                 "--report", str(tmp_path / "cal.json")]) == 0
    assert "top-1 labels unchanged" in capsys.readouterr().out
    res = json.loads((tmp_path / "cal.json").read_text())
    t = res["temperature"]
    assert t > 1.5 and res["heldout"]["nll_after"] < res["heldout"]["nll_before"]
    assert res["fit_clips"] + res["heldout_clips"] == 32
    cal = load_checkpoint(out)
    assert cal.cfg.temperature == pytest.approx(t)
    assert read_checkpoint_metadata(out)["extra"]["calibration"]["temperature"] == pytest.approx(t)
    before, after = tmp_path / "before", tmp_path / "after"
    for c, o in ((ckpt, before), (out, after)):
        assert main(["evaluate", "-c", str(c), "--data", str(data), *COMMON, "--split", "train", "--out", str(o),
                     "--bootstrap", "0"]) == 0
    pb, pa = pd.read_csv(before / "predictions.csv"), pd.read_csv(after / "predictions.csv")
    assert (pb["pred"] == pa["pred"]).all()  # every top-1 label unchanged
    mb, ma = json.loads((before / "metrics.json").read_text()), json.loads((after / "metrics.json").read_text())
    assert ma["temperature"] == pytest.approx(t) and mb["temperature"] == 1.0
    assert ma["nll"] < mb["nll"] and ma["uar"] == mb["uar"] and "ci95" not in ma
    assert main(["calibrate", "-c", str(ckpt), "--data", str(data), *COMMON, "--out", str(tmp_path / "x.pth")]) == 2


def test_the_temperature_reaches_the_torch_and_onnx_runtimes(tmp_path):
    pytest.importorskip("onnxruntime")
    from mmadfer.config import ModelConfig
    from mmadfer.evaluation.calibration import probabilities
    from mmadfer.export import export_onnx, random_inputs
    from mmadfer.predict import Recognizer

    torch.manual_seed(0)
    model = MMADFER(ModelConfig.tiny(num_classes=4, temperature=3.0)).eval()
    ck = save_checkpoint(model, tmp_path / "t.safetensors")
    onnx = export_onnx(model, tmp_path / "t.onnx")["fp32"]
    video, audio = random_inputs(model.cfg, 3, seed=1)
    with torch.no_grad():
        logits = model(video, audio)
        want, plain = probabilities(logits, 3.0).numpy(), torch.softmax(logits, -1).numpy()
    assert np.abs(want - plain).max() > 1e-3  # T=3 makes a visible difference
    for source, backend in ((ck, "torch"), (onnx, "onnx")):
        rec = Recognizer.from_checkpoint(source, device="cpu", backend=backend, detector=None, precision="fp32")
        assert rec.cfg.temperature == 3.0
        np.testing.assert_allclose(rec.predict_batch(video, audio), want, atol=1e-4)


def test_predict_min_confidence_labels_uncertain_and_keeps_probabilities(setup, tmp_path):
    root, data, ckpt = setup
    raw = tmp_path / "raw"
    write_synthetic_dataset(raw, 1, size=32, num_frames=24, raw=True, folds=1)
    video = next((raw / "raw").glob("*.mp4"))
    plain, strict = tmp_path / "plain.csv", tmp_path / "strict.csv"
    base = ["predict", str(video), "-c", str(ckpt), "--no-faces", "--device", "cpu", "--backend", "torch"]
    assert main([*base, "-o", str(plain)]) == 0
    assert main([*base, "-o", str(strict), "--min-confidence", "1.0"]) == 0
    a, b = pd.read_csv(plain), pd.read_csv(strict)
    assert len(a) >= 1 and (b["label"] == "uncertain").all() and (a["label"] != "uncertain").all()
    pd.testing.assert_frame_equal(a.drop(columns="label"), b.drop(columns="label"))
    assert main([*base, "-o", str(tmp_path / "x.csv"), "--min-confidence", "1.5"]) == 2


def test_the_temperature_reaches_the_openvino_runtime(tmp_path):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    from mmadfer.export import openvino as ovq
    from mmadfer.export.calibration import calibration_inputs
    from mmadfer.config import ModelConfig
    from mmadfer.evaluation.calibration import probabilities
    from mmadfer.export import random_inputs
    from mmadfer.predict import Recognizer

    torch.manual_seed(0)
    model = MMADFER(ModelConfig.tiny(num_classes=4, temperature=3.0)).eval()
    xml = ovq.openvino_int8(model, tmp_path / "t.xml", calibration=calibration_inputs(model.cfg, 4))
    rec = Recognizer.from_checkpoint(xml, detector=None)
    assert rec.backend == "openvino" and rec.cfg.temperature == 3.0
    video, audio = random_inputs(model.cfg, 3, seed=5)
    with torch.no_grad():
        logits = model(video, audio)
    got = rec.predict_batch(video, audio)
    want, plain = probabilities(logits, 3.0).numpy(), torch.softmax(logits, -1).numpy()
    # int8 logits differ a little from fp32's; the temperature must be applied on top of them
    assert np.abs(got - want).max() < 0.05 and np.abs(got - want).max() < np.abs(got - plain).max()
