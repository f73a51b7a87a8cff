"""Published numbers to put beside ours, copied from the course report (the real
``creditcard.csv``; RoBERTa-large on 1% of balanced Kaggle QQP) and from Hu et al. (2021, LoRA).
The bundled synthetic samples cannot be compared with them.
"""

#: The report's fraud results on the real creditcard.csv (threshold 0.5, 46 epochs).
REPORT_FRAUD = {
    ("none", "val"): dict(accuracy=0.99951, precision=0.83505, recall=0.87097, f1=0.85263),
    ("none", "test"): dict(accuracy=0.99919, precision=0.7234, recall=0.77273, f1=0.74725),
    ("adasyn-all", "val"): dict(accuracy=1.0, precision=1.0, recall=1.0, f1=1.0),
    ("adasyn-all", "test"): dict(accuracy=0.9993, precision=0.99884, recall=0.99975, f1=0.9993),
    ("adasyn-train", "val"): dict(accuracy=0.99884, precision=0.59574, recall=0.90323, f1=0.71795),
    ("adasyn-train", "test"): dict(accuracy=0.99851, precision=0.51034, recall=0.84091, f1=0.31759),
}
#: The last F1 above is inconsistent with its own precision and recall.
REPORT_FRAUD_SLIP = (
    "The report's adasyn-train test F1 (0.31759) does not follow from its own precision and "
    "recall (their harmonic mean is 0.635): a slip in the report."
)
#: The real creditcard.csv: rows and frauds (how a run knows it was given the real file).
REAL_CREDITCARD = dict(rows=284_807, frauds=492)

#: The report's QQP results: RoBERTa-large, 299 validation pairs.
REPORT_QQP = {
    "full": dict(val_accuracy=0.82, val_loss=0.43, f1=(0.81, 0.83), trainable=355_361_794,
                 minutes=41),
    "lora": dict(val_accuracy=0.88, val_loss=0.35, f1=(0.87, 0.89), trainable=2_231_298,
                 minutes=28),
}
#: The LoRA paper, RoBERTa-large on QQP (GLUE dev), median of 5 seeds.
PAPER_QQP = {"full": dict(accuracy=0.922), "lora": dict(accuracy=0.916, trainable_lora=786_432)}
