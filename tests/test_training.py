"""The shared training pieces: the evaluator's numbers, best-epoch choice, history files,
checkpoints, and the loop's resume and early stopping."""

import csv

import keras
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score

from project.backend import seed_everything
from project.errors import InputError
from project.settings import monitor_mode
from project.training.callbacks import BestEpoch, write_history
from project.training.checkpoint import load_checkpoint, read_state
from project.training.loop import epoch_order, train
from project.training.metrics import (
    binary_cross_entropy,
    choose_threshold,
    evaluate_scores,
    positive_scores,
    softmax_cross_entropy,
)


def test_evaluation_counts_scores_and_intervals():
    y = np.array([0, 0, 0, 1, 1, 1, 0, 1])
    s = np.array([0.1, 0.7, 0.2, 0.8, 0.4, 0.9, 0.3, 0.6])
    r = evaluate_scores(y, s, threshold=0.5, class_names=("no", "yes"), n_boot=200)
    # predicted 1: indices 1, 3, 5, 7 -> TP 3 (3, 5, 7), FP 1 (1), FN 1 (4), TN 3
    assert r.confusion_matrix == [[3, 1], [1, 3]]
    assert r.precision == 0.75 and r.recall == 0.75 and r.accuracy == 0.75
    assert r.per_class["no"]["support"] == 4
    assert r.average_precision == pytest.approx(average_precision_score(y, s))
    assert "yes" in r.classification_report
    assert set(r.intervals) == {"accuracy", "precision", "recall", "f1", "average_precision",
                                "roc_auc"}
    assert r.intervals["accuracy"][0] <= 0.75 <= r.intervals["accuracy"][1]
    assert "scores" not in r.to_dict() and r.to_dict()["n"] == 8
    assert set(r.epoch_logs()) >= {"val_accuracy", "val_average_precision", "val_f1"}


def test_losses_match_keras():
    y = np.array([0, 1, 1, 0])
    p = np.array([0.2, 0.9, 0.6, 0.0])
    expected = keras.losses.BinaryCrossentropy()(y[:, None].astype("float32"),
                                                 p[:, None].astype("float32"))
    assert binary_cross_entropy(y, p) == pytest.approx(float(expected), rel=1e-5)
    logits = np.array([[1.0, -1.0], [0.5, 2.0], [0.0, 0.0], [3.0, 1.0]])
    expected = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, logits)
    assert softmax_cross_entropy(y, logits) == pytest.approx(float(expected), rel=1e-5)


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


def test_monitor_mode_minimises_losses_and_maximises_scores():
    assert monitor_mode("val_loss") == "min" and monitor_mode("loss") == "min"
    assert monitor_mode("val_accuracy") == "max" and monitor_mode("val_average_precision") == "max"
    assert monitor_mode("val_loss", "max") == "max"
    with pytest.raises(InputError, match="^monitor_mode 'up' is not one of max, min$"):
        monitor_mode("val_loss", "up")
    best = BestEpoch("val_loss")
    for epoch, value in enumerate([0.9, 0.5, float("nan"), 0.7, 0.4], start=1):
        best.update(value, epoch)
    assert (best.epoch, best.value) == (5, 0.4)


