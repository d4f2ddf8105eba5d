"""`mmadfer train`, `evaluate`, `cv` and `ablate` end to end on a small synthetic set, through the CLI entry point,
and the Python API (`fit`, `evaluate_model`) the other commands build on."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mmadfer.cli import main
from mmadfer.data.synthetic import SYNTH_CLASSES, write_synthetic_dataset

FAST = ["--config", "synthetic", "--set", "train.tensorboard=false", "--num-workers", "0"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "synth"
    write_synthetic_dataset(root, 40, size=32, raw=False)  # each fold: 32 train, 8 test clips
    return root


def test_train_writes_the_run_folder_and_evaluate_reproduces_it(data, tmp_path):
    run = tmp_path / "run"
    assert main(["train", *FAST, "--data", str(data), "--out", str(run), "--epochs", "2",
                 "--set", "train.eval_every=1", "--set", "train.tensorboard=true"]) == 0
    for name in ("config.yaml", "log.csv", "curves.png", "final.safetensors", "metrics.json", "eval/metrics.json",
                 "eval/per_class.csv", "eval/confusion.csv", "eval/confusion_normalized.csv", "eval/confusion.png",
                 "eval/predictions.csv"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    log = pd.read_csv(run / "log.csv")
    assert log["epoch"].tolist() == [1, 2] and log["test_uar"].notna().all()
    assert {"train_loss", "train_acc", "lr", "clips_per_s", "wait_pct"} <= set(log.columns)
    assert log["lr"][1] < log["lr"][0]  # per-epoch cosine
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["num_clips"] == 8 and metrics["class_names"] == list(SYNTH_CLASSES)
    assert metrics["uar"] == log["test_uar"].iloc[-1] and metrics["training"]["epochs"] == 2

    import mmadfer

    model = mmadfer.load_checkpoint(run / "final.safetensors")
    assert model.cfg.labels == SYNTH_CLASSES
    from mmadfer.checkpoints import read_checkpoint_metadata

    assert read_checkpoint_metadata(run / "final.safetensors")["extra"]["uar"] == metrics["uar"]

    cost = tmp_path / "cost.csv"
    pd.DataFrame(1 - np.eye(4), index=SYNTH_CLASSES, columns=SYNTH_CLASSES).to_csv(cost)
    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(run / "final.safetensors"), "--data", str(data), "--dataset",
                 "folder", "--fold", "1", "--cost-matrix", str(cost), "--out", str(out), "--num-workers", "0"]) == 0
    again = json.loads((out / "metrics.json").read_text())
    assert (again["uar"], again["war"], again["confusion"]) == (metrics["uar"], metrics["war"], metrics["confusion"])
    assert again["expected_cost"] == pytest.approx(1 - again["war"])  # 0/1 costs: the error rate
    preds = pd.read_csv(out / "predictions.csv")
    assert len(preds) == 8 and {"path", "label_name", "pred_name", "cost", "p_calm-low"} <= set(preds.columns)
    np.testing.assert_allclose(preds.filter(like="p_").sum(axis=1), 1.0, atol=1e-5)


def test_a_bad_clip_is_skipped_and_named(data, tmp_path, capsys):
    broken = tmp_path / "synth"
    shutil.copytree(data, broken)
    victim = pd.read_csv(broken / "annotations" / "set_1_test.txt", sep=" ", header=None)[0][0]
    for f in (broken / victim).glob("*.jpg"):
        f.write_bytes(b"not a jpeg")
    run = tmp_path / "run"
    assert main(["train", *FAST, "--data", str(broken), "--out", str(run), "--epochs", "1"]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert m["num_clips"] == 7 and [Path(s["path"]).name for s in m["skipped"]] == [Path(victim).name]
    assert main(["evaluate", "--checkpoint", str(run / "final.safetensors"), "--data", str(broken), "--dataset",
                 "folder", "--out", str(tmp_path / "e"), "--num-workers", "0", "--on-bad-sample", "raise"]) == 2
    assert victim.split("/")[-1] in capsys.readouterr().err


def test_cv_summarises_folds_and_resumes(data, tmp_path, capsys):
    out = tmp_path / "cv"
    args = ["cv", *FAST, "--data", str(data), "--folds", "1,3", "--out", str(out), "--epochs", "1"]
    assert main(args) == 0
    summary = pd.read_csv(out / "summary.csv")
    assert summary["fold"].astype(str).tolist() == ["1", "3", "mean", "std"]
    per_fold = [json.loads((out / f"fold{k}" / "metrics.json").read_text()) for k in (1, 3)]
    assert summary["UAR"][:2].tolist() == pytest.approx([m["uar"] for m in per_fold])
    assert summary["UAR"][2] == pytest.approx(np.mean([m["uar"] for m in per_fold]))
    assert summary["WAR"][3] == pytest.approx(np.std([m["war"] for m in per_fold], ddof=1))
    md = (out / "summary.md").read_text()
    assert "mean ± std" in md and "| 3 |" in md
    from mmadfer.evaluation.report import SECTIONS

    report = (out / "report.html").read_text()  # the evaluation report over folds, mean ± sd
    empty = ("Cost matrix", "Subgroups")  # no cost matrix, no groups: those sections are left out
    assert all((f"<h2>{t}</h2>" in report) == (t not in empty) for t in SECTIONS)
    assert "http://" not in report and "https://" not in report and "what it means" in report
    assert f"{np.mean([m['uar'] for m in per_fold]):.4f} ± " in report

    # an interrupted fold 3 (no final checkpoint) resumes from its state; fold 1 is not retrained
    (out / "fold3" / "final.safetensors").unlink()
    capsys.readouterr()
    assert main(args) == 0
    err = capsys.readouterr().err
    assert f"{out / 'fold1'}: already finished" in err
    assert "resumed from" in err and "fold3" in err
    assert pd.read_csv(out / "summary.csv").equals(summary)


def test_ablate_compares_variants(data, tmp_path):
    out = tmp_path / "ablate"
    assert main(["ablate", *FAST, "--data", str(data), "--fold", "2", "--out", str(out), "--epochs", "1",
                 "--variants", "full,video_only,no_fusion"]) == 0
    table = pd.read_csv(out / "ablation.csv").set_index("variant")
    assert table.index.tolist() == ["full", "video_only", "no_fusion"]
    params = table["trainable parameters"]
    assert params["video_only"] < params["no_fusion"] < params["full"]
    assert table["UAR"].between(0, 1).all() and "| video_only |" in (out / "ablation.md").read_text()
    from mmadfer.train.config import TrainConfig

    assert TrainConfig.from_yaml(out / "video_only" / "config.yaml").model.arch["modality"] == "video"


def test_fit_and_evaluate_model_python_api(data, tmp_path):
    from mmadfer.data.datasets import build_dataset
    from mmadfer.train.config import TrainConfig
    from mmadfer.train.engine import evaluate_model, fit

    cfg = TrainConfig.preset("synthetic", [f"data.root={data}", f"run_dir={tmp_path / 'api'}", "train.epochs=1",
                                           "train.tensorboard=false", "data.num_workers=0"])
    result = fit(cfg)
    assert set(result) >= {"run_dir", "checkpoint", "metrics"} and Path(result["checkpoint"]).is_file()
    assert 0 <= result["metrics"]["uar"] <= 1 and "war" in result["metrics"]
    import mmadfer

    model = mmadfer.load_checkpoint(result["checkpoint"])
    test = build_dataset("folder", data, fold=1, split="test", preprocess=model.cfg.preprocess)
    m = evaluate_model(model, test, batch_size=3, device="cpu")
    assert (m["uar"], m["war"]) == (result["metrics"]["uar"], result["metrics"]["war"])


def test_synthetic_preset_writes_its_own_data(tmp_path):
    from mmadfer.train.config import TrainConfig

    out = tmp_path / "run"
    assert main(["train", "--config", "synthetic", "--out", str(out), "--epochs", "1", "--set", "data.synth_clips=20",
                 "--set", "train.tensorboard=false"]) == 0
    assert (out / "synthetic-data" / "classes.txt").is_file()
    assert TrainConfig.from_yaml(out / "config.yaml").data.root == str(out / "synthetic-data")
    assert json.loads((out / "metrics.json").read_text())["num_clips"] == 4


@pytest.mark.slow
def test_evaluate_accepts_a_reference_checkpoint(data, tmp_path):
    reference = pytest.importorskip("reference")  # tests/reference.py: the golden recipe (../shared/golden)
    if not (reference.GOLDEN / "official_b2_224.json").is_file():
        pytest.skip("golden files not available")
    ckpt = reference.save_reference_container(
        reference.reference_state_dict(num_classes=4, img_size=32, check_sums=False), tmp_path / "ref.pth")
    lines = (data / "annotations" / "set_1_test.txt").read_text().splitlines()[:2]  # 2 clips: ViT-B is slow on a CPU
    (data / "annotations" / "set_1_two.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "eval"
    try:
        assert main(["evaluate", "--checkpoint", str(ckpt), "--data", str(data), "--dataset", "folder", "--split",
                     "two", "--out", str(out), "--num-workers", "0"]) == 0
    finally:
        (data / "annotations" / "set_1_two.txt").unlink()
    m = json.loads((out / "metrics.json").read_text())
    assert m["num_clips"] == 2 and m["class_names"] == list(SYNTH_CLASSES)
    assert len(pd.read_csv(out / "predictions.csv")) == 2


@pytest.mark.slow
def test_regional_compile_trains_like_eager(data, tmp_path):
    """``train.compile=regional`` (each repeated layer compiled on its own; the short last batch padded) follows the
    eager run's losses and writes a normal checkpoint."""
    from torch._dynamo.utils import counters

    import mmadfer

    runs = {}
    for kind in ("false", "regional"):
        torch._dynamo.reset()
        counters.clear()
        run = tmp_path / kind
        assert main(["train", *FAST, "--data", str(data), "--out", str(run), "--epochs", "1", "--batch-size", "6",
                     "--set", f"train.compile={kind}"]) == 0
        runs[kind] = pd.read_csv(run / "log.csv"), mmadfer.load_checkpoint(run / "final.safetensors")
        assert (counters["stats"]["unique_graphs"] > 0) == (kind == "regional")  # compiled only when asked
    (eager_log, eager), (log, model) = runs["false"], runs["regional"]
    assert log["train_loss"].tolist() == pytest.approx(eager_log["train_loss"].tolist(), rel=1e-4)
    for (name, p), q in zip(model.named_parameters(), eager.parameters()):
        assert torch.allclose(p, q, atol=1e-4), name


