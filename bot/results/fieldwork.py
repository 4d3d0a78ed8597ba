"""The report's front page: how many were invited and how many answered, per column.

Invited counts come from the identity side (invitations of the survey by the respondents'
strata), answered counts from the answer side (responses by the same strata); neither says
who answered. An answered count below k is hidden like any published cell, and so is the
response rate computed from it.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import Connection, func, select

from bot.config import SurveySettings
from storage.aggregate import CountTable, Entry, Report, Stratum, suppress
from storage.schema import Invitation, Respondent, Response


@dataclass(frozen=True, slots=True)
class FieldworkRow:
    """One column of the report: invited, answered (None: hidden) and the response rate."""

    label: str
    invited: int
    answered: int | None

    @property
    def rate(self) -> float | None:
        if self.answered is None or not self.invited:
            return None
        return self.answered / self.invited


@dataclass(frozen=True, slots=True)
class Fieldwork:
    """What the front page says about the survey itself."""

    title: str
    questionnaire: str
    #: First invitation and close (local dates) from the survey's plan, if it has one.
    period: tuple[dt.date, dt.date] | None
    rows: tuple[FieldworkRow, ...]


def _hidden_answered(report: Report, got: list[int], asked: list[int]) -> frozenset[Entry]:
    """Which answered counts to hide: answered / not answered per column is a table like any
    published one (the invited are its margin), suppressed the same way, with every count
    the report itself hides in the same column (its respondents) hidden here too."""
    table = CountTable.of([got, [a - g for a, g in zip(asked, got, strict=True)]], asked)
    linked = {(0, j) for t in report.tables
              for j, n in enumerate(t.respondents[:table.cols])
              if n is None and j < table.cols and got[j] > 0}
    return suppress(table, report.k, linked)


def _key(values: tuple[str | None, ...]) -> Stratum:
    return tuple(v or None for v in values)


def fieldwork(connection: Connection, report: Report, title: str,
              survey: SurveySettings | None) -> Fieldwork:
    """Invited and answered per column of `report` (the total last), and the field period."""
    by = report.by
    respondent_dims = {"respondent_type": Respondent.role, "sector": Respondent.sector,
                       "landsdel": Respondent.landsdel, "size_class": Respondent.size_class}
    invited: Counter[Stratum] = Counter()
    for row in connection.execute(
            select(*(respondent_dims[d] for d in by), func.count()).select_from(Respondent)
            .join(Invitation, Invitation.respondent_id == Respondent.id)
            .where(Invitation.survey_id == report.survey_id)
            .group_by(*(respondent_dims[d] for d in by))):
        *values, n = row
        invited[_key(tuple(values))] += int(n)
    answered: Counter[Stratum] = Counter()
    for row in connection.execute(
            select(*(getattr(Response, d) for d in by), func.count()).select_from(Response)
            .where(Response.survey_id == report.survey_id)
            .group_by(*(getattr(Response, d) for d in by))):
        *values, n = row
        answered[_key(tuple(values))] += int(n)
    keys = [c.key for c in report.columns if c.key is not None] or [()]
    got = [answered[key] for key in keys]
    asked = [max(invited[key], n) for key, n in zip(keys, got, strict=True)]
    hidden = _hidden_answered(report, got, asked)
    rows = []
    for j, column in enumerate(report.columns):
        at = j if column.key is not None else len(keys)
        value = sum(got) if column.key is None else got[j]
        people = sum(asked) if column.key is None else asked[j]
        rows.append(FieldworkRow(column.label, people, None if (0, at) in hidden else value))
    period = None
    if survey is not None and survey.plan is not None:
        period = (survey.plan.invite.date(), survey.plan.close.date())
    return Fieldwork(title, report.questionnaire_id, period, tuple(rows))
