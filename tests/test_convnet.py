import keras
import numpy as np
from sklearn.metrics import average_precision_score

from project.data.creditcard import load_creditcard, split_and_scale
from project.models.convnet import build_convnet, compile_convnet
from project.models.saving import load_model, save_model
from project.training.loop import fit_epoch


def test_parameter_counts_match_the_report():
    model = build_convnet()
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert model.count_params() == 33_505
    assert trainable == 33_313


def test_layer_sequence_is_the_reports():
    kinds = [type(layer).__name__ for layer in build_convnet().layers]
    assert kinds == [
        "InputLayer", "Reshape",
        "Conv1D", "BatchNormalization", "MaxPooling1D", "Dropout",
        "Conv1D", "BatchNormalization", "MaxPooling1D", "Dropout",
        "Flatten", "Dense", "Dropout", "Dense", "Dense",
    ]
    model = build_convnet()
    assert model.get_layer("conv1").filters == 32 and model.get_layer("conv2").filters == 64
    assert model.get_layer("drop2").rate == 0.5
    assert model.output.shape == (None, 1)


def test_compiled_with_binary_cross_entropy_and_accuracy_only():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 29)).astype("float32")
    y = (rng.random((64, 1)) < 0.3).astype("float32")
    model = compile_convnet(build_convnet())
    logs = fit_epoch(model, x, y, batch_size=32, epoch=0, seed=0)
    assert set(logs) == {"loss", "accuracy"}  # the expensive metrics are not per step
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert np.isclose(float(model.optimizer.learning_rate), 1e-4)
    p = np.clip(model.predict(x, verbose=0).astype("float64"), 1e-7, 1 - 1e-7)
    loss, accuracy = model.evaluate(x, y, batch_size=64, verbose=0)
    expected_loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert np.isclose(loss, expected_loss, rtol=1e-4)
    assert np.isclose(accuracy, np.mean((p > 0.5) == (y > 0.5)))


def test_short_training_beats_the_all_normal_classifier(small_creditcard):
    split = split_and_scale(load_creditcard(small_creditcard))
    keras.utils.set_random_seed(0)
    model = compile_convnet(build_convnet(), learning_rate=1e-3)
    for epoch in range(4):  # as scripts/fraud.py trains: one fit per epoch, pre-shuffled
        fit_epoch(model, split.x_train, split.y_train[:, None].astype("float32"),
                  batch_size=64, epoch=epoch, seed=0)
    scores = model.predict(split.x_test, verbose=0).ravel()
    # a constant score (the all-normal classifier) has PR-AUC equal to the fraud rate
    baseline = split.y_test.mean()
    assert average_precision_score(split.y_test, scores) > 5 * baseline


def test_keras_round_trip_gives_equal_predictions(tmp_path):
    model = build_convnet()
    x = np.random.default_rng(0).standard_normal((50, 29)).astype("float32")
    path = save_model(model, tmp_path / "model.keras")
    again = load_model(path)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
