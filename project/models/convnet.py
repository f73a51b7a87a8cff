"""The report's Conv1D ConvNet for credit-card fraud detection.

Each transaction's 29 standardised features are read as a 1-D signal with one channel::

    Conv1D(32, 2, relu) → BatchNorm → MaxPool1D(2) → Dropout(0.2)
    → Conv1D(64, 2, relu) → BatchNorm → MaxPool1D(2) → Dropout(0.5)
    → Flatten → Dense(64, relu) → Dropout(0.2) → Dense(64, relu) → Dense(1, sigmoid)

33,505 parameters, 33,313 trainable (the BatchNorm moving statistics are not). Trained with Adam
(1e-4), binary cross-entropy, batch 360, 46 epochs in the report.

Example:

>>> model = build_convnet()
>>> model.count_params()
33505
"""

from __future__ import annotations

import keras
from keras import layers

from project.settings import FRAUD_LEARNING_RATE


def build_convnet(input_length: int = 29) -> keras.Model:
    """Build (not compile) the report's ConvNet: ``(batch, input_length)`` features in, a
    (batch, 1) sigmoid out (a functional ``keras.Model`` named ``"fraud_convnet"``)."""
    inputs = keras.Input(shape=(input_length,), name="features")
    x = layers.Reshape((input_length, 1), name="as_signal")(inputs)
    x = layers.Conv1D(32, 2, activation="relu", name="conv1")(x)
    x = layers.BatchNormalization(name="bn1")(x)
    x = layers.MaxPooling1D(2, name="pool1")(x)
    x = layers.Dropout(0.2, name="drop1")(x)
    x = layers.Conv1D(64, 2, activation="relu", name="conv2")(x)
    x = layers.BatchNormalization(name="bn2")(x)
    x = layers.MaxPooling1D(2, name="pool2")(x)
    x = layers.Dropout(0.5, name="drop2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(64, activation="relu", name="dense1")(x)
    x = layers.Dropout(0.2, name="drop3")(x)
    x = layers.Dense(64, activation="relu", name="dense2")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="fraud_probability")(x)
    return keras.Model(inputs, outputs, name="fraud_convnet")


def compile_convnet(model: keras.Model, learning_rate: float = FRAUD_LEARNING_RATE,
                    grad_accum: int = 1, **compile_kwargs):
    """Compile ``model`` (returned) with the report's Adam and binary cross-entropy, averaging
    the gradients of ``grad_accum`` batches per update (1: off); ``compile_kwargs`` go to
    ``model.compile``. The only per-step metric is accuracy: the others are computed once per
    epoch elsewhere (per-step updates of those cost more than the network itself on a CPU).

    Example:

    >>> import numpy as np
    >>> model = compile_convnet(build_convnet())
    >>> x, y = np.zeros((8, 29), "float32"), np.zeros((8, 1), "float32")
    >>> sorted(model.fit(x, y, batch_size=4, verbose=0).history)
    ['accuracy', 'loss']
    """
    adam = keras.optimizers.Adam(
        learning_rate, gradient_accumulation_steps=grad_accum if grad_accum > 1 else None)
    model.compile(optimizer=adam, loss="binary_crossentropy",
                  metrics=[keras.metrics.BinaryAccuracy(name="accuracy")], **compile_kwargs)
    return model
