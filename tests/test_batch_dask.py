"""digitlab.batch on Dask: a local cluster on loopback with 2 worker processes reads folders and
tar shards with bad images mixed in, every input exactly once, also when a worker is killed
mid-run; ``digitlab predict --workers``; predictions over dask arrays, bags and dataframes."""

from __future__ import annotations

import gc
import os
import signal
from collections import Counter

import numpy as np
import pytest
from batch_support import make_inputs, read_output, tiny_model
from conftest import strokes

from digitlab import load_model
from digitlab.batch import predict_rows, predict_to_file
from digitlab.batch.sources import Source
from digitlab.cli import main

pytest.importorskip("distributed", reason="the batch extra (pip install 'digitlab[batch]') is not installed")
from digitlab.batch.dask import DaskRunner, local_cluster, predict_dask  # noqa: E402 - after the skip
from distributed.diagnostics.plugin import SchedulerPlugin  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client():
    """LocalCluster(n_workers=2, processes=True, host="127.0.0.1", dashboard_address=None)."""
    with local_cluster(2) as client:
        yield client


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("dask-model") / "tiny.npz")


@pytest.fixture
def inputs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative names: the workers take them from the client's folder
    return make_inputs(tmp_path, n_files=150, n_shards=3, per_shard=50)


@pytest.fixture(autouse=True)
def time_limit():
    """Each test is stopped after 2 minutes rather than hang on a cluster gone wrong."""

    def expire(*_):
        raise TimeoutError("the test ran for more than 120 s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def check_rows(rows, names, errors, expected):
    """Every input once, in listing order; the planted bad ones with their error; the answers
    those of one plain process (``expected``)."""
    assert [(r["source"], r["item"]) for r in rows] == names
    for row, plain in zip(rows, expected):
        words = errors.get((row["source"], row["item"]))
        if words:
            assert words in row["error"] and row["answer"] is None, row
        else:
            assert row["error"] is None and row["answer"] == plain.answer, row
            assert row["probability"] == pytest.approx(plain.probability, abs=1e-4)


def test_every_input_exactly_once_with_bad_ones_mixed_in(client, inputs, model_file, tmp_path):
    given, names, errors = inputs
    plain = list(predict_rows(model_file, given))
    out = tmp_path / "preds.parquet"
    summary = predict_to_file(model_file, given, out, partition_size=16, runner=DaskRunner(client))
    assert summary.rows == len(names) and summary.errors == len(errors) == 6
    check_rows(read_output(out), names, errors, plain)
    ordered = [row._asdict() for row in predict_rows(model_file, given, partition_size=16, runner=DaskRunner(client))]
    check_rows(ordered, names, errors, plain)


class CountRuns(SchedulerPlugin):
    """Counts, on the scheduler, how often each partition's task is sent to a worker."""

    name = "digitlab-count-runs"

    def __init__(self):
        self.runs = Counter()

    def transition(self, key, start, finish, *args, **kwargs):
        if finish == "processing" and str(key).startswith("digitlab-partition"):
            self.runs[key] += 1


def test_a_worker_killed_mid_run_costs_only_its_partitions(client, inputs, model_file, tmp_path):
    """SIGKILL one worker process while it runs partitions: Dask runs them again on the other
    worker (or on the one its nanny restarts), and the output still holds every input once."""
    given, names, errors = inputs
    plain = list(predict_rows(model_file, given))
    pids = client.run(os.getpid)
    killed = []

    def kill_a_busy_worker(_):
        if killed:
            return
        busy = sorted(client.processing().items(), key=lambda item: -len(item[1]))
        assert busy and busy[0][1], "no partition was running: nothing to kill"
        os.kill(pids[busy[0][0]], signal.SIGKILL)
        killed.append(busy[0])

    client.register_plugin(CountRuns())
    out = tmp_path / "preds.csv"
    summary = predict_to_file(model_file, given, out, partition_size=30, runner=DaskRunner(client),
                              progress=kill_a_busy_worker)
    assert killed and summary.rows == len(names)
    check_rows(read_output(out), names, errors, plain)
    runs = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.plugins[CountRuns.name].runs)
    assert max(runs.values()) >= 2, (killed, runs)  # a partition of the dead worker ran again
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it
    assert set(client.run(os.getpid).values()) != set(pids.values())


def test_runs_one_after_another_with_the_same_model(client, inputs, model_file, tmp_path):
    """Each run scatters the model to the workers and releases it at its end. Scattered under the
    data's hash, every run's copy had the same key: the release of one run reached the scheduler
    as the next sent its copy, the key was forgotten, and the next run's partitions were cancelled
    ("already forgotten")."""
    given, names, errors = inputs
    plain = list(predict_rows(model_file, given))
    for run in range(6):
        out = tmp_path / f"preds-{run}.csv"
        predict_to_file(model_file, given, out, partition_size=30, runner=DaskRunner(client))
        check_rows(read_output(out), names, errors, plain)


def test_finished_partitions_are_not_kept(client, model_file, tmp_path, monkeypatch):
    """The client, and the scheduler a local cluster runs in its process, keep no finished
    partition's inputs: memory does not grow with the number of partitions (Dask's logs of recent
    messages, 1,000 deep by default, would keep them all here)."""
    monkeypatch.chdir(tmp_path)
    summary = predict_to_file(model_file, (f"missing-{i}.png" for i in range(600)), tmp_path / "preds.csv",
                              partition_size=2, runner=DaskRunner(client))
    assert summary.rows == summary.errors == 600
    gc.collect()
    alive = sum(isinstance(o, Source) for o in gc.get_objects())
    assert alive < 100, f"{alive} inputs of 300 finished partitions are still held"


def test_predict_with_workers_from_the_command_line(inputs, model_file, tmp_path, capsys):
    given, names, errors = inputs
    out = tmp_path / "preds.jsonl"
    assert main(["predict", str(model_file), *given, "--output", str(out), "--workers", "2",
                 "--partition-size", "40"]) == 1
    captured = capsys.readouterr()
    assert f"wrote {len(names)} rows to" in captured.out
    assert captured.err.strip() == f"6 of {len(names)} images could not be read: the error column says why"
    check_rows(read_output(out), names, errors, list(predict_rows(model_file, given)))


def test_dask_collections_in_and_out(client, inputs, model_file):
    import dask.array as da
    import dask.bag as db

    given, names, errors = inputs
    model = load_model(model_file)
    images = strokes(300, seed=4)
    probabilities = predict_dask(model_file, da.from_array(images, chunks=(70, 14, 28)))
    assert probabilities.shape == (300, 10) and probabilities.chunks[0] == (70, 70, 70, 70, 20)
    assert np.allclose(probabilities.compute(), model.predict_proba(images), atol=1e-6)
    plain = list(predict_rows(model, given))
    rows = predict_dask(model, db.from_sequence([*given, "missing.png"], npartitions=2)).compute()
    assert rows[-1]["error"] == "no such file or folder"
    check_rows(rows[:-1], names, errors, plain)
    pd = pytest.importorskip("pandas")
    import dask.dataframe as dd

    frame = dd.from_pandas(pd.DataFrame({"path": given, "n": range(len(given))}), npartitions=2)
    result = predict_dask(model_file, frame, column="path").compute()
    assert list(zip(result["source"], result["item"])) == names
    assert result["error"].notna().sum() == len(errors)
    with pytest.raises(Exception, match="N x 28 x 28"):
        predict_dask(model_file, da.zeros((10, 8, 8), dtype=np.uint8))
