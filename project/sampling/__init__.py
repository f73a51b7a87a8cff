"""Over-sampling for imbalanced classes: :class:`ADASYN`, and the exact blocked k-NN it uses."""

from project.sampling.adasyn import ADASYN
from project.sampling.knn import kneighbors

__all__ = ["ADASYN", "kneighbors"]
