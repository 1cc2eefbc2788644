"""UGH, unsupervised generic hashing (the first encoder): a library of linear hash functions
hyper-trained once from unlabeled features, and short few-shot codes on top of it.

- :mod:`.sampling`: Max-Min sampling of pseudo-categories;
- :mod:`.svm`, :mod:`.dbc`: batched linear SVMs and DBC max-margin codes;
- :mod:`.calibration`: Platt calibration;
- :mod:`.hypertrain`: one hyper-training round (sample, DBC, expand, calibrate);
- :mod:`.library`: :class:`UGHLibrary`, the estimator of many rounds (``fit`` / ``transform`` /
  ``save`` / ``load``); :mod:`.checkpoints`: its finished rounds kept on disk so a fit resumes;
- :mod:`.fewshot`: :class:`CCACoder`, the default few-shot code on library codes;
- :mod:`.selection`: :class:`L1BitSelector`, the paper's L1-SVM bit selection;
- :mod:`.background`: :class:`~.background.Background`, the unlabeled sample few-shot codes learn against.

Names load on first use, so defining a category (:mod:`.fewshot`) never imports torch (the library's
hyper-training) or scikit-learn's SVMs (the L1 selection).
"""

from ..._lazy import lazy_exports

_EXPORTS = {"CCACoder": ".fewshot", "UGHLibrary": ".library", "L1BitSelector": ".selection"}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
