"""Adapting to a team's own footage (issue 19): the labels store, labelled spans -> dataset split by video,
``train --init`` from a checkpoint of another class set, ``evaluate --compare`` with paired statistics (checked
against an independent computation from the two prediction files), annotator kappa and ``learning-curve``."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import binomtest, chi2
from sklearn.metrics import cohen_kappa_score, recall_score

from mmadfer.checkpoints import read_checkpoint_metadata
from mmadfer.cli import main
from mmadfer.data.annotations import grouped_folds, read_reference_annotation
from mmadfer.data.inhouse import INHOUSE_CLASSES, write_inhouse_task
from mmadfer.data.labels import LabelStore, Span, check_labels, conflicts, paired_spans, read_labels
from mmadfer.data.prepare import span_clip_id
from mmadfer.evaluation.agreement import cohen_kappa
from mmadfer.evaluation.compare import compare_predictions, mcnemar
from mmadfer.media.encode import write_video
from mmadfer.train.init import rebuild_head

FAST = ["--config", "synthetic", "--set", "train.tensorboard=false", "--num-workers", "0"]


# -- the labels store --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def footage(tmp_path_factory) -> Path:
    """A folder with one 2-second video (``a.mp4``)."""
    root = tmp_path_factory.mktemp("footage")
    frames = np.random.default_rng(0).integers(0, 255, (50, 32, 32, 3), dtype=np.uint8)
    write_video(root / "a.mp4", frames, 25.0)
    return root


def test_label_store_writes_atomically_with_undo_and_checks_each_span(footage, tmp_path):
    labels = footage / "labels.csv"
    store = LabelStore(labels)
    first = store.add(Span("a.mp4", 0.0, 0.8, "neutral", annotator="ana"))[0]
    store.add(Span("a.mp4", 0.6, 1.2, "confused", annotator="ana"), Span("a.mp4", 0.6, 1.2, "neutral",
                                                                            annotator="bo"))
    assert first.video_sha256 and first.created  # content hash and time filled in
    spans = read_labels(labels)
    assert len(spans) == 3 and [s.line for s in spans] == [2, 3, 4]
    with open(labels, newline="") as f:
        assert next(csv.reader(f)) == ["video", "video_sha256", "track_id", "start_s", "end_s", "label",
                                       "annotator", "created"]
    # contradictory spans of one annotator are reported, not merged; two annotators on one span are not a conflict
    found = conflicts(spans)
    assert [(c.kind, c.a.label, c.b.label) for c in found] == [("contradictory", "neutral", "confused")]
    assert "contradictory" in found[0].line(labels) and str(labels) in found[0].line(labels)
    assert [(a.label, b.label) for a, b in paired_spans(spans, "ana", "bo")] == [("confused", "neutral")]
    # undo restores the version before each change, and stops when there is none
    assert store.undo() and len(read_labels(labels)) == 1
    assert store.undo() and not labels.read_text().strip().splitlines()[1:]
    assert not store.undo()
    assert not list(labels.parent.glob(".labels.csv.*"))  # no temporary left behind

    # validation: one line per bad span naming the file, its line and the reason
    store.add(Span("a.mp4", 0.0, 1.0, "neutral"), Span("a.mp4", 1.5, 3.5, "neutral"),
              Span("a.mp4", 0.0, 1.0, "bored"), Span("gone.mp4", 0.0, 1.0, "neutral"))
    problems = [m for _, m in check_labels(read_labels(labels), labels, class_names=("neutral", "confused"))]
    assert len(problems) == 3, problems
    assert any("ends after the video" in p and ":4:" in p for p in problems)
    assert any("unknown class 'bored'" in p for p in problems)
    assert any("gone.mp4 is missing" in p for p in problems)
    assert all(p.startswith(f"{labels}:") and "\n" not in p for p in problems)
    changed = tmp_path / "a.mp4"  # the same labels next to a different video of the same name: detected by hash
    changed.write_bytes((footage / "a.mp4").read_bytes() + b"\0")
    moved = tmp_path / "labels.csv"
    moved.write_text(labels.read_text())
    assert any("has changed since it was labelled" in m for _, m in check_labels(read_labels(moved), moved))
    bad = tmp_path / "bad.csv"
    bad.write_text("video,start_s,end_s,label\na.mp4,2,1,x\n")
    with pytest.raises(ValueError, match=r"bad.csv:2: the span 2-1s is empty"):
        read_labels(bad)


def test_span_clip_ids_say_which_video():
    """The web app keeps every video as ``jobs/<id>/video``: the folder is in the clip's name."""
    assert span_clip_id(Span("jobs/ab12/video", 1.0, 2.5, "x", "1")) == "ab12_video_t1_0001000-0002500"
    assert span_clip_id(Span("/data/footage/a b.mp4", 0.0, 1.0, "x")) == "footage_a_b_t0_0000000-0001000"
    assert span_clip_id(Span("a.mp4", 0.0, 1.0, "x")) == "a_t0_0000000-0001000"


