"""Keras 3 home for two classic experiments.

* Paraphrase detection on QQP: RoBERTa (keras-hub), full fine-tuning vs paper-faithful LoRA.
* Credit-card fraud detection: the report's Conv1D ConvNet with ADASYN oversampling under three
  protocols (none, LEAKY adasyn-all, adasyn-train).

Import :mod:`project.backend` (and call :func:`project.backend.select_backend`) before ``keras``
when you want ``--backend`` on a command line to take effect.
"""

__version__ = "0.1.0"
