"""Seed 003 downstream folder mode: macro P/R/F1 on a toy confusion matrix, McNemar, intervals, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _migration_fixtures import speckle_amplitude, write_png
from sarviz.cli import main
from sarviz.evaluation.downstream_folders import confusion_matrix, macro_scores, mcnemar_exact


def test_macro_scores_against_a_hand_computed_toy_matrix():
    # scikit-learn is not installed here; reference values worked out by hand:
    # rows = true class, columns = predicted
    cm = np.array([[5, 1, 0], [2, 3, 1], [0, 0, 0]])  # class 2 never occurs and is never predicted
    s = macro_scores(cm)
    # precision: 5/7, 3/4, 0 (never predicted: 0, sklearn zero_division=0); recall: 5/6, 3/6, 0 (absent)
    p = (5 / 7 + 3 / 4 + 0) / 3
    r = (5 / 6 + 3 / 6 + 0) / 3
    f1_0 = 2 * (5 / 7) * (5 / 6) / (5 / 7 + 5 / 6)
    f1_1 = 2 * (3 / 4) * (3 / 6) / (3 / 4 + 3 / 6)
    assert s["accuracy"] == pytest.approx(8 / 12)
    assert s["precision"] == pytest.approx(p) and s["recall"] == pytest.approx(r)
    assert s["f1"] == pytest.approx((f1_0 + f1_1 + 0) / 3)
    y_true = np.array([0] * 6 + [1] * 6)
    y_pred = np.array([0, 0, 0, 0, 0, 1, 0, 0, 1, 1, 1, 2])
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, 3), cm)


def test_mcnemar_and_interval_on_known_cases():
    from sarviz.batch.downstream import t_interval

    base = np.array([True] * 10 + [False] * 10)
    arm = np.array([True] * 10 + [True] * 6 + [False] * 4)  # 6 discordant, all for the arm
    m = mcnemar_exact(base, arm)
    assert (m["only_baseline_correct"], m["only_arm_correct"]) == (0, 6)
    assert m["p_value"] == pytest.approx(2 * 0.5**6)
    assert mcnemar_exact(base, base)["p_value"] == 1.0
    t = t_interval([0.5, 0.6, 0.7])  # mean 0.6, sd 0.1, t(0.975, 2) = 4.303
    assert t["mean"] == pytest.approx(0.6)
    assert t["ci_low"] == pytest.approx(0.6 - 4.3027 * 0.1 / np.sqrt(3), abs=1e-4)


def _folder(root, name, looks, n, seed):
    for c, mean in (("dark", 1.0), ("bright", 3.0)):
        (root / name / c).mkdir(parents=True)
        for i in range(n):
            write_png(
                root / name / c / f"{i}.png",
                speckle_amplitude(32, looks, seed + i + (50 if c == "bright" else 0), pattern=c == "bright") * mean,
            )


#: a small torchvision classifier for the arms test: what is under test there is the arms, the
#: seeds, the scores and the report, not the backbone (seed 003's ResNet-50 is checked on its own
#: below; training it 9 times took 75 s of a busy machine's suite)
SMALL_BACKBONE = "shufflenet_v2_x0_5"


def test_folder_mode_builds_the_papers_resnet50():
    """Seed 003's classifier is a ResNet-50 (random init offline): folder mode's default, built by name
    with the classes' head."""
    import inspect

    import torch
    import torchvision

    from sarviz.batch.downstream import build_classifier
    from sarviz.evaluation.downstream_folders import run_downstream_folders

    assert inspect.signature(run_downstream_folders).parameters["models"].default == ("resnet50",)
    # the CLI without --models leaves the choice to the mode: ResNet-50 in folder mode, not the
    # batch mode's ResNet-18 (it used to pass resnet18 to both)
    from sarviz.batch.downstream import DEFAULT_MODELS as BATCH_DEFAULT
    from sarviz.cli import build_parser
    from sarviz.commands.evaluate_downstream import _models
    from sarviz.evaluation.downstream_folders import DEFAULT_MODELS as FOLDER_DEFAULT

    args = build_parser().parse_args(["evaluate-downstream", "--target", "t", "--test", "x"])
    assert args.models is None and _models(args.models) == ()
    assert (FOLDER_DEFAULT, BATCH_DEFAULT) == (("resnet50",), ("resnet18",))
    assert _models(" resnet34, vgg19 ,") == ("resnet34", "vgg19")
    model = build_classifier("resnet50", num_classes=3, input_size=32)
    assert isinstance(model, torchvision.models.ResNet) and model.fc.out_features == 3
    assert isinstance(model.layer1[0], torchvision.models.resnet.Bottleneck)
    assert [len(stage) for stage in (model.layer1, model.layer2, model.layer3, model.layer4)] == [3, 4, 6, 3]
    with torch.no_grad():
        assert model.eval()(torch.zeros(2, 3, 32, 32)).shape == (2, 3)


def test_cli_folder_mode_runs_the_arms(tmp_path, capsys):
    _folder(tmp_path, "target", 4, 2, 0)
    _folder(tmp_path, "old", 1, 2, 100)
    _folder(tmp_path, "migrated", 4, 2, 200)
    _folder(tmp_path, "test", 4, 2, 300)
    code = main(
        [
            "evaluate-downstream",
            "--target",
            str(tmp_path / "target"),
            "--old",
            str(tmp_path / "old"),
            "--migrated",
            str(tmp_path / "migrated"),
            "--test",
            str(tmp_path / "test"),
            "--models",
            SMALL_BACKBONE,
            "--runs",
            "3",
            "--epochs",
            "1",
            "--input-size",
            "32",
            "--batch-size",
            "8",
            "--device",
            "cpu",
            "--data-label",
            "synthetic stand-in (emulator speckle)",
            "--json",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert list(result["models"]) == [SMALL_BACKBONE]
    arms = result["models"][SMALL_BACKBONE]
    assert list(arms) == ["target real", "+ old raw", "+ migrated"]
    assert len(arms["+ migrated"]["mcnemar_per_seed"]) == 3 and arms["target real"]["f1"]["n"] == 3
    assert result["data_label"].startswith("synthetic")
    from sarviz.formats.evaluation_report import DOWNSTREAM_FOLDERS_MD, EvaluationReport

    md = EvaluationReport.load(tmp_path / "evaluation", "downstream-folders").files[DOWNSTREAM_FOLDERS_MD]
    assert "different data" in md and "85.71" in md
    assert (
        main(
            [
                "evaluate-downstream",
                "--target",
                str(tmp_path / "target"),
                "--test",
                str(tmp_path / "test"),
                "--runs",
                "2",
            ]
        )
        == 2
    )
    assert "≥ 3" in capsys.readouterr().err
