"""UAR / WAR / per-class metrics against values worked out by hand, the cost matrix, and the written reports."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from mmadfer.metrics import classification_metrics, load_cost_matrix, write_evaluation

NAMES = ["a", "b", "c", "d"]
#: rows: true class, columns: predicted. Class d has no clip (but is predicted once).
CM = np.array([
    [3, 1, 0, 0],
    [2, 4, 1, 1],
    [0, 1, 5, 0],
    [0, 0, 0, 0],
])


def _labels_from(cm: np.ndarray) -> tuple[list[int], list[int]]:
    y_true, y_pred = [], []
    for t in range(cm.shape[0]):
        for p in range(cm.shape[1]):
            y_true += [t] * cm[t, p]
            y_pred += [p] * cm[t, p]
    return y_true, y_pred


def test_uar_war_per_class_match_hand_computation():
    y_true, y_pred = _labels_from(CM)
    m = classification_metrics(y_true, y_pred, NAMES)
    # recalls: a 3/4, b 4/8, c 5/6; d has no clip and is left out of the mean
    assert m["uar"] == pytest.approx((3 / 4 + 4 / 8 + 5 / 6) / 3)
    assert m["war"] == pytest.approx(12 / 18)
    assert m["num_clips"] == 18
    assert m["confusion"] == CM.tolist()
    per = {r["class"]: r for r in m["per_class"]}
    assert [per[c]["support"] for c in NAMES] == [4, 8, 6, 0]
    assert per["a"]["recall"] == pytest.approx(0.75) and per["b"]["recall"] == pytest.approx(0.5)
    assert per["d"]["recall"] is None  # undefined, not 0
    # precisions: a 3/5, b 4/6, c 5/6; d predicted once, never right
    assert per["a"]["precision"] == pytest.approx(3 / 5)
    assert per["b"]["precision"] == pytest.approx(4 / 6)
    assert per["c"]["precision"] == pytest.approx(5 / 6)
    assert per["d"]["precision"] == 0.0


def test_uar_differs_from_war_under_imbalance():
    # 9 clips of class 0 all right, 1 clip of class 1 wrong: WAR 0.9, UAR 0.5
    m = classification_metrics([0] * 9 + [1], [0] * 10, ["x", "y"])
    assert m["war"] == pytest.approx(0.9)
    assert m["uar"] == pytest.approx(0.5)


def test_expected_cost_per_clip():
    y_true, y_pred = _labels_from(CM)
    cost = np.ones((4, 4)) - np.eye(4)
    cost[1, 3] = 5.0  # calling a 'b' clip 'd' is five times as bad
    m = classification_metrics(y_true, y_pred, NAMES, cost)
    # mistakes: a->b 1, b->a 2, b->c 1, b->d 1 (x5), c->b 1  => 1 + 2 + 1 + 5 + 1 = 10 over 18 clips
    assert m["expected_cost"] == pytest.approx(10 / 18)
    with pytest.raises(ValueError, match="4x4"):
        classification_metrics(y_true, y_pred, NAMES, np.ones((3, 3)))


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="zero clips"):
        classification_metrics([], [], NAMES)
    with pytest.raises(ValueError, match="y_pred"):
        classification_metrics([0, 1], [0, 7], NAMES)


def test_load_cost_matrix_labelled_in_any_order_and_bare(tmp_path):
    want = np.arange(16, dtype=float).reshape(4, 4)
    order = [2, 0, 3, 1]
    labelled = pd.DataFrame(want[np.ix_(order, order)], index=[NAMES[i] for i in order],
                            columns=[NAMES[i] for i in order])
    labelled.to_csv(tmp_path / "named.csv")
    np.testing.assert_array_equal(load_cost_matrix(tmp_path / "named.csv", NAMES), want)
    np.savetxt(tmp_path / "bare.csv", want, delimiter=",")
    np.testing.assert_array_equal(load_cost_matrix(tmp_path / "bare.csv", NAMES), want)


@pytest.mark.parametrize("text, message", [
    ("1,2\n3,4\n", "4x4"),
    ("x,a,b,c,e\na,0,1,1,1\nb,1,0,1,1\nc,1,1,0,1\ne,1,1,1,0\n", "class names"),
    ("0,1,1,1\n1,0,1,1\n1,1,zero,1\n1,1,1,0\n", "number"),
    ("0,1,1,1\n1,0,1,1\n1,1,nan,1\n1,1,1,0\n", "finite"),
])
def test_load_cost_matrix_errors_name_the_file(tmp_path, text, message):
    path = tmp_path / "cost.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as e:
        load_cost_matrix(path, NAMES)
    assert str(path) in str(e.value)
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        load_cost_matrix(tmp_path / "missing.csv", NAMES)


def test_write_evaluation_reports(tmp_path):
    y_true, y_pred = _labels_from(CM)
    m = classification_metrics(y_true, y_pred, NAMES, np.ones((4, 4)) - np.eye(4))
    preds = pd.DataFrame({"index": range(len(y_true)), "label": y_true, "pred": y_pred})
    files = write_evaluation(tmp_path, m, preds)
    for name in ("metrics.json", "per_class.csv", "confusion.csv", "confusion_normalized.csv", "confusion.png",
                 "predictions.csv"):
        assert (tmp_path / name).is_file(), name
    assert set(files) >= {"metrics", "per_class", "confusion", "confusion_normalized", "predictions", "confusion_png"}
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["uar"] == pytest.approx(m["uar"]) and saved["per_class"][3]["recall"] is None
    counts = pd.read_csv(tmp_path / "confusion.csv", index_col=0)
    np.testing.assert_array_equal(counts.to_numpy(), CM)
    assert list(counts.columns) == NAMES
    norm = pd.read_csv(tmp_path / "confusion_normalized.csv", index_col=0).to_numpy()
    np.testing.assert_allclose(norm[:3], CM[:3] / CM[:3].sum(1, keepdims=True), atol=1e-6)
    assert all(math.isnan(x) for x in norm[3])  # no clip of class d: undefined, not zero
    per = pd.read_csv(tmp_path / "per_class.csv")
    assert list(per["class"]) == NAMES and list(per["support"]) == [4, 8, 6, 0]
    assert (tmp_path / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
