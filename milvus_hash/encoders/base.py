"""A scikit-learn-compatible estimator base that does not import scikit-learn.

The encoders a query loads (the UGH library, the LSH hasher) are on every command that encodes a
picture, and ``import sklearn.base`` costs about 1.3 s here (it pulls in SciPy's statistics,
pandas and pyarrow): more than the whole search once Milvus Lite runs. :class:`Estimator` gives
them what they used from ``BaseEstimator`` and ``TransformerMixin`` (``get_params``,
``set_params``, ``fit_transform``, a readable ``repr``), keeps ``sklearn.base.clone`` and
scikit-learn's pipelines working (``__sklearn_tags__`` imports scikit-learn only when
scikit-learn itself asks); :mod:`.validation` checks input as ``check_array`` and
``check_is_fitted`` do.
"""

from __future__ import annotations

import inspect

from ..errors import expected


class Estimator:
    """Hyper-parameters are the keyword arguments of ``__init__`` stored under their own names;
    learned state ends in ``_`` (scikit-learn's convention, which ``get_params`` relies on)."""

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values()
                      if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))

    def get_params(self, deep: bool = True) -> dict:
        """The hyper-parameters, as scikit-learn's ``get_params`` (``deep`` is accepted: none nests)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params) -> "Estimator":
        names = self._param_names()
        for name, value in params.items():
            if name not in names:
                raise expected(name, f"a hyper-parameter of {type(self).__name__} (one of {names})", repr(value))
            setattr(self, name, value)
        return self

    def fit_transform(self, X, y=None, **fit_params):
        return self.fit(X, y, **fit_params).transform(X)

    def __sklearn_tags__(self):  # called by scikit-learn only, which is then imported already
        from sklearn.utils import Tags, TargetTags, TransformerTags

        return Tags(estimator_type=None, target_tags=TargetTags(required=False),
                    transformer_tags=TransformerTags() if hasattr(self, "transform") else None)

    def __repr__(self) -> str:
        defaults = {name: p.default for name, p in inspect.signature(type(self).__init__).parameters.items()}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if defaults.get(k, object()) != v]
        return f"{type(self).__name__}({', '.join(changed)})"
