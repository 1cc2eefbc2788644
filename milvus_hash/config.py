"""YAML configuration files (``configs/*.yaml``), checked key by key."""

from __future__ import annotations

from pathlib import Path

import yaml

from .errors import InvalidInputError, expected

STORE_KEYS = {"uri": str, "timeout": (int, float), "consistency_level": str}
_INT, _NUM = (int,), (int, float)
UGH_KEYS = {"n_subset": _INT, "n_candidates": _INT, "n_categories": _INT, "per_category": _INT,
            "bits_per_round": _INT, "n_expand": _INT, "n_rounds": _INT, "gamma": _NUM, "lambda1": _NUM,
            "lambda2": (int, float, type(None)), "n_iter": _INT, "holdout": _NUM, "n_jobs": _INT,
            "random_state": (int, type(None)), "solver": (str,)}
UTH_KEYS = {"n_bits": _INT, "backbone": (str,), "weights": (str, type(None)), "activation": (str,),
            "batchnorm": (bool,), "alpha": _NUM, "beta": _NUM, "margin": _NUM, "rotations": (list,),
            "stage1_epochs": _INT, "stage2_epochs": _INT, "lr": _NUM, "stage2_lr": _NUM, "schedule": (str,),
            "momentum": _NUM, "weight_decay": _NUM, "batch_size": _INT, "workers": _INT,
            "random_state": (int, type(None))}
SECTIONS = {"store": STORE_KEYS, "ugh": UGH_KEYS, "uth": UTH_KEYS}


def load_config(path: str | Path) -> dict:
    """Read a milvus-hash YAML file; unknown sections or keys and wrong types are errors."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise expected("config", "a readable YAML file", f"{path} ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"config: {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise expected("config", "a YAML mapping of sections", type(data).__name__)
    for section, body in data.items():
        if section not in SECTIONS:
            raise expected("config", f"sections among {sorted(SECTIONS)}", repr(section))
        if not isinstance(body, dict):
            raise expected(f"config {section}", "a mapping", type(body).__name__)
        for key, value in body.items():
            kinds = SECTIONS[section].get(key)
            if kinds is None:
                raise expected(f"config {section}", f"keys among {sorted(SECTIONS[section])}", repr(key))
            kinds = kinds if isinstance(kinds, tuple) else (kinds,)
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                names = " or ".join(k.__name__ for k in kinds)
                raise expected(f"config {section}.{key}", f"a value of type {names}", repr(value))
    return data
