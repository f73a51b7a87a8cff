"""Keras 3 home for two classic experiments.

* Paraphrase detection on QQP: RoBERTa (keras-hub), full fine-tuning vs paper-faithful LoRA.
* Credit-card fraud detection: the report's Conv1D ConvNet with ADASYN oversampling under three
  protocols (none, LEAKY adasyn-all, adasyn-train).

Importing the package does nothing else; :func:`project.backend.select_backend` must run before
``keras`` is imported for ``--backend`` to take effect.
"""

__version__ = "0.1.0"
