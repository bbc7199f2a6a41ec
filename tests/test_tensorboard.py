"""TensorBoard logs, read back with TensorBoard's own reader and server."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata

import tfnas
from tfnas.plots import running_best

# One process computes the shared `searched_project` fixture for both files.
pytestmark = pytest.mark.xdist_group("searched_project")

COSTS = ("params", "flops", "latency_ms", "predicted_latency_ms", "train_time_s")


def read_run(path):
    accumulator = event_accumulator.EventAccumulator(
        str(path), size_guidance={event_accumulator.TENSORS: 0})
    accumulator.Reload()
    return accumulator


def scalars(run, tag):
    return [(event.step, float(tf.make_ndarray(event.tensor_proto)))
            for event in run.Tensors(tag)]


def finished_in_order(tuner):
    return [tuner.oracle.trials[i] for i in tuner.oracle.end_order]


def test_hparams_experiment_lists_decisions_and_cost_metrics(searched_project):
    root = read_run(searched_project.log_dir)
    content = root.SummaryMetadata(hparams_metadata.EXPERIMENT_TAG).plugin_data.content
    experiment = hparams_metadata.parse_experiment_plugin_data(content)
    hparams = {info.name: info for info in experiment.hparam_infos}
    decisions = {hp.name for hp in searched_project.oracle.get_space().space}
    assert decisions | {"architecture"} == set(hparams)
    assert {v.string_value for v in hparams["layer_0/op"].domain_discrete.values} == {
        "conv3x3", "sepconv3x3", "maxpool3x3"}
    metrics = [info.name.tag for info in experiment.metric_infos]
    assert metrics == ["val_accuracy", *COSTS, "stopped_at_epoch"]


def test_each_trial_is_a_session_with_its_architecture_and_costs(searched_project):
    trials = list(searched_project.oracle.trials.values())
    statuses = {t.status for t in trials}
    assert statuses == {"COMPLETED", "FAILED"}, "the fixture should hold both kinds"
    for trial in trials:
        run = read_run(os.path.join(searched_project.log_dir, trial.trial_id))
        start = hparams_metadata.parse_session_start_info_plugin_data(
            run.SummaryMetadata(hparams_metadata.SESSION_START_INFO_TAG).plugin_data.content)
        logged = {name: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
                  for name, value in start.hparams.items()}
        architecture = tfnas.Architecture.from_trial(trial).values
        assert {k: v for k, v in logged.items() if k != "architecture"} == {
            k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v
            for k, v in architecture.items()}
        assert logged["architecture"].startswith(
            searched_project.hypermodel.describe(architecture)[:40])
        end = hparams_metadata.parse_session_end_info_plugin_data(
            run.SummaryMetadata(hparams_metadata.SESSION_END_INFO_TAG).plugin_data.content)
        if trial.status == "COMPLETED":
            assert end.status == api_pb2.STATUS_SUCCESS
            assert scalars(run, "val_accuracy") == [(0, pytest.approx(trial.score))]
            for name in COSTS:
                assert scalars(run, name) == [
                    (0, pytest.approx(trial.metrics.get_last_value(name), rel=1e-6))]
            curves = read_run(os.path.join(searched_project.log_dir, trial.trial_id,
                                           "execution0", "validation"))
            assert [step for step, _ in scalars(curves, "epoch_accuracy")] == [0, 1]
        else:
            assert end.status == api_pb2.STATUS_FAILURE
            assert "val_accuracy" not in run.Tags()["tensors"]


def test_search_scalars_follow_the_best_so_far(searched_project):
    trials = finished_in_order(searched_project)
    run = read_run(os.path.join(searched_project.log_dir, "search"))
    expected = running_best(
        [t.score if t.status == "COMPLETED" else None for t in trials], "max")
    logged = dict(scalars(run, "best_val_accuracy"))
    assert logged == {n: pytest.approx(b) for n, b in enumerate(expected, start=1)
                      if b is not None}
    by_time = scalars(run, "best_val_accuracy_by_seconds")
    assert [s for s, _ in by_time] == sorted(s for s, _ in by_time)
    assert by_time[-1][1] == pytest.approx(max(t.score for t in trials if t.score))


def test_best_architecture_image_is_a_real_diagram(searched_project):
    run = read_run(os.path.join(searched_project.log_dir, "search"))
    events = run.Tensors("best_architecture")
    assert events
    width, height, png = tf.make_ndarray(events[-1].tensor_proto)
    image = tf.io.decode_png(png).numpy()
    assert image.shape[:2] == (int(height), int(width))
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 10  # not blank


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post(url, body):
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def test_tensorboard_server_serves_the_hparams_experiment(searched_project):
    port = _free_port()
    command = [os.path.join(os.path.dirname(sys.executable), "tensorboard"),
               "--logdir", searched_project.log_dir, "--host", "127.0.0.1",
               "--port", str(port), "--reload_interval", "1", "--load_fast", "false"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/data/plugin/hparams"
    try:
        deadline, groups = time.monotonic() + 60, None
        trials = searched_project.oracle.trials
        while time.monotonic() < deadline:
            try:
                experiment = _post(f"{base}/experiment", {"experimentName": ""})
                groups = _post(f"{base}/session_groups", {
                    "experimentName": "", "allowedStatuses": [
                        "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING",
                        "STATUS_UNKNOWN"],
                    "colParams": [], "startIndex": 0, "sliceSize": 100})
                if groups.get("totalSize") == len(trials):
                    break
            except OSError:
                pass
            time.sleep(0.2)  # the server answers within seconds of starting
        assert groups is not None and groups["totalSize"] == len(trials)
        names = {info["name"] for info in experiment["hparamInfos"]}
        assert {"layer_0/op", "num_layers", "architecture"} <= names
        assert {m["name"]["tag"] for m in experiment["metricInfos"]} >= {
            "val_accuracy", "params"}
        sessions = {s["name"] for g in groups["sessionGroups"] for s in g["sessions"]}
        assert sessions == set(trials)
    finally:
        server.terminate()
        server.wait(timeout=30)


class FormulaMLP(tfnas.spaces.MLPSpace):
    """An MLP space whose 'training' is a formula of the decisions (fast)."""

    def fit(self, hp, model, *args, **kwargs):
        units = [hp.get(f"layer_{i}/units") for i in range(hp.get("num_layers"))]
        return {"val_accuracy": 1 - 1 / (1 + sum(units)), "loss": 1.0}


def test_controller_reward_baseline_and_entropy_are_logged(tmp_path):
    space = FormulaMLP((4,), 2, max_layers=2, units=(4, 64, 256))
    tuner = tfnas.NASTuner(space, oracle="controller", max_trials=5, seed=0,
                           directory=tmp_path, progress=False, measure_latency=False,
                           count_flops=False)
    x, y = np.zeros((4, 4)), np.zeros(4)
    tuner.search(x, y, validation_data=(x, y), epochs=1, verbose=0)
    run = read_run(os.path.join(tuner.log_dir, "search"))
    rewards = scalars(run, "strategy/reward")
    assert [step for step, _ in rewards] == [1, 2, 3, 4, 5]
    scores = [tuner.oracle.trials[i].score for i in tuner.oracle.end_order]
    assert [value for _, value in rewards] == pytest.approx(scores, rel=1e-6)
    baselines = [value for _, value in scalars(run, "strategy/baseline")]
    expected = [scores[0]]  # the moving average starts at the first reward
    for score in scores[1:]:
        expected.append(expected[-1] - (1 - 0.9) * (expected[-1] - score))
    assert baselines == pytest.approx(expected, rel=1e-5)
    assert baselines[-1] == pytest.approx(tuner.oracle.baseline)
    entropies = [value for _, value in scalars(run, "strategy/entropy")]
    assert len(entropies) == 5 and all(value > 0 for value in entropies)