def test_kappa_head_rebuild_and_grouped_folds_are_what_they_claim():
    a = ["x", "y", "x", "z", "x", "y"]
    b = ["x", "y", "y", "z", "x", "x"]
    k = cohen_kappa(a, b, ["x", "y", "z"])
    assert k["kappa"] == pytest.approx(cohen_kappa_score(a, b))
    assert k["per_class"][0]["kappa"] == pytest.approx(cohen_kappa_score([v == "x" for v in a],
                                                                         [v == "x" for v in b]))
    # the classifier: rows reused by class name (case-insensitive), fresh rows for new classes, the rest untouched
    sd = {"head.weight": torch.arange(6.0).view(3, 2), "head.bias": torch.tensor([0.0, 1.0, 2.0]), "x": torch.ones(1)}
    fresh_w, fresh_b = torch.full((2, 2), -1.0), torch.full((2,), -1.0)
    out, change = rebuild_head(sd, ["happy", "sad", "fear"], ["Sad", "engaged"], fresh_w, fresh_b)
    assert out["head.weight"].tolist() == [[2.0, 3.0], [-1.0, -1.0]] and out["head.bias"].tolist() == [1.0, -1.0]
    assert (change.reused, change.new, change.dropped) == (["Sad"], ["engaged"], ["happy", "fear"])
    assert out["x"] is sd["x"] and sd["head.weight"].shape == (3, 2)  # pure: the input is not modified
    assert "reused rows for Sad" in change.line() and "new rows for engaged" in change.line()
    # folds by video: a video's clips never sit in two folds
    groups = [f"v{i // 5}" for i in range(40)]
    folds = grouped_folds([i % 3 for i in range(40)], groups, 4, seed=1)
    assert all(len({f for f, g in zip(folds, groups) if g == v}) == 1 for v in set(groups))
    assert sorted(set(folds)) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="3 videos into 4 folds"):
        grouped_folds([0, 1, 2], ["a", "b", "c"], 4)


def _independent(base: pd.DataFrame, new: pd.DataFrame, names, mapping, resamples: int, seed: int):
    """The paired statistics recomputed from the two prediction files without mmadfer's code."""
    new = new.sort_values("path").reset_index(drop=True)
    base = base.set_index("path").loc[new["path"]].reset_index()
    y = np.array([names.index(n) for n in new["label_name"]])
    new_pred = new[[f"p_{c}" for c in names]].to_numpy().argmax(1)
    base_cols = [c for c in base.columns if c.startswith("p_")]
    summed = np.zeros((len(base), len(names) + 1))
    for j, col in enumerate(base_cols):
        target = mapping.get(col[2:]) if mapping else col[2:]
        summed[:, names.index(target) if target in names else len(names)] += base[col].to_numpy()
    base_pred = summed.argmax(1)
    b = int(np.sum((base_pred == y) & (new_pred != y)))
    c = int(np.sum((base_pred != y) & (new_pred == y)))
    p = 1.0 if b + c == 0 else (binomtest(c, b + c).pvalue if b + c < 25
                                else chi2.sf((abs(b - c) - 1) ** 2 / (b + c), 1))
    def uar(truth, pred):  # the mean over the classes present of the share of their clips predicted right
        return np.mean([np.mean(pred[truth == k] == k) for k in np.unique(truth)])

    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(resamples):
        i = rng.integers(0, len(y), size=len(y))
        diffs.append(uar(y[i], new_pred[i]) - uar(y[i], base_pred[i]))
    assert uar(y, new_pred) == pytest.approx(recall_score(y, new_pred, average="macro"))
    return {"b": b, "c": c, "p": p, "uar_diff": uar(y, new_pred) - uar(y, base_pred),
            "war_diff": float(np.mean(new_pred == y) - np.mean(base_pred == y)),
            "ci": np.percentile(diffs, [2.5, 97.5])}


