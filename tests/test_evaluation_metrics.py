"""The pure evaluation functions: ECE/MCE/NLL/Brier by hand, temperature recovery, bootstrap coverage, risk-coverage,
subgroup gaps."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, log_loss, recall_score

from mmadfer.evaluation.bootstrap import intervals, scores
from mmadfer.evaluation.calibration import (brier, ece, fit_temperature, mce, nll, probabilities, reliability_bins,
                                            split_halves)
from mmadfer.evaluation.cost import operating_cost
from mmadfer.evaluation.selective import UNCERTAIN, abstain, at_threshold, risk_coverage
from mmadfer.evaluation.subgroups import match_clips, subgroup_report


def test_ece_mce_brier_nll_on_a_hand_made_example():
    # 5 clips, 2 classes. Top-label confidences 0.95, 0.9, 0.6, 0.62, 1.0 (the last exactly 1.0: closed last bin).
    probs = np.array([[0.95, 0.05], [0.1, 0.9], [0.6, 0.4], [0.38, 0.62], [1.0, 0.0]])
    y = np.array([0, 0, 0, 1, 0])  # correct, wrong, correct, correct, correct
    # 15 bins of width 1/15: 0.95 and 1.0 fall in bin 14 [0.9333, 1]; 0.9 in bin 13 [0.8667, 0.9333);
    # 0.6 and 0.62 in bin 9 [0.6, 0.6667).
    # bin 14: acc 1, conf 0.975 -> |gap| 0.025, weight 2/5; bin 13: acc 0, conf 0.9 -> 0.9, weight 1/5;
    # bin 9: acc 1, conf 0.61 -> 0.39, weight 2/5.
    want_ece = 2 / 5 * 0.025 + 1 / 5 * 0.9 + 2 / 5 * 0.39
    assert ece(probs, y) == pytest.approx(want_ece, abs=1e-12)
    assert mce(probs, y) == pytest.approx(0.9, abs=1e-12)
    rel = reliability_bins(probs, y)
    assert rel["count"][14] == 2 and rel["count"][13] == 1 and rel["count"][9] == 2 and sum(rel["count"]) == 5
    assert rel["accuracy"][0] is None
    want_brier = np.mean([2 * 0.05 ** 2, 2 * 0.9 ** 2, 2 * 0.4 ** 2, 2 * 0.38 ** 2, 0.0])
    assert brier(probs, y) == pytest.approx(want_brier, abs=1e-12)
    want_nll = -np.mean([math.log(0.95), math.log(0.1), math.log(0.6), math.log(0.62), math.log(1.0)])
    assert nll(probs, y) == pytest.approx(want_nll, abs=1e-9)
    # two equal-width bins only, to check the bin count is honoured: [0, .5) empty, [.5, 1] holds all 5
    assert ece(probs, y, n_bins=2) == pytest.approx(abs(4 / 5 - probs.max(1).mean()), abs=1e-12)


def test_probabilities_is_softmax_over_temperature_for_numpy_and_torch():
    z = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 3.0]])
    want = np.exp(z / 2) / np.exp(z / 2).sum(1, keepdims=True)
    np.testing.assert_allclose(probabilities(z, 2.0), want, rtol=1e-12)
    np.testing.assert_allclose(probabilities(torch.tensor(z), 2.0).numpy(), want, rtol=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        probabilities(z, 0.0)


@pytest.mark.parametrize("true_t", [0.5, 2.5])
def test_temperature_scaling_recovers_a_known_temperature(true_t):
    rng = np.random.default_rng(1)
    n, c = 4000, 5
    base = rng.normal(0, 2.0, size=(n, c))  # the calibrated logits: labels are drawn from softmax(base)
    p = probabilities(base)
    y = np.array([rng.choice(c, p=row) for row in p])
    logits = base * true_t  # the model's logits are over/under-scaled by T
    t = fit_temperature(logits, y)
    assert t == pytest.approx(true_t, rel=0.05)
    assert (probabilities(logits, t).argmax(1) == logits.argmax(1)).all()  # top-1 unchanged
    assert log_loss(y, probabilities(logits, t)) <= log_loss(y, probabilities(logits)) + 1e-12


def test_split_halves_is_deterministic_disjoint_and_stratified():
    y = np.array([0, 1, 0, 1, 0, 2, 2, 1])
    a, b = split_halves(y)
    assert sorted(np.concatenate([a, b]).tolist()) == list(range(8)) and not set(a) & set(b)
    assert a.tolist() == [0, 1, 4, 5, 7] and b.tolist() == [2, 3, 6]


def test_scores_agree_with_scikit_learn():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y, p = rng.integers(0, 5, 40), rng.integers(0, 5, 40)
        y[y == 4] = 3  # a class never true but possibly predicted
        s = scores(y, p, 5)
        present = np.unique(y)
        assert s["uar"] == pytest.approx(recall_score(y, p, labels=present, average="macro"))
        assert s["war"] == pytest.approx(accuracy_score(y, p))
        assert s["macro_f1"] == pytest.approx(f1_score(y, p, average="macro"))


def test_bootstrap_interval_covers_the_true_accuracy_at_about_the_nominal_rate():
    rng = np.random.default_rng(123)
    true_acc, n, reps, hits = 0.7, 80, 200, 0
    for r in range(reps):
        y = rng.integers(0, 2, n)
        correct = rng.random(n) < true_acc
        pred = np.where(correct, y, 1 - y)
        ci = intervals(lambda idx: {"war": float((pred[idx] == y[idx]).mean())}, n, n_resamples=300, seed=r)["war"]
        hits += ci[0] <= true_acc <= ci[1]
    assert 0.88 <= hits / reps <= 0.99


def test_intervals_are_reproducible_with_a_seed():
    y = np.arange(30) % 3
    stat = lambda idx: {"war": float((y[idx] == 0).mean())}  # noqa: E731
    assert intervals(stat, 30, n_resamples=50, seed=4) == intervals(stat, 30, n_resamples=50, seed=4)
    assert intervals(stat, 30, n_resamples=50, seed=4) != intervals(stat, 30, n_resamples=50, seed=5)


def test_risk_coverage_and_threshold():
    conf = np.array([0.9, 0.8, 0.7, 0.6])
    ok = np.array([True, False, True, False])
    rc = risk_coverage(conf, ok)
    assert rc["coverage"] == [0.25, 0.5, 0.75, 1.0]
    assert rc["risk"] == pytest.approx([0, 1 / 2, 1 / 3, 1 / 2])
    assert rc["aurc"] == pytest.approx(np.mean([0, 1 / 2, 1 / 3, 1 / 2]))
    sel = at_threshold(conf, ok, 0.75)
    assert sel["coverage"] == 0.5 and sel["covered_accuracy"] == 0.5 and sel["covered_clips"] == 2
    table = pd.DataFrame({"label": ["a", "b"], "confidence": [0.4, 0.9], "p_a": [0.4, 0.9]})
    abstain(table, 0.5)
    assert table["label"].tolist() == [UNCERTAIN, "b"] and table["p_a"].tolist() == [0.4, 0.9]


def test_clip_ids_match_full_paths_tails_names_and_stems():
    paths = ["/data/x/clips/a_001", "/data/x/clips/b_002", "/data/y/c_003.mp4", "/d/1/same", "/d/2/same"]
    found, unmatched, ambiguous = match_clips(
        ["/data/x/clips/a_001", "clips/b_002", "c_003", "c_003.mp4", "nope", "same", "2/same"], paths)
    assert found == [0, 1, 2, 2, None, None, 4]
    assert unmatched == ["nope"] and ambiguous == ["same"]


def _grouped(worse: bool, n: int = 200, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    group = np.array(["A", "B"] * (n // 2))
    acc = np.where((group == "B") & worse, 0.45, 0.9)
    correct = rng.random(n) < acc
    pred = np.where(correct, y, (y + 1) % 3)
    probs = np.full((n, 3), 0.1)
    probs[np.arange(n), pred] = 0.8
    paths = [f"/v/clip{i}" for i in range(n)]
    groups = pd.DataFrame({"clip": [f"clip{i}" for i in range(n)], "cohort": group,
                           "tiny": ["t"] * 10 + ["u"] * (n - 10)})
    return probs, y, paths, groups


def test_a_worse_group_is_flagged_and_equal_groups_are_not():
    rep = subgroup_report(*_grouped(worse=True), n_resamples=300)
    gap = rep["columns"]["cohort"]["gaps"]["uar"]
    assert gap["worst"] == "B" and gap["best"] == "A" and gap["flagged"] and gap["ci95"][0] > 0
    rows = {r["group"]: r for r in rep["columns"]["cohort"]["groups"]}
    assert rows["A"]["n"] == 100 and rows["A"]["ci95"]["uar"][0] <= rows["A"]["uar"] <= rows["A"]["ci95"]["uar"][1]
    # a group under min_group_n is reported but cannot be part of a gap
    tiny = rep["columns"]["tiny"]
    assert {r["group"]: r["eligible"] for r in tiny["groups"]} == {"t": False, "u": True}
    assert tiny["gaps"]["uar"]["gap"] is None and not tiny["gaps"]["uar"]["flagged"]

    equal = subgroup_report(*_grouped(worse=False), n_resamples=300)["columns"]["cohort"]["gaps"]["uar"]
    assert not equal["flagged"] and equal["ci95"][0] < 0 < equal["ci95"][1]


def test_operating_cost_arithmetic():
    oc = operating_cost(703, 70.3, windows_per_hour=703, window_s=5.12, stride_s=5.12, device="cpu", backend="torch",
                        price_per_hour=2.0)
    assert oc["clips_per_s"] == pytest.approx(10.0)
    assert oc["video_hours_per_hour"] == pytest.approx(10.0 * 3600 / 703)  # 51.2 h of video per hour
    assert oc["cost_per_video_hour"] == pytest.approx(2.0 / (10.0 * 3600 / 703))


def test_a_groups_file_without_group_columns_is_refused_by_name(tmp_path):
    from mmadfer.evaluation.subgroups import read_groups

    (tmp_path / "g.csv").write_text("clip\na\nb\n")
    with pytest.raises(ValueError, match="g.csv: needs a first column of clip ids and at least one group column"):
        read_groups(tmp_path / "g.csv")
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_groups(tmp_path / "nope.csv")


def test_report_speaks_plain_language_and_leaves_out_empty_sections(tmp_path):
    """A hand-made evaluation: class c never predicted, over-confident, no cost matrix or groups. The verdict says
    so, every metric has its meaning and UAR its chance level, empty sections are gone, the cost is model only."""
    from mmadfer.evaluation.analysis import analyze
    from mmadfer.evaluation.glossary import chance_levels, describe_metric, metric_rows, verdict
    from mmadfer.evaluation.report import write_report
    from mmadfer.metrics import classification_metrics

    y = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    probs = np.array([[0.9, 0.1, 0], [0.8, 0.2, 0], [0.2, 0.8, 0], [0.1, 0.9, 0], [0.05, 0.95, 0], [0.9, 0.1, 0],
                      [0.85, 0.15, 0], [0.1, 0.9, 0]])
    m = classification_metrics(y, probs.argmax(1), ["a", "b", "c"])
    extra = analyze(probs, y, [str(i) for i in range(8)], n_resamples=50)
    m.update(temperature=1.0, **{k: v for k, v in extra.items() if k != "risk_coverage"})
    m["operating_cost"] = operating_cost(8, 2.0, windows_per_hour=703, window_s=5.12, stride_s=5.12, device="cpu",
                                         backend="torch")
    assert chance_levels(m) == {"uar": pytest.approx(1 / 3), "war": pytest.approx(3 / 8)}
    lines = verdict(m)
    assert lines[0].startswith(f"UAR {m['uar']:.2f} against 0.33 by chance (3 classes): ")
    assert "1 class never predicted: c." in lines
    assert any(x.startswith("Confidences overstate accuracy") for x in lines)  # mean confidence 0.87, accuracy 0.5
    assert lines[-1] == "Only 8 clips: every number here is uncertain; read the intervals."
    bare = {k: v for k, v in m.items() if k != "ci95"}  # no bootstrap: a UAR over chance is not "above chance"
    assert verdict(bare)[0].endswith("whether it is above chance is not established (no interval computed).")
    assert [r["key"] for r in metric_rows(m)] == ["uar", "war", "macro_f1", "ece", "mce", "nll", "brier", "aurc"]
    assert describe_metric("ece")["better"] == "lower" and describe_metric("nope") is None

    text = write_report(tmp_path / "report.html", m, provenance={"dataset": "hand"}).read_text(encoding="utf-8")
    for title in ("Summary", "Per-class results", "Confusion matrix", "Calibration", "Risk–coverage",
                  "Operating cost (model only)", "Provenance"):
        assert f"<h2>{title}</h2>" in text, title
    assert "<h2>Cost matrix</h2>" not in text and "<h2>Subgroups</h2>" not in text
    assert "1 class never predicted: c." in text and "Operating cost, <strong>model only</strong>" in text
    for r in metric_rows(m):
        assert r["meaning"] in text.replace("&#x27;", "'")
    assert "<th scope=\"col\">chance</th>" in text and "(chance 0.33)" in text
