"""Over-sampling for imbalanced classes: :class:`ADASYN` (pure NumPy)."""

from project.sampling.adasyn import ADASYN

__all__ = ["ADASYN"]
