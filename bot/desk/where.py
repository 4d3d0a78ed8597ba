"""Where a respondent stands in the questionnaire, for the contact person: the item asked.

Read from the conversation's `asked` ids and the questionnaire's wording; the answers in
the session are never looked at, so nothing here can show what anyone answered.
"""

from __future__ import annotations

from flows.model import Questionnaire
from flows.session import Status, from_json
from storage.schema import Invitation

_STATUS = {Status.NEW: "har ikke begynt", Status.COMPLETED: "har svart på alt",
           Status.STOPPED: "har meldt seg av", Status.PAUSED: "har tatt pause"}


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
