"""Ready-made PQL definitions in ``configs/baselines/*.yaml``, and building baselines from config.

A template file holds one baseline. A boolean rule::

    name: plan_limit_hit
    description: Hit the free-plan limit (the classic upgrade moment).
    expr: n_plan_limit_hit_all >= 1

A points rule has ``conditions`` and ``threshold`` (and optionally ``half_life``) instead of
``expr``; see :mod:`propensity.baselines.points`. Both are validated with the same config
sections as baselines written inline under ``baselines:`` in a project config.
"""

from __future__ import annotations

import difflib
from collections import Counter
from pathlib import Path

import yaml
from pydantic import ValidationError

from propensity import config
from propensity.baselines.points import PointsBaseline
from propensity.baselines.rules import RuleBaseline
from propensity.errors import ConfigError

__all__ = [
    "TEMPLATE_DIR",
    "Baseline",
    "available_templates",
    "baseline_from_section",
    "baselines_from_config",
    "load_template",
]

# configs/baselines at the repository root (the package is installed editable from the repo).
TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "configs" / "baselines"

Baseline = RuleBaseline | PointsBaseline


def available_templates(directory: Path | None = None) -> list[str]:
    """Names of the template files (without ``.yaml``), sorted."""
    folder = Path(directory) if directory is not None else TEMPLATE_DIR
    return sorted(p.stem for p in folder.glob("*.yaml"))


def load_template(
    name: str, directory: Path | None = None
) -> config.RuleBaseline | config.PointsRule:
    """Read and validate one template into its config section.

    >>> load_template("plan_limit_hit").expr  # doctest: +SKIP
    'n_plan_limit_hit_all >= 1'
    """
    folder = Path(directory) if directory is not None else TEMPLATE_DIR
    path = folder / f"{name}.yaml"
    if not path.is_file():
        names = available_templates(folder)
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"Did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            f"Baseline template {name!r} does not exist in {str(folder)!r}. {hint}"
            f"Available templates: {', '.join(names) or '(none)'}."
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"Baseline template {str(path)!r} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(
            f"Baseline template {str(path)!r} must be a mapping with 'name' and either 'expr' or "
            f"'conditions' and 'threshold'."
        )
    section = config.PointsRule if "conditions" in raw else config.RuleBaseline
    try:
        return section.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"Baseline template {str(path)!r} is invalid: {problems}.") from None


def baseline_from_section(section: config.RuleBaseline | config.PointsRule) -> Baseline:
    """The unfitted estimator for one config section."""
    if isinstance(section, config.PointsRule):
        return PointsBaseline.from_config(section)
    return RuleBaseline.from_config(section)


def baselines_from_config(
    cfg: config.BaselinesConfig, directory: Path | None = None
) -> list[Baseline]:
    """Unfitted estimators for the templates, then the inline rules, then the points rules.

    Names must be unique across all three, since results are reported by name.
    """
    sections: list[config.RuleBaseline | config.PointsRule] = [
        load_template(name, directory) for name in cfg.templates
    ]
    sections += [*cfg.rules, *cfg.points]
    counts = Counter(s.name for s in sections)
    duplicates = sorted(name for name, n in counts.items() if n > 1)
    if duplicates:
        raise ConfigError(
            f"Baseline names must be unique; {', '.join(map(repr, duplicates))} appear more than "
            f"once under 'baselines:' (templates included). Rename one of them."
        )
    return [baseline_from_section(s) for s in sections]
