"""Where a respondent stands in the questionnaire, for the contact person: the item asked.

Read from the conversation's `asked` ids and the questionnaire's wording; the answers in
the session are never looked at, so nothing here can show what anyone answered.
"""

from __future__ import annotations

from flows.model import Lang, Questionnaire
from flows.session import Status, from_json
from storage.schema import Invitation, Respondent

#: A respondent's role as the desk names it, per interface language.
_ROLES = {"unit_leader": {"nb": "virksomhetsleder", "en": "unit leader"},
          "mayor": {"nb": "ordfører", "en": "mayor"}}
#: The questionnaire item whose options name the unit types of the contact list.
UNIT_TYPE_ITEM = "enhetstype"

_STATUS = {Status.NEW: "har ikke begynt", Status.COMPLETED: "har svart på alt",
           Status.STOPPED: "har meldt seg av", Status.PAUSED: "har tatt pause"}


def role_text(questionnaire: Questionnaire | None, respondent: Respondent,
              lang: Lang = "nb") -> str:
    """"virksomhetsleder, Vann, avløp eller renovasjon": the role, and the unit type in the
    questionnaire's wording (its code when the questionnaire does not name it)."""
    role = _ROLES.get(respondent.role, {}).get(lang, respondent.role)
    unit = respondent.unit_type or ""
    item = questionnaire.find(UNIT_TYPE_ITEM) if questionnaire is not None and unit else None
    option = item.option(unit) if item is not None else None
    if option is not None:
        unit = option.label.get(lang) or unit
    return ", ".join(part for part in (role, unit) if part)


def standing(questionnaire: Questionnaire, invitation: Invitation) -> str:
    """"spørsmål 4: «…»" for the first item asked, or how the conversation stands."""
    if not invitation.session_state:
        return "har ikke fått spørsmål ennå"
    session = from_json(invitation.session_state)
    if session.status in _STATUS:
        return _STATUS[session.status]
    for asked in session.asked:
        item = questionnaire.find(asked.split(".", 1)[0])
        if item is not None:
            return f"spørsmål {item.number}: «{item.text.get('nb')}»"
    return "mellom to sider"
