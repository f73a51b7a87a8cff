import csv

import keras
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score

from project.io import atomic_path, write_json
from project.reporting.tables import markdown_table
from project.training.callbacks import KeepBest
from project.training.loop import fit
from project.training.metrics import (
    choose_threshold,
    evaluation_report,
    positive_scores,
    sparse_metrics,
)


def test_evaluation_report_counts_and_scores():
    y = np.array([0, 0, 0, 1, 1, 1, 0, 1])
    s = np.array([0.1, 0.7, 0.2, 0.8, 0.4, 0.9, 0.3, 0.6])
    r = evaluation_report(y, s, threshold=0.5, class_names=("no", "yes"))
    # predicted 1: indices 1, 3, 5, 7 -> TP 3 (3, 5, 7), FP 1 (1), FN 1 (4), TN 3
    assert r["confusion_matrix"] == [[3, 1], [1, 3]]
    assert r["precision"] == 0.75 and r["recall"] == 0.75 and r["accuracy"] == 0.75
    assert r["per_class"]["no"]["support"] == 4
    assert r["pr_auc"] == pytest.approx(average_precision_score(y, s))
    assert "yes" in r["classification_report"]


def test_choose_threshold_maximises_f1():
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.2).astype(int)
    s = np.clip(y * 0.3 + rng.random(400) * 0.8, 0, 1)
    t = choose_threshold(y, s)
    best = max(f1_score(y, (s >= c).astype(int)) for c in np.unique(s))
    assert f1_score(y, (s >= t).astype(int)) == pytest.approx(best)


def test_positive_scores_reads_sigmoid_and_logits():
    np.testing.assert_allclose(positive_scores(np.array([[0.2], [0.9]])), [0.2, 0.9])
    logits = np.array([[0.0, 0.0], [0.0, np.log(3.0)]])
    np.testing.assert_allclose(positive_scores(logits), [0.5, 0.75])


def _tiny_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(0.5),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=sparse_metrics())
    return model


class _Snapshots(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append([w.copy() for w in self.model.get_weights()])


def test_fit_restores_the_best_epoch_and_logs_time(tmp_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    xv = rng.standard_normal((64, 4)).astype("float32")
    yv = (xv[:, 0] + 0.8 * rng.standard_normal(64) > 0).astype("int64")
    model, snaps = _tiny_model(), _Snapshots()
    # plain keras fit with our keeper and a snapshot of every epoch's weights
    keeper = KeepBest("val_loss", "min")
    model.fit(x, y, validation_data=(xv, yv), epochs=6, batch_size=32, verbose=0,
              callbacks=[snaps, keeper])
    losses = model.history.history["val_loss"]
    best = int(np.argmin(losses))
    assert keeper.best_epoch == best + 1
    for got, want in zip(model.get_weights(), snaps.weights[best]):
        np.testing.assert_array_equal(got, want)

    result = fit(_tiny_model(), x, y, validation_data=(xv, yv), epochs=3, batch_size=32,
                 out_dir=tmp_path, num_samples=len(y), verbose=0)
    assert result.epochs_run == 3 and len(result.epoch_seconds) == 3
    assert result.samples_per_second > 0 and result.peak_rss_mb > 0
    assert result.best_epoch == 1 + int(np.argmax(result.history["val_accuracy"]))
    with open(tmp_path / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and {"epoch_seconds", "samples_per_second", "val_accuracy"} <= set(rows[0])


def test_early_stopping_is_optional(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 4)).astype("float32")
    y = rng.integers(0, 2, 64)
    model = _tiny_model()
    model.optimizer.learning_rate.assign(0.0)  # nothing improves after epoch 1
    result = fit(model, x, y, validation_data=(x, y), epochs=10, batch_size=32,
                 out_dir=tmp_path, num_samples=64, monitor="val_loss", mode="min",
                 patience=2, verbose=0)
    assert result.epochs_run == 3


def test_atomic_writes_leave_nothing_half_written(tmp_path):
    target = tmp_path / "metrics.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text('{"half":')
            raise RuntimeError("interrupted")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    write_json(target, {"a": np.float32(1.5), "b": np.arange(2)})
    assert target.read_text().strip().startswith("{") and list(tmp_path.iterdir()) == [target]


def test_markdown_table():
    text = markdown_table([{"a": "x", "b": 0.12345}, {"a": "y"}], [("a", "A", ""), ("b", "B", ".2f")])
    assert text.splitlines() == ["| A | B |", "|---|---|", "| x | 0.12 |", "| y | – |"]
