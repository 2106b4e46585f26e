"""Aha moments and a readable PQL rule the data supports, learned on the training slice.

- :func:`rank_behaviours`: candidate behaviours from the spec's own vocabulary (counts in a
  window, "A then B", active teammates, active days, property values), ranked by how much they
  separate converters beyond everything else the users did, with honest, simultaneous
  intervals (``rank.py`` says how multiple testing is handled);
- :func:`suggest_rule`: a rule of at most three conditions in the rules grammar, for a target
  volume, to be judged out of time like any other baseline;
- :func:`propose_milestones`: "A before B" milestones for a starter config.

See docs/discover.md.
"""

from propensity.discover.milestones import candidate_milestones, propose_milestones
from propensity.discover.rank import BEHAVIOUR_COLUMNS, Behaviours, rank_behaviours, split_halves
from propensity.discover.rule import SuggestedRule, rule_conditions, suggest_rule

__all__ = [
    "BEHAVIOUR_COLUMNS",
    "Behaviours",
    "SuggestedRule",
    "candidate_milestones",
    "propose_milestones",
    "rank_behaviours",
    "rule_conditions",
    "split_halves",
    "suggest_rule",
]