def test_paired_statistics_match_an_independent_computation():
    rng = np.random.default_rng(3)
    names = ["a", "b", "c"]
    n = 120
    y = rng.integers(0, 3, n)
    p_new = rng.dirichlet(np.ones(3), n) + np.eye(3)[y] * 0.6
    p_base = rng.dirichlet(np.ones(3), n)
    frame = lambda p: pd.DataFrame({"path": [f"clips/{i}" for i in range(n)],  # noqa: E731
                                    "label_name": [names[v] for v in y],
                                    **{f"p_{c}": p[:, j] / p.sum(1) for j, c in enumerate(names)}})
    base, new = frame(p_base), frame(p_new).sample(frac=1.0, random_state=0)  # row order must not matter
    got = compare_predictions(base, new, n_resamples=300, seed=7)
    want = _independent(base, new, names, None, 300, 7)
    assert (got["mcnemar"]["base_only"], got["mcnemar"]["new_only"]) == (want["b"], want["c"])
    assert want["b"] + want["c"] >= 25 and got["mcnemar"]["p_value"] == pytest.approx(want["p"])
    assert got["difference"]["uar"]["value"] == pytest.approx(want["uar_diff"])
    assert got["difference"]["war"]["value"] == pytest.approx(want["war_diff"])
    assert got["difference"]["uar"]["ci95"] == pytest.approx(want["ci"])
    # few discordant clips: the exact binomial test
    small = mcnemar(np.array([1, 1, 0, 0, 1] * 4, bool), np.array([1, 1, 1, 1, 0] * 4, bool))
    assert small["method"] == "exact binomial" and small["p_value"] == pytest.approx(binomtest(8, 12).pvalue)
    with pytest.raises(ValueError, match="different test sets"):
        compare_predictions(base, new.iloc[1:])


