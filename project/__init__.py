"""Keras 3 home for two classic experiments.

* Paraphrase detection on QQP: RoBERTa (keras-hub), full fine-tuning vs paper-faithful LoRA.
* Credit-card fraud detection: the report's Conv1D ConvNet with ADASYN oversampling under three
  protocols (none, LEAKY adasyn-all, adasyn-train).

Import :mod:`project.backend` (and call :func:`project.backend.select_backend`) before ``keras``
when you want ``--backend`` on a command line to take effect.
"""

import os

# TensorFlow reads this once, when it is first imported (keras-hub imports it on every backend);
# set here, before anything of ours can import it. Level 3 keeps TensorFlow's C++ log off
# stderr: without a GPU it logs "failed call to cuInit" at start-up, and with Keras 3.15 it logs
# a harmless "NodeDef mentions attribute use_unbounded_threadpool" error for every tf.data
# pipeline (so every epoch). Real failures still raise Python exceptions; set the variable
# yourself (e.g. to 0) to see the C++ log.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# TensorFlow 2.21 still prints its INFO lines from before absl::InitializeLog() whatever the
# level; this one-shot import hook filters them out of stderr (see project/quiet_tensorflow.py).
from project import quiet_tensorflow as _quiet_tensorflow  # noqa: E402

_quiet_tensorflow.install()

__version__ = "0.1.0"
