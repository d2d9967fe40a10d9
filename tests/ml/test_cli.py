import json
import subprocess
import sys

from tests import csvs


def _run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "ml", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_cli_trains_exports_and_evaluates_a_user_file(tmp_path, repo_root):
    data = csvs.keypoints_csv(tmp_path / "data.csv", n=24, gz=True)
    out = tmp_path / "model"
    trained = _run(
        "train",
        "--task",
        "keypoints",
        "--data",
        str(data),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--quantize",
        "uint8",
        cwd=repo_root,
    )
    assert trained.returncode == 0, trained.stderr
    assert (out / "model.json").is_file() and (out / "quantized-uint8" / "model.json").is_file()
    assert (out / "plots" / "per_point_error.png").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] > 0 and metrics["rmse_px"] > 0

    evaluated = _run("evaluate", "--model", str(out), "--data", str(data), "--json", cwd=repo_root)
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout[evaluated.stdout.index("{") :])
    assert report["n"] == 24 and report["rmse_px"] > 0

    wrong = _run("evaluate", "--task", "emotion", "--model", str(out), "--data", str(data), cwd=repo_root)
    assert wrong.returncode != 0 and "kaggle-keypoints file" in wrong.stderr


def test_cli_evaluates_only_five_class_rows_with_a_usage_filter(tmp_path, repo_root, tiny_exports):
    rows = [csvs.fer_row(c, c, "PublicTest" if c % 2 else "Training") for c in range(7)]
    data = csvs.write(tmp_path / "fer.csv", csvs.FER_HEADER, rows)
    done = _run(
        "evaluate",
        "--model",
        str(tiny_exports / "emotion"),
        "--data",
        str(data),
        "--usage",
        "PublicTest",
        "--json",
        cwd=repo_root,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout[done.stdout.index("{") :])
    assert report["n"] == 3  # PublicTest rows of disgust, happy and surprise; fear (2) is not a product class