def test_history_csv_counts_epochs_from_one(tmp_path):
    write_history(tmp_path / "h.csv", {"val_loss": [0.5, 0.4], "loss": [0.6, 0.3]})
    rows = list(csv.DictReader(open(tmp_path / "h.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert list(rows[0]) == ["epoch", "loss", "val_loss"] and float(rows[1]["loss"]) == 0.3


def _tiny_model(seed=0, dropout=0.3):
    seed_everything(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dropout(dropout), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(0.05),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    return model


def _data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    return x, (x[:, 0] + 0.3 * x[:, 1] > 0).astype("int64")


def _validate(x, y):
    def validate(model):
        logits = np.asarray(model.predict(x, verbose=0))
        return evaluate_scores(y, positive_scores(logits), loss=softmax_cross_entropy(y, logits),
                               n_boot=0).epoch_logs()
    return validate


def _run(tmp_path, epochs, model=None, **kwargs):
    x, y = _data()
    xv, yv = _data(40, seed=1)
    model = model or _tiny_model()
    result = train(model, x, y, validate=_validate(xv, yv), epochs=epochs, batch_size=16, seed=3,
                   monitor=kwargs.pop("monitor", "val_loss"),
                   checkpoint=tmp_path / "checkpoint.safetensors", data_id="d", verbose=0,
                   **kwargs)
    return model, result


def test_checkpoint_round_trip_restores_model_and_optimizer(tmp_path):
    model, _ = _run(tmp_path / "a", epochs=2)
    state = read_state(tmp_path / "a" / "checkpoint.safetensors")
    assert state["epochs_done"] == 2 and state["data_id"] == "d"
    other = _tiny_model(seed=1)
    other.optimizer.build(other.trainable_variables)
    load_checkpoint(tmp_path / "a" / "checkpoint.safetensors", other)
    for a, b in zip(model.variables + model.optimizer.variables,
                    other.variables + other.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_resumed_training_equals_uninterrupted_training(tmp_path):
    full_model, full = _run(tmp_path / "full", epochs=4)
    _run(tmp_path / "part", epochs=2)  # "killed" after epoch 2: only its checkpoint survives
    resumed_model, resumed = _run(tmp_path / "part", epochs=4, model=_tiny_model())
    assert resumed.resumed_from == 2 and resumed.epochs_run == 4
    assert resumed.history["loss"] == full.history["loss"]
    assert resumed.history["val_loss"] == full.history["val_loss"]
    assert resumed.best_epoch == full.best_epoch
    for a, b in zip(full_model.weights, resumed_model.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_best_epoch_weights_are_restored_in_the_right_direction(tmp_path):
    model, result = _run(tmp_path, epochs=4)
    assert result.mode == "min"
    losses = result.history["val_loss"]
    assert result.best_epoch == int(np.argmin(losses)) + 1
    x, y = _data(40, seed=1)
    assert _validate(x, y)(model)["val_loss"] == pytest.approx(min(losses), abs=1e-6)


def test_patience_stops_early(tmp_path):
    model = _tiny_model()
    model.optimizer.learning_rate.assign(0.0)  # nothing improves after epoch 1
    _, result = _run(tmp_path, epochs=6, model=model, patience=2, monitor="val_accuracy")
    assert result.epochs_run == 3 and result.best_epoch == 1


def test_a_checkpoint_of_other_data_or_another_model_is_refused(tmp_path):
    _run(tmp_path, epochs=1)
    x, y = _data()
    with pytest.raises(InputError, match="training data differs"):
        train(_tiny_model(), x, y, validate=_validate(x, y), epochs=2, batch_size=16, seed=3,
              monitor="val_loss", checkpoint=tmp_path / "checkpoint.safetensors", data_id="other",
              verbose=0)
    bigger = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    bigger.compile(optimizer="adam", loss="mse")
    with pytest.raises(InputError, match="another model|shape"):
        load_checkpoint(tmp_path / "checkpoint.safetensors", bigger)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_damaged_checkpoint_is_one_clear_error(tmp_path, damage):
    _run(tmp_path, epochs=1)
    path = tmp_path / "checkpoint.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"not a checkpoint")
    with pytest.raises(InputError, match="damaged") as err:
        load_checkpoint(path, _tiny_model())
    assert "\n" not in str(err.value)


def test_epoch_order_depends_only_on_seed_and_epoch():
    a = epoch_order(50, seed=1, epoch=2)
    assert sorted(a.tolist()) == list(range(50))
    assert (a == epoch_order(50, seed=1, epoch=2)).all()
    assert not (a == epoch_order(50, seed=1, epoch=3)).all()