def test_evaluate_with_an_int8_backend_scores_like_fp32(data, tmp_path, capsys):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    run = tmp_path / "run"
    assert main(["train", *FAST, "--data", str(data), "--out", str(run), "--epochs", "1"]) == 0
    common = ["evaluate", "--checkpoint", str(run / "final.safetensors"), "--data", str(data), "--dataset", "folder",
              "--fold", "1", "--num-workers", "0"]
    assert main([*common, "--out", str(tmp_path / "fp32")]) == 0
    assert main([*common, "--out", str(tmp_path / "int8"), "--backend", "openvino-int8",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    assert list((tmp_path / "cache" / "openvino").glob("final-*.int8.xml"))  # converted once, kept
    fp32, int8 = (pd.read_csv(tmp_path / kind / "predictions.csv") for kind in ("fp32", "int8"))
    assert len(int8) == len(fp32) == 8 and (int8["path"] == fp32["path"]).all()
    diff = np.abs(int8.filter(like="p_").to_numpy() - fp32.filter(like="p_").to_numpy()).max()
    assert 0 < diff < 0.05  # quantised, so not identical, but close
    assert json.loads((tmp_path / "int8" / "metrics.json").read_text())["num_clips"] == 8
    capsys.readouterr()
    assert main([*common, "--out", str(tmp_path / "x"), "--backend", "onnx-int8", "--precision", "bf16"]) == 2
    assert "apply to --backend torch" in capsys.readouterr().err
