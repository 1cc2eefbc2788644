"""UGH, unsupervised generic hashing (the first encoder): a library of linear hash functions
hyper-trained once from unlabeled features, and short few-shot codes on top of it.

- :mod:`.sampling`: Max-Min sampling of pseudo-categories;
- :mod:`.svm`, :mod:`.dbc`: batched linear SVMs and DBC max-margin codes;
- :mod:`.calibration`: Platt calibration;
- :mod:`.hypertrain`: one hyper-training round (sample, DBC, expand, calibrate);
- :mod:`.library`: :class:`UGHLibrary`, the estimator of many rounds (``fit`` / ``transform`` /
  ``save`` / ``load``);
- :mod:`.fewshot`: :class:`CCACoder`, the default few-shot code on library codes;
- :mod:`.selection`: :class:`L1BitSelector`, the paper's L1-SVM bit selection.
"""

from .fewshot import CCACoder
from .library import UGHLibrary
from .selection import L1BitSelector

__all__ = ["CCACoder", "L1BitSelector", "UGHLibrary"]
