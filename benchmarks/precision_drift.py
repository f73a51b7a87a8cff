"""bfloat16 against float32 on the bundled samples: the same runs (seed 0) in both precisions,
and the float32 models' predictions recomputed in bfloat16 (the README's drift table).

    KERAS_BACKEND=jax python -m benchmarks.precision_drift OUT_DIR [FRAUD_EPOCHS] [QQP_EPOCHS]

Prints JSON: per part, the metric changes (bf16 minus float32) and the largest score change of
the trained runs, and the largest probability / logit change of the same weights in bfloat16.
About 4 minutes per backend on 2 CPU cores.
"""
import json
import sys

import numpy as np

from project.backend import select_backend

METRICS = ("loss", "accuracy", "f1", "average_precision", "roc_auc")


def in_bfloat16(model):
    """The same weights computing in bfloat16 (output layer float32, as training uses)."""
    from project.keras_internals import all_layers, forget_traced_functions
    for layer in all_layers(model):
        if layer.dtype_policy.name == "float32" and layer is not model.layers[-1]:
            layer.dtype_policy = "mixed_bfloat16"
    forget_traced_functions(model)
    return model


def drift(out: str, fraud_epochs: int = 10, qqp_epochs: int = 3) -> dict:
    """Train both experiments in float32 and mixed_bfloat16 under ``out``; returns the report."""
    import keras

    from project.experiments import fraud, qqp
    from project.experiments.config import FraudConfig, QQPConfig
    from project.models.roberta import detached_preprocessor
    from project.models.saving import load_model
    report = {"backend": keras.backend.backend()}
    experiments = {
        "fraud": (fraud.run, lambda p: FraudConfig(epochs=fraud_epochs, baselines=False,
                                                    precision=p).validate(), "protocol"),
        "qqp": (qqp.run, lambda p: QQPConfig(epochs=qqp_epochs, precision=p).resolve(), "mode")}
    for name, (run, make, key) in experiments.items():
        results = {p: run(make(p), f"{out}/{name}-{p}", verbose=0, log=lambda line: None)
                   for p in ("float32", "mixed_bfloat16")}
        for a, b in zip(results["float32"].runs, results["mixed_bfloat16"].runs):
            entry = report[f"{name}:{getattr(a, key)}"] = {}
            for split in ("val", "test"):
                ea, eb = a.evaluations().get(split), b.evaluations().get(split)
                if ea is None:
                    continue
                entry[split] = {m: round(getattr(eb, m) - getattr(ea, m), 5) for m in METRICS}
                entry[split]["scores_max_abs_diff"] = float(np.abs(ea.scores - eb.scores).max())
                entry[split]["float32"] = {m: round(getattr(ea, m), 5) for m in METRICS}
            # Inference only: the float32 run's saved model, computing in float32 and in bfloat16.
            path = f"{out}/{name}-float32/{a.directory}/model.keras"
            if name == "fraud":
                from project.data.creditcard import load_creditcard, split_and_scale

                x = split_and_scale(load_creditcard(FraudConfig().data)).x_val
                f32 = load_model(path).predict(x, batch_size=4096, verbose=0)
                bf16 = in_bfloat16(load_model(path)).predict(x, batch_size=4096, verbose=0)
                entry["inference_prob_max_abs_diff"] = float(np.abs(f32 - bf16).max())
            else:
                x = qqp.prepare(make("float32")).features["validation"]
                m32, m16 = load_model(path), in_bfloat16(load_model(path))
                with detached_preprocessor(m32), detached_preprocessor(m16):
                    f32 = m32.predict(x, verbose=0)
                    bf16 = m16.predict(x, verbose=0)
                entry["inference_logit_max_abs_diff"] = float(np.abs(f32 - bf16).max())
                entry["inference_argmax_changes"] = int((f32.argmax(1) != bf16.argmax(1)).sum())
    return report


if __name__ == "__main__":  # python -m benchmarks.precision_drift OUT [FRAUD_EPOCHS] [QQP_EPOCHS]
    select_backend([])  # KERAS_BACKEND; before keras is imported
    print(json.dumps(drift(sys.argv[1], *map(int, sys.argv[2:4])), indent=1))
