"""What is predicted: the label (trial ages) and the task (entity, anchors, eligibility, target)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, model_validator

from propensity.config._base import Instant, PositiveDuration, Section

__all__ = [
    "CalendarAnchors",
    "EligibilityConfig",
    "LabelConfig",
    "TargetConfig",
    "TaskConfig",
    "TrialAnchors",
    "Weekday",
]


class LabelConfig(Section):
    """Prediction engineering: where each cutoff falls and how far the label looks."""

    observation_window: PositiveDuration = timedelta(days=7)
    horizon: PositiveDuration = timedelta(days=30)
    # Additional cutoffs per user (trial ages), e.g. ["1d", "3d"]; the main window is always one.
    extra_cutoffs: tuple[PositiveDuration, ...] = ()
    trial_length: PositiveDuration = timedelta(days=14)  # scoring cutoff: min(as_of, trial end)
    # An event meaning "this account is gone" (deleted, churned): users lost before a cutoff
    # are excluded from labels and scoring, counted under their own reason.
    lost_event: str | None = None


# -- task: what is predicted, for whom, from when (issue 14) ------------------------------------
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


class TrialAnchors(Section):
    """Anchors at trial ages: ``label.observation_window`` and ``label.extra_cutoffs`` after
    signup, exactly as without a ``task`` section."""

    kind: Literal["trial"] = "trial"


class CalendarAnchors(Section):
    """Anchors at calendar snapshots: every day, or every week on ``weekday``, at 00:00 UTC.

    ``start``/``end`` bound the anchors (both inclusive); without them, the first anchor after
    the first event and the last one at or before the data end.
    """

    kind: Literal["calendar"]
    every: Literal["day", "week"] = "week"
    weekday: Weekday = "monday"
    start: Instant | None = None
    end: Instant | None = None

    @model_validator(mode="after")
    def _start_before_end(self) -> CalendarAnchors:
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError(
                f"calendar anchors need start <= end. Got start {self.start:%Y-%m-%d %H:%M} "
                f"after end {self.end:%Y-%m-%d %H:%M}; swap them or drop one."
            )
        return self


class EligibilityConfig(Section):
    """Who is scored at an anchor: active (any event) in the ``lookback`` before it, and in the
    right state: ``not_paid`` (first payment or event targets) or ``paying`` (expansion)."""

    lookback: PositiveDuration | None = None  # calendar anchors only; default 28d
    status: Literal["not_paid", "paying"] | None = None  # default: follows the target


class TargetConfig(Section):
    """What the label asks: the entity's ``first_payment`` (the conversions table), an
    ``expansion_payment`` (a payment with more seats than the first, or ``event`` after the
    first payment) or the first ``event`` of a configured name."""

    kind: Literal["first_payment", "expansion_payment", "event"] = "first_payment"
    event: str | None = None

    @model_validator(mode="after")
    def _event_when_needed(self) -> TargetConfig:
        if self.kind == "event" and not self.event:
            raise ValueError(
                "target kind 'event' needs the event's name; add 'event: <name>' under "
                "task.target (e.g. 'event: plan_upgraded')."
            )
        if self.kind == "first_payment" and self.event is not None:
            raise ValueError(
                "target kind 'first_payment' reads the conversions table and takes no 'event'; "
                "use kind 'event' to label the first occurrence of an event."
            )
        return self


class TaskConfig(Section):
    """The prediction task: the entity, its anchors, who is eligible, the target and horizon.

    Without a ``task`` section the task is today's: users at trial ages, first payment, the
    ``label`` section's horizon.
    """

    entity: Literal["user", "account"] = "user"
    anchors: Annotated[TrialAnchors | CalendarAnchors, Field(discriminator="kind")] = TrialAnchors()
    eligibility: EligibilityConfig = EligibilityConfig()
    target: TargetConfig = TargetConfig()
    horizon: PositiveDuration | None = None  # calendar anchors; default label.horizon
    first_seen: Literal["signup", "first_event"] = "signup"  # where an entity's life starts

    @model_validator(mode="after")
    def _consistent(self) -> TaskConfig:
        problems = []
        trial = self.anchors.kind == "trial"
        if trial and self.entity != "user":
            problems.append(
                "trial anchors place cutoffs at a user's trial age; an account task needs "
                "calendar anchors (anchors: {kind: calendar})"
            )
        if trial and self.target.kind != "first_payment":
            problems.append(
                "trial anchors label the first payment (as the label section does); other "
                "targets need calendar anchors"
            )
        for key, value in (
            ("horizon", self.horizon),
            ("eligibility.lookback", self.eligibility.lookback),
        ):
            if trial and value is not None:
                problems.append(
                    f"task.{key} applies to calendar anchors; with trial anchors the label "
                    f"section decides (label.horizon, trial age)"
                )
        if trial and self.first_seen != "signup":
            problems.append("trial anchors count trial age from signup; drop task.first_seen")
        wanted = "paying" if self.target.kind == "expansion_payment" else "not_paid"
        if self.eligibility.status not in (None, wanted):
            problems.append(
                f"a {self.target.kind} target is predicted for entities that are "
                f"{wanted.replace('_', ' ')}; set eligibility.status to '{wanted}' or drop it"
            )
        if self.target.kind == "expansion_payment" and self.entity != "account":
            problems.append(
                "an expansion_payment target needs entity 'account' (seats are bought by accounts)"
            )
        if problems:
            raise ValueError("; ".join(problems) + ".")
        return self

    @property
    def lookback(self) -> timedelta:
        """How recent an event makes an entity active at an anchor."""
        return self.eligibility.lookback or timedelta(days=28)

    @property
    def status(self) -> Literal["not_paid", "paying"]:
        """The state an entity must be in at an anchor."""
        return self.eligibility.status or (
            "paying" if self.target.kind == "expansion_payment" else "not_paid"
        )