# -- the whole loop ----------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_label_file_to_a_compared_fine_tuned_model(tmp_path):
    """Synthetic in-house task (own classes, two annotators) -> label file -> prepare --labels -> train --init from
    a checkpoint of the 4-class synthetic task -> evaluate --compare with a class map -> report; and the learning
    curve on the same data, tiny."""
    base = tmp_path / "base"
    assert main(["train", *FAST, "--out", str(base), "--epochs", "1", "--set", "data.synth_clips=16",
                 "--set", "data.synth_size=32"]) == 0
    task = write_inhouse_task(tmp_path / "inhouse", 3, 6, size=32, second_annotator=True, disagree=0.2, seed=2)
    data = tmp_path / "data"
    code = main(["prepare", str(tmp_path / "inhouse" / "videos"), "--labels", str(task["labels"]), "--out", str(data),
                 "--folds", "3", "--no-faces", "--size", "32", "--workers", "1",
                 "--classes", ",".join(INHOUSE_CLASSES)])
    report = json.loads((data / "prepare_report.json").read_text())
    assert code == (1 if report["problems"] else 0)  # disagreements are reported and left out
    assert all("left out" in p for p in report["problems"])
    agreement = json.loads((data / "agreement.json").read_text())
    assert agreement["spans"] == 18 and agreement["first"] == "a" and agreement["second"] == "b"
    for k in (1, 2, 3):  # split by video: no video in two of train / validation / test
        videos = {s: {Path(r.path).name.split("_t0_")[0] for r in read_reference_annotation(
            data / "annotations" / f"set_{k}_{s}.txt", root=data)} for s in ("train", "val", "test")}
        assert not (videos["train"] & videos["test"]) and not (videos["train"] & videos["val"])
        assert len(videos["test"]) == 1
    assert (data / "classes.txt").read_text().split() == list(INHOUSE_CLASSES)

    run = tmp_path / "ft"
    assert main(["train", *FAST, "--dataset", "folder", "--data", str(data), "--fold", "1", "--out", str(run),
                 "--init", str(base / "final.safetensors"), "--epochs", "1", "--trainable", "temporal"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["training"]["init"]["head"]["new"] == list(INHOUSE_CLASSES)  # no class name in common
    assert metrics["training"]["trainable"] == "temporal" and metrics["training"]["balanced"] is True
    assert "early_stopping" in metrics["training"]
    assert read_checkpoint_metadata(run / "final.safetensors")["trained_on"]["init"] == str(base / "final.safetensors")

    out = tmp_path / "compare"
    assert main(["evaluate", "--compare", str(base / "final.safetensors"), str(run / "final.safetensors"),
                 "--dataset", "folder", "--data", str(data), "--fold", "1", "--class-map", str(task["class_map"]),
                 "--bootstrap", "200", "--num-workers", "0", "--out", str(out)]) == 0
    result = json.loads((out / "comparison.json").read_text())
    base_table, new_table = pd.read_csv(out / "base" / "predictions.csv"), pd.read_csv(out / "new" / "predictions.csv")
    assert [c for c in base_table.columns if c.startswith("p_")] == ["p_calm-low", "p_calm-high", "p_animated-low",
                                                                      "p_animated-high"]
    mapping = dict(csv.reader(open(task["class_map"])))
    want = _independent(base_table, new_table, list(INHOUSE_CLASSES), mapping, 200, 0)
    assert (result["mcnemar"]["base_only"], result["mcnemar"]["new_only"]) == (want["b"], want["c"])
    assert result["mcnemar"]["p_value"] == pytest.approx(want["p"])
    assert result["difference"]["uar"]["value"] == pytest.approx(want["uar_diff"])
    assert result["difference"]["uar"]["ci95"] == pytest.approx(want["ci"])
    page = (out / "report.html").read_text()
    for heading in ("Per-class change", "Calibration", "Operating cost", "Annotator agreement", "McNemar"):
        assert heading in page
    # no class map: the report says the base cannot be compared; different test sets: refused in one line
    assert main(["evaluate", "--compare", str(out / "base"), str(out / "new"), "--out", str(tmp_path / "c2")]) == 0
    assert "cannot be compared" in (tmp_path / "c2" / "report.html").read_text()
    new_table.iloc[1:].to_csv(tmp_path / "fewer.csv", index=False)
    assert main(["evaluate", "--compare", str(tmp_path / "fewer.csv"), str(out / "new"),
                 "--out", str(tmp_path / "c3")]) == 2

    curve = tmp_path / "curve"
    assert main(["learning-curve", *FAST, "--dataset", "folder", "--data", str(data), "--fold", "1",
                 "--init", str(base / "final.safetensors"), "--sizes", "1,2", "--repeats", "1", "--epochs", "1",
                 "--out", str(curve)]) == 0
    rows = pd.read_csv(curve / "learning_curve.csv")
    assert sorted(zip(rows["start"], rows["per_class"])) == [("checkpoint", 1), ("checkpoint", 2),
                                                             ("pretraining", 1), ("pretraining", 2)]
    available = np.bincount([r.label for r in read_reference_annotation(data / "annotations" / "set_1_train.txt")])
    want = {n: int(np.minimum(available, n).sum()) for n in (1, 2)}  # n per class, or all a class has
    assert [want[n] for n in rows["per_class"]] == rows["train_clips"].tolist()
    assert rows["uar_lo"].le(rows["uar"]).all() and rows["uar"].le(rows["uar_hi"]).all()
    assert (curve / "learning_curve.png").is_file()
