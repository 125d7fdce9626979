"""``spinglass-icl train``: files on disk with the right contents, bad input as one line."""

import json

import numpy as np
import pytest
import torch

from spinglass_icl import Instance, TaskConfig, ground_state
from spinglass_icl.cli import main
from spinglass_icl.training import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


ARGS = ["--D", "3", "--N", "5", "--P", "80", "--lam", "0.1", "--test-tasks", "100", "--quiet"]


def test_train_sla_one_trial_writes_everything(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--model", "sla", *ARGS, "--epochs", "300", "--lr", "0.05"]
    rc = main([*argv, "--optimizer", "adam", "--seed", "4", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "relative error" in printed and "instance.npz" in printed
    for f in ("summary.json", "history.csv", "weights.pt", "instance.npz", "weights.npz"):
        assert (out / f).is_file(), f
    summary = json.loads((out / "summary.json").read_text())
    cfg = summary["config"]
    assert (cfg["model"]["name"], cfg["task"]["D"], cfg["task"]["P"]) == ("sla", 3, 80)
    assert (cfg["seed"], cfg["lr"]) == (4, 0.05)
    rel = summary["relative_test_error"]
    assert len(rel["per_trial"]) == 1 and rel["mean"] == rel["per_trial"][0]
    te = summary["test_error"]["mean"]
    assert te == pytest.approx(rel["mean"] * 3 / 3)  # authors: E y~^2 = D/D = 1
    # instance.npz: the solve contract; weights.npz: W of the same problem, at its ground state
    inst = np.load(out / "instance.npz")
    assert inst["S"].shape == (80, 16) and inst["y"].shape == (80,)
    assert (int(inst["D"]), int(inst["N"]), int(inst["P"])) == (3, 5, 80)
    assert float(inst["lam"]) == 0.1 and float(inst["beta"]) == 100.0
    W = np.load(out / "weights.npz")["W"]
    assert W.shape == (4, 4)
    rebuilt = Instance.from_features(
        s=torch.from_numpy(inst["S"]),
        y=torch.from_numpy(inst["y"]),
        lam=0.1,
        config=TaskConfig(3, 5, 80),
    )
    gs = ground_state(rebuilt).reshape(4, 4).numpy()
    assert np.linalg.norm(W - gs) / np.linalg.norm(gs) < 1e-2
    # weights.pt: all trials plus the config that made them; same numbers as the API
    ck = torch.load(out / "weights.pt")
    assert ck["format"] == "spinglass-icl train weights v2"
    assert ck["config"]["model"] == {"name": "sla"} and ck["state"]["W"].shape == (1, 4, 4)
    np.testing.assert_array_equal(ck["state"]["W"][0].numpy(), W)
    api = train(TrainConfig.from_dict(ck["config"]))
    np.testing.assert_array_equal(api.W[0].numpy(), W)
    # history.csv: tidy, one row per (epoch, trial)
    lines = (out / "history.csv").read_text().splitlines()
    assert lines[0] == "epoch,trial,train_loss,test_error,relative_test_error"
    assert lines[1].startswith("0,0,") and lines[-1].startswith("300,0,")


def test_train_many_trials_other_model(tmp_path):
    out = tmp_path / "tf"
    argv = ["train", "--model", "tf", *ARGS, "--trials", "3", "--epochs", "3", "--H", "4"]
    assert main([*argv, "--batch-size", "40", "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert len(s["test_error"]["per_trial"]) == 3
    assert s["test_error"]["stderr"] == pytest.approx(
        np.std(s["test_error"]["per_trial"], ddof=1) / np.sqrt(3)
    )
    assert not (out / "instance.npz").exists() and not (out / "weights.npz").exists()
    ck = torch.load(out / "weights.pt")
    assert ck["state"]["W_1"].shape == (3, 4, 4) and ck["config"]["batch_size"] == 40


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--D", "0"], "D must be"),
        (["--model", "lstm"], "model must be one of"),
        (["--lr", "-1"], "lr must be"),
        (["--optimizer", "lbfgs"], "optimizer must be one of"),
        (["--batch-size", "1000"], "batch_size must be"),
        (["--device", "cuda:7" if not torch.cuda.is_available() else "tpu"], "device must be"),
        (["--beta", "0"], "beta must be"),
        (["--trials", "0"], "trials must be"),
        (["--restarts", "0"], "restarts must be"),
        (["--H", "4"], "H is not a parameter of model 'sla' (its parameters: none)"),
        (["--tasks", "0"], "tasks (the task pool size K) must be an integer >= 1 or 'none'"),
        (["--tasks", "1.5"], "or 'none' (a fresh task per prompt), got '1.5'"),
        (["--tasks", "few"], "got 'few'"),
        (["--tasks", "81", "--assignment", "equal"], "tasks must be <= P = 80 with assignment"),
        (["--tasks", "4", "--pool-seed", "-1"], "pool_seed must be an integer"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, extra, match):
    rc = main(["train", *ARGS, "--epochs", "1", *extra, "--out", str(tmp_path / "x")])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("spinglass-icl: error:") and match in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_restarts_flag_keeps_the_best_of_several_initializations(tmp_path, capsys):
    out = tmp_path / "sa"
    argv = ["train", "--model", "sa", *ARGS, "--trials", "2", "--epochs", "5", "--H", "3"]
    assert main([*argv, "--restarts", "3", "--out", str(out)]) == 0
    assert "restarts=3" in capsys.readouterr().out
    s = json.loads((out / "summary.json").read_text())
    assert len(s["restart"]) == 2 and len(s["restart_loss"][0]) == 3
    assert s["config"]["restarts"] == 3
    for k, r in enumerate(s["restart"]):
        assert s["restart_loss"][k][r] == min(s["restart_loss"][k])


def test_train_with_a_pool_prints_and_writes_e_idg(tmp_path, capsys):
    out = tmp_path / "pool"
    argv = ["train", *ARGS, "--epochs", "30", "--trials", "2", "--tasks", "3", "--pool-seed",
            "2", "--assignment", "equal", "--task-norm", "sphere", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "tasks=3" in printed and "e_IDG (pool)" in printed and "g_task" in printed
    summary = json.loads((out / "summary.json").read_text())
    task = summary["config"]["task"]
    assert (task["tasks"], task["pool_seed"], task["assignment"], task["task_norm"]) == (
        3, 2, "equal", "sphere"
    )  # fmt: skip
    # the same numbers as the API with the same config
    cfg = TrainConfig.from_dict(torch.load(out / "weights.pt", weights_only=False)["config"])
    res = train(cfg)
    assert summary["test_error_idg"]["per_trial"] == res.test_error_idg.absolute.tolist()
    assert summary["gtask"]["per_trial"] == res.gtask.tolist()
    # without --tasks: no e_IDG line, no key
    assert main(["train", *ARGS, "--epochs", "2", "--out", str(tmp_path / "plain")]) == 0
    assert "e_IDG" not in capsys.readouterr().out
    plain = json.loads((tmp_path / "plain" / "summary.json").read_text())
    assert "test_error_idg" not in plain and plain["config"]["task"]["tasks"] is None
