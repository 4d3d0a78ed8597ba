"""A respondent's delivery history, read from the three event tables, for `svarbot log`.

The operator's question is "why did this person get (or not get) that message?". The answer is
spread over `invitation_events` (status changes and why), `outbox_events` (every attempt on
every outbound message, joined to the person through `outbox.invitation_id`) and
`inbox_events` (every reply received and what it was taken for, through
`inbox.invitation_id`). This module merges them into one time line of short lines, told in
one language (bokmål or English, `LANGUAGES`): the producers write machine codes and English
phrases (`invitation sent`, `header_block`, `RCPT: 451 …`), and every one of them is put in
the operator's words from one table per language (`WORDS`), so that no line mixes languages
or shows a code. What a server said is quoted as it said it.

Only event rows and a message's kind and classification are read: never a body, a raw message,
a desk query's text or a session, so an answer cannot reach the output. Details are passed
through `safe_reason` once more before they are put in words, so an address or token that
slipped into an event is not shown either. Times in `detail` are Norwegian local time, as the
operator reads them; `Entry.at` is UTC.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session, aliased

from storage.identity import safe_reason
from storage.schema import (
    InboxEvent,
    InboxMessage,
    Invitation,
    InvitationEvent,
    InvitationStatus,
    OutboxEvent,
    OutboxMessage,
)

#: The operator's clock.
LOCAL_TIME = ZoneInfo("Europe/Oslo")

#: Which source comes first when two events carry the same time: a reply is received, then
#: the invitation's status follows, then the answer to it is queued.
_ORDER = {"inbox": 0, "invitation": 1, "outbox": 2}

# --- the words ------------------------------------------------------------------------------
#
# Every word the history shows comes from one table per language, keyed by namespace and the
# machine code the producers write (`reason.invitation sent`, `rule.header_block` …), so that
# an operator reads one language and never an internal code. `{0}`, `{1}` are filled from a
# pattern's groups (see `_PATTERNS`). A code that has no entry is shown as it is.

#: The languages the history is told in; the first is the default.
LANGUAGES: tuple[str, ...] = ("nb", "en")

_NB: dict[str, str] = {
    # the table and the command around it
    "column.time": "tid", "column.respondent": "respondent", "column.survey": "undersøkelse",
    "column.what": "hva", "column.status": "status", "column.detail": "detalj",
    "title.tail": "Siste {0} hendelser", "title.respondent": "Respondent {0}",
    "title.none": "{0}: ingen hendelser",
    "quote": "«{0}»", "address": "[adresse]", "token": "[kode]",
    "what.status": "status", "what.numbered": "{0} {1}", "what.outgoing": "{0} ({1})",
    "what.incoming": "{0}: {1}", "change": "{0} → {1} ({2})", "change.first": "{0} ({1})",
    "retry": "{0} → nytt forsøk {1} (forsøk {2})",
    "log.whose": "si hvem: --respondent ID, navn eller adresse, eller --tail N for alle",
    "log.survey": "--survey hører sammen med --respondent",
    "log.database": "databasefeil: {0}",
    # finding a respondent (`svarbot find`, and --respondent by name or address)
    "find.title": "Respondenter med «{0}» i navn eller adresse",
    "find.column.id": "id", "find.column.name": "navn", "find.column.address": "adresse",
    "find.column.municipality": "kommune", "find.column.surveys": "undersøkelser",
    "find.invitation": "{0}:\n{1}, invitasjon {2}", "find.not_invited": "ikke invitert",
    "find.none": "ingen respondent har «{0}» i navn eller adresse",
    "find.none_in_survey": "ingen respondent i {1} har «{0}» i navn eller adresse",
    "find.more": "viser de første {0}; skriv mer av navnet eller adressen",
    "find.ambiguous": "«{0}» passer på {1} respondenter; velg én med id-en:",
    "find.no_id": "ingen respondent har id {0}",
    # channels
    "channel.email": "e-post", "channel.telegram": "Telegram",
    "incoming.email": "innkommende e-post", "incoming.telegram": "innkommende Telegram-melding",
    # outbound message kinds
    "kind.invitation": "invitasjon", "kind.reminder": "påminnelse", "kind.page": "svarside",
    "kind.confirmation": "bekreftelse", "kind.closed": "svar: stengt", "kind.info": "melding",
    "kind.ack": "svar på knappetrykk", "kind.desk_reply": "svar fra kontaktpersonen",
    "kind.desk_notice": "varsel til kontaktpersonen", "kind.alert": "driftsvarsel",
    # what an inbound message was taken for
    "class.answer": "svar", "class.query": "spørsmål til kontaktpersonen",
    "class.opt_out": "avmelding", "class.bounce": "melding om avvist e-post",
    "class.auto_reply": "autosvar", "class.forward": "videresending",
    "class.unknown": "ukjent type", "class.start": "Telegram-lenke",
    "class.complaint": "spam-klage", "class.desk_answer": "kontaktpersonens svar",
    "class.ignore": "ingenting å gjøre",
    # invitation statuses
    "invitation.pending": "venter", "invitation.invited": "invitert",
    "invitation.delivered": "levert", "invitation.started": "påbegynt",
    "invitation.finished": "fullført", "invitation.bounced": "avvist",
    "invitation.opted_out": "avmeldt", "invitation.closed": "lukket",
    # outbox and inbox event statuses
    "event.queued": "i kø", "event.sending": "sendes", "event.sent": "sendt",
    "event.retry": "nytt forsøk", "event.bounced": "avvist", "event.dead": "gitt opp",
    "event.ignored": "ignorert", "event.soft_bounce": "midlertidig avvist",
    "event.received": "mottatt", "event.processed": "behandlet",
    "event.failed": "karantene", "event.released": "sluppet fri",
    # why an invitation changed status
    "reason.invitation sent": "invitasjonen er sendt",
    "reason.bounce": "adressen ble avvist",
    "reason.bounce report": "melding om avvist adresse",
    "reason.spam complaint": "merket som spam av mottakeren",
    "reason.survey closed": "undersøkelsen er stengt",
    "reason.adressen rettet av en operatør": "adressen rettet av en operatør",
    "reason.stoppet av en operatør": "stoppet av en operatør",
    "reason.status before 0003": "status fra før hendelsesloggen",
    # what the conversation did (the reason of a status change it made)
    "engine.stopped": "ba om å stoppe", "engine.questionnaire_completed": "siste side besvart",
    "engine.resumed": "fortsetter", "engine.paused": "pause",
    "engine.answer_recorded": "svar mottatt", "engine.query_raised": "spørsmål til en person",
    "engine.page_completed": "side besvart", "engine.item_skipped": "spørsmål hoppet over",
    "engine.answer_removed": "et svar gjelder ikke lenger",
    "engine.input_rejected": "tekst som ikke kunne brukes",
    "engine.reply": "svar fra respondenten",
    # delivery attempts (outbox events)
    "delivery.accepted": "tatt imot av mottakerserveren",
    "delivery.replayed by operator": "sendt på nytt av en operatør",
    "delivery.survey closed": "undersøkelsen er stengt",
    "delivery.tap answered": "knappetrykket er besvart",
    "delivery.keyboard changed": "knappene er oppdatert",
    "delivery.invalid bot token": "ugyldig nøkkel til Telegram-boten",
    "delivery.RCPT: refused": "serveren avviste mottakeradressen",
    "delivery.400: chat not found": "chatten finnes ikke",
    "delivery.gave_up": "gitt opp etter {0} forsøk: {1}",
    "delivery.late": "forsinket resultat ({0}) ignorert: {1}",
    "delivery.message": "levert som Telegram-melding {0}",
    "delivery.server": "serveren svarte {0}",
    "delivery.RCPT": "serveren svarte på mottakeradressen: {0}",
    "delivery.DATA": "serveren svarte på meldingen: {0}",
    "delivery.MAIL FROM": "serveren svarte på avsenderadressen: {0}",
    "delivery.login": "innloggingen på e-postserveren feilet: {0}",
    "delivery.connection": "forbindelsen med e-postserveren feilet ({0})",
    "delivery.connect": "fikk ikke forbindelse med e-postserveren ({0})",
    "delivery.connect_reply": "e-postserveren svarte da forbindelsen ble åpnet: {0}",
    "delivery.connect_said": "fikk ikke forbindelse med e-postserveren: {0}",
    "delivery.tls": "TLS-forhandlingen med e-postserveren feilet ({0})",
    "delivery.silent_within": "e-postserveren svarte ikke innen {0} s ({1})",
    "delivery.silent": "e-postserveren svarte ikke ({0})",
    "delivery.lost": "forbindelsen med e-postserveren ble brutt ({0})",
    "delivery.refused": "e-postserveren nektet forbindelsen ({0})",
    "delivery.deadline": "ikke noe resultat innen {0} s",
    "delivery.smtp": "e-postserveren og innstillingene passer ikke sammen: {0}",
    "delivery.error": "feil i svarbot ({0})",
    "delivery.render": "meldingen kunne ikke lages ({0})",
    "delivery.payload": "meldingen er ødelagt ({0})",
    "delivery.operation": "ukjent Telegram-operasjon {0}",
    "delivery.network": "nettverksfeil mot Telegram ({0})",
    "delivery.wait": "Telegram ba oss vente {0} s",
    "delivery.403": "Telegram nekter å levere: {0}",
    "delivery.400": "Telegram svarte {0}",
    "delivery.hard": "rapport om permanent avvisning{0}",
    "delivery.soft": "rapport om midlertidig avvisning{0}",
    "delivery.code": " ({0})",
    # how the text of a reply was found (processed inbox events)
    "rule.marker": "lest over skillelinjen til den siterte meldingen",
    "rule.quote_header": "lest over linjen «… skrev:»",
    "rule.forward": "lest over en videresendt melding (bør sjekkes)",
    "rule.header_block": "lest over sitatets Fra:/Sendt:/Til:-linjer",
    "rule.delimiter": "lest over understrekingslinjen",
    "rule.signature": "lest over signaturen",
    "rule.bottom_post": "lest under sitatet",
    "rule.inline": "svar skrevet mellom de siterte spørsmålene",
    "rule.quoted": "sitert tekst nederst fjernet",
    "rule.none": "hele teksten lest",
    "rule.needs review": "usikker lesing, bør sjekkes",
    "rule.survey closed": "undersøkelsen er stengt",
    "rule.start_unknown": "ukjent Telegram-lenke",
    "rule.start_missing": "/start uten lenke",
    "rule.link held by another user": "lenken brukes allerede av en annen Telegram-bruker",
    "rule.query": "svar på spørsmål {0}",
    # why an inbound message was what it was taken for (ignored and quarantined events)
    "signal.loop": "vår egen melding kom tilbake",
    "signal.complaint": "merket som spam",
    "signal.dsn": "leveringsrapport",
    "signal.exchange-ndr": "leveringsrapport fra Exchange",
    "signal.x-failed-recipients": "leveringsrapport med liste over avviste adresser",
    "signal.from": "fra e-postsystemet {0}",
    "signal.ses-notification": "varsel fra Amazon SES",
    "signal.returned-message": "returnert melding",
    "signal.null-return-path": "tom returadresse",
    "signal.subject+flufl": "emne og innhold som en leveringsrapport",
    "signal.subject": "emne som en leveringsrapport",
    "signal.no-failure": "{0}, men ingen feil",
    "signal.auto-submitted": "merket som automatisk sendt",
    "signal.x-autoreply": "merket som autosvar",
    "signal.x-autorespond": "merket som autosvar",
    "signal.x-auto-reply": "merket som autosvar",
    "signal.x-autoresponse": "merket som autosvar",
    "signal.x-autoresponder": "merket som autosvar",
    "signal.precedence": "massepost ({0})",
    "signal.mailbox-rules-agent": "sendt av en regel i Exchange",
    "signal.exchange-rules-loop": "sendt av en regel i Exchange, i sløyfe",
    "signal.x-apple-action": "ferieassistenten i Apple Mail",
    "signal.noreply-from": "fra en avsender som ikke tar imot svar",
    "signal.subject-prefix": "emnet begynner med {0}",
    "signal.mailing-list": "fra en e-postliste",
    "signal.forward:attachment": "videresendt som vedlegg",
    "signal.forward:marker": "videresendt (skillelinje)",
    "signal.forward:header-block": "videresendt (Fra:/Sendt:-linjer)",
    "signal.forward:quote-header": "videresendt (linjen «… skrev:»)",
    "signal.no-token": "ingen invitasjonskode i adressen, emnet eller trådreferansene",
    "signal.unsubscribe-address": "sendt til avmeldingsadressen",
    "signal.command:stop": "«stopp» i svaret",
    "signal.subject:stop": "«stopp» i emnet",
    "signal.question": "spørsmål til en person",
    "signal.answer": "svar",
    "signal.other_update": "annen Telegram-hendelse",
    "signal.not_private": "ikke en privat chat",
    "signal.edited": "redigert melding",
    "signal.no_text": "melding uten tekst",
    "signal.start": "Telegram-lenke",
    "signal.by_email": "ba om å fortsette på e-post",
    "signal.text": "tekst",
    "signal.tap_without_message": "knappetrykk uten melding",
    "signal.unknown_tap": "ukjent knapp",
    "signal.toggle": "valg slått av eller på",
    "signal.tap": "knappetrykk",
    "signal.sender not tied to an invitation": "avsenderen er ikke knyttet til en invitasjon",
    "signal.tap on an answered question": "knappetrykk på et besvart spørsmål",
    "signal.discarded by an operator": "kastet av en operatør",
    "signal.the answer is empty": "svaret er tomt",
    "signal.longer": "svaret er lengre enn {0} tegn",
    "signal.the question is closed; it opens again when the respondent writes":
        "spørsmålet er lukket; det åpnes igjen når respondenten skriver",
    "signal.not configured": "undersøkelsen {0} er ikke i konfigurasjonen",
    "signal.no channel reaches the respondent (no address, chat blocked)":
        "ingen kanal når respondenten (ingen adresse, eller chatten er blokkert)",
    "signal.hard": "rapport om permanent avvisning{0}",
    "signal.soft": "rapport om midlertidig avvisning{0}",
    # why a message was set aside (quarantine)
    "quarantine.too_large": "for stor",
    "quarantine.not_mime": "ikke en lesbar e-post",
    "quarantine.no_body": "ingen tekst å lese",
    "quarantine.too_deep": "for mange deler inni hverandre til å lese",
    "quarantine.too_many_parts": "for mange deler til å lese",
    "quarantine.too_long": "for stor til å lese",
    "quarantine.read_error": "kunne ikke leses",
    "quarantine.not_json": "ikke en lesbar Telegram-oppdatering",
    "quarantine.not_an_update": "ikke en Telegram-oppdatering",
    "quarantine.no_token": "kan ikke knyttes til en invitasjon",
    "quarantine.forward": "videresendt melding",
    "quarantine.unknown": "ukjent type melding",
    "quarantine.complaint": "spam-klage",
    "quarantine.desk_sender": "svar på kontaktpersonens e-post fra en annen adresse",
    "quarantine.unknown_survey": "undersøkelsen er ikke konfigurert",
    "quarantine.with": "{0}: {1}",
    "quarantine.large": "{0} byte; bare hodet er hentet, resten ligger på serveren",
    "quarantine.a reply to the desk's mail from another address":
        "fra en annen adresse enn kontaktpersonens",
    "received.bytes": "{0} byte",
    "released.was": "var i karantene: {0}",
}

_EN: dict[str, str] = {
    "column.time": "time", "column.respondent": "respondent", "column.survey": "survey",
    "column.what": "what", "column.status": "status", "column.detail": "detail",
    "title.tail": "Last {0} events", "title.respondent": "Respondent {0}",
    "title.none": "{0}: no events",
    "quote": "“{0}”", "address": "[address]", "token": "[token]",
    "what.status": "status", "what.numbered": "{0} {1}", "what.outgoing": "{0} ({1})",
    "what.incoming": "{0}: {1}", "change": "{0} → {1} ({2})", "change.first": "{0} ({1})",
    "retry": "{0} → next attempt {1} (attempt {2})",
    "log.whose": "say whose history to show: --respondent ID, name or address, or --tail N "
                 "for everyone's",
    "log.survey": "--survey goes with --respondent",
    "log.database": "database error: {0}",
    "find.title": "Respondents with “{0}” in their name or address",
    "find.column.id": "id", "find.column.name": "name", "find.column.address": "address",
    "find.column.municipality": "municipality", "find.column.surveys": "surveys",
    "find.invitation": "{0}:\n{1}, invitation {2}", "find.not_invited": "not invited",
    "find.none": "no respondent has “{0}” in their name or address",
    "find.none_in_survey": "no respondent in {1} has “{0}” in their name or address",
    "find.more": "showing the first {0}; type more of the name or the address",
    "find.ambiguous": "“{0}” matches {1} respondents; choose one by its id:",
    "find.no_id": "no respondent has id {0}",
    "channel.email": "email", "channel.telegram": "Telegram",
    "incoming.email": "incoming email", "incoming.telegram": "incoming Telegram message",
    "kind.invitation": "invitation", "kind.reminder": "reminder", "kind.page": "question page",
    "kind.confirmation": "confirmation", "kind.closed": "reply: closed", "kind.info": "notice",
    "kind.ack": "button acknowledgement", "kind.desk_reply": "contact person's answer",
    "kind.desk_notice": "notice to the contact person", "kind.alert": "operations alert",
    "class.answer": "answer", "class.query": "question for the contact person",
    "class.opt_out": "opt-out", "class.bounce": "bounce report",
    "class.auto_reply": "automatic reply", "class.forward": "forward",
    "class.unknown": "unknown kind", "class.start": "Telegram link",
    "class.complaint": "spam complaint", "class.desk_answer": "contact person's answer",
    "class.ignore": "nothing to do",
    "invitation.pending": "waiting", "invitation.invited": "invited",
    "invitation.delivered": "delivered", "invitation.started": "started",
    "invitation.finished": "finished", "invitation.bounced": "bounced",
    "invitation.opted_out": "opted out", "invitation.closed": "closed",
    "event.queued": "queued", "event.sending": "sending", "event.sent": "sent",
    "event.retry": "will retry", "event.bounced": "bounced", "event.dead": "given up",
    "event.ignored": "ignored", "event.soft_bounce": "refused for now",
    "event.received": "received", "event.processed": "handled",
    "event.failed": "quarantined", "event.released": "released",
    "reason.invitation sent": "the invitation was sent",
    "reason.bounce": "the address bounced",
    "reason.bounce report": "a bounce report came back",
    "reason.spam complaint": "marked as spam by the recipient",
    "reason.survey closed": "the survey has closed",
    "reason.adressen rettet av en operatør": "address corrected by an operator",
    "reason.stoppet av en operatør": "stopped by an operator",
    "reason.status before 0003": "status from before the event log",
    "engine.stopped": "asked to stop", "engine.questionnaire_completed": "last page answered",
    "engine.resumed": "taking part again", "engine.paused": "paused",
    "engine.answer_recorded": "answer received", "engine.query_raised": "question for a person",
    "engine.page_completed": "page answered", "engine.item_skipped": "question skipped",
    "engine.answer_removed": "an answer no longer applies",
    "engine.input_rejected": "text that could not be used",
    "engine.reply": "reply from the respondent",
    "delivery.accepted": "accepted by the receiving server",
    "delivery.replayed by operator": "replayed by an operator",
    "delivery.survey closed": "the survey has closed",
    "delivery.tap answered": "button press answered",
    "delivery.keyboard changed": "buttons updated",
    "delivery.invalid bot token": "the Telegram bot's token is not valid",
    "delivery.RCPT: refused": "the server refused the recipient address",
    "delivery.400: chat not found": "the chat does not exist",
    "delivery.gave_up": "given up after {0} attempts: {1}",
    "delivery.late": "late result ({0}) ignored: {1}",
    "delivery.message": "delivered as Telegram message {0}",
    "delivery.server": "the server replied {0}",
    "delivery.RCPT": "the server replied to the recipient address: {0}",
    "delivery.DATA": "the server replied to the message: {0}",
    "delivery.MAIL FROM": "the server replied to the sender address: {0}",
    "delivery.login": "logging in to the mail server failed: {0}",
    "delivery.connection": "the connection to the mail server failed ({0})",
    "delivery.connect": "could not connect to the mail server ({0})",
    "delivery.connect_reply": "the mail server replied while connecting: {0}",
    "delivery.connect_said": "could not connect to the mail server: {0}",
    "delivery.tls": "the TLS handshake with the mail server failed ({0})",
    "delivery.silent_within": "the mail server did not answer within {0} s ({1})",
    "delivery.silent": "the mail server did not answer ({0})",
    "delivery.lost": "the connection to the mail server was lost ({0})",
    "delivery.refused": "the mail server refused the connection ({0})",
    "delivery.deadline": "no result within {0} s",
    "delivery.smtp": "the mail server and the settings do not agree: {0}",
    "delivery.error": "svarbot error ({0})",
    "delivery.render": "the message could not be built ({0})",
    "delivery.payload": "the message is broken ({0})",
    "delivery.operation": "unknown Telegram operation {0}",
    "delivery.network": "network error talking to Telegram ({0})",
    "delivery.wait": "Telegram asked us to wait {0} s",
    "delivery.403": "Telegram refuses delivery: {0}",
    "delivery.400": "Telegram replied {0}",
    "delivery.hard": "report of a permanent bounce{0}",
    "delivery.soft": "report of a temporary bounce{0}",
    "delivery.code": " ({0})",
    "rule.marker": "read above the quoted message's divider line",
    "rule.quote_header": "read above the “… wrote:” line",
    "rule.forward": "read above a forwarded message (worth checking)",
    "rule.header_block": "read above the quoted From:/Sent:/To: lines",
    "rule.delimiter": "read above the underscore line",
    "rule.signature": "read above the signature",
    "rule.bottom_post": "read below the quote",
    "rule.inline": "answers written between the quoted questions",
    "rule.quoted": "quoted text at the end removed",
    "rule.none": "the whole text read",
    "rule.needs review": "uncertain reading, worth checking",
    "rule.survey closed": "the survey has closed",
    "rule.start_unknown": "unknown Telegram link",
    "rule.start_missing": "/start without a link",
    "rule.link held by another user": "the link is held by another Telegram user",
    "rule.query": "answer to question {0}",
    "signal.loop": "our own message came back",
    "signal.complaint": "marked as spam",
    "signal.dsn": "delivery status report",
    "signal.exchange-ndr": "Exchange non-delivery report",
    "signal.x-failed-recipients": "delivery report listing refused addresses",
    "signal.from": "from the mail system {0}",
    "signal.ses-notification": "Amazon SES notification",
    "signal.returned-message": "returned message",
    "signal.null-return-path": "empty return path",
    "signal.subject+flufl": "subject and content of a delivery report",
    "signal.subject": "subject of a delivery report",
    "signal.no-failure": "{0}, but no failure",
    "signal.auto-submitted": "marked as sent automatically",
    "signal.x-autoreply": "marked as an automatic reply",
    "signal.x-autorespond": "marked as an automatic reply",
    "signal.x-auto-reply": "marked as an automatic reply",
    "signal.x-autoresponse": "marked as an automatic reply",
    "signal.x-autoresponder": "marked as an automatic reply",
    "signal.precedence": "bulk mail ({0})",
    "signal.mailbox-rules-agent": "sent by an Exchange mailbox rule",
    "signal.exchange-rules-loop": "sent by an Exchange rule, in a loop",
    "signal.x-apple-action": "Apple Mail's vacation reply",
    "signal.noreply-from": "from a sender that takes no replies",
    "signal.subject-prefix": "the subject begins with {0}",
    "signal.mailing-list": "from a mailing list",
    "signal.forward:attachment": "forwarded as an attachment",
    "signal.forward:marker": "forwarded (divider line)",
    "signal.forward:header-block": "forwarded (From:/Sent: lines)",
    "signal.forward:quote-header": "forwarded (“… wrote:” line)",
    "signal.no-token": "no invitation code in the address, the subject or the thread",
    "signal.unsubscribe-address": "sent to the unsubscribe address",
    "signal.command:stop": "“stop” in the reply",
    "signal.subject:stop": "“stop” in the subject",
    "signal.question": "question for a person",
    "signal.answer": "answer",
    "signal.other_update": "another kind of Telegram update",
    "signal.not_private": "not a private chat",
    "signal.edited": "edited message",
    "signal.no_text": "message without text",
    "signal.start": "Telegram link",
    "signal.by_email": "asked to go on by email",
    "signal.text": "text",
    "signal.tap_without_message": "button press without a message",
    "signal.unknown_tap": "unknown button",
    "signal.toggle": "choice switched on or off",
    "signal.tap": "button press",
    "signal.sender not tied to an invitation": "the sender is not tied to an invitation",
    "signal.tap on an answered question": "button press on an answered question",
    "signal.discarded by an operator": "discarded by an operator",
    "signal.the answer is empty": "the answer is empty",
    "signal.longer": "the answer is longer than {0} characters",
    "signal.the question is closed; it opens again when the respondent writes":
        "the question is closed; it opens again when the respondent writes",
    "signal.not configured": "survey {0} is not in the configuration",
    "signal.no channel reaches the respondent (no address, chat blocked)":
        "no channel reaches the respondent (no address, or the chat is blocked)",
    "signal.hard": "report of a permanent bounce{0}",
    "signal.soft": "report of a temporary bounce{0}",
    "quarantine.too_large": "too large",
    "quarantine.not_mime": "not a readable email",
    "quarantine.no_body": "no text to read",
    "quarantine.too_deep": "parts nested too deep to read",
    "quarantine.too_many_parts": "too many parts to read",
    "quarantine.too_long": "too large to read",
    "quarantine.read_error": "could not be read",
    "quarantine.not_json": "not a readable Telegram update",
    "quarantine.not_an_update": "not a Telegram update",
    "quarantine.no_token": "cannot be tied to an invitation",
    "quarantine.forward": "forwarded message",
    "quarantine.unknown": "message of unknown kind",
    "quarantine.complaint": "spam complaint",
    "quarantine.desk_sender": "reply to the contact person's mail from another address",
    "quarantine.unknown_survey": "the survey is not configured",
    "quarantine.with": "{0}: {1}",
    "quarantine.large": "{0} bytes; only the header fetched, the rest left on the server",
    "quarantine.a reply to the desk's mail from another address":
        "from another address than the contact person's",
    "received.bytes": "{0} bytes",
    "released.was": "was quarantined: {0}",
}

#: The tables, by language.
WORDS: dict[str, dict[str, str]] = {"nb": _NB, "en": _EN}

#: How a group of a pattern is shown: as it is (`n`), quoted as someone else's words
#: (`quote`), as a status code in parentheses (`code`), as an event status (`event`), as what
#: a quarantine reason adds (`why`), or described again in a namespace.
_Group = str

#: Codes with a variable part, per namespace: (pattern, key, how each group is shown). The
#: first pattern that matches the whole code wins; exact codes are looked up before them.
_PATTERNS: dict[str, tuple[tuple[re.Pattern[str], str, tuple[_Group, ...]], ...]] = {
    "delivery": (
        (re.compile(r"gave up after (\d+) attempts: (.*)"), "delivery.gave_up",
         ("n", "delivery")),
        (re.compile(r"late result (\w+): (.*)"), "delivery.late", ("event", "delivery")),
        (re.compile(r"message (\d+)"), "delivery.message", ("n",)),
        (re.compile(r"(RCPT|DATA|MAIL FROM|login): (\d{3}\b.*)"), "delivery.{0}",
         ("key", "quote")),
        (re.compile(r"connect: (\d{3}\b.*)"), "delivery.connect_reply", ("quote",)),
        (re.compile(r"connect: TLS handshake failed \((.+)\)"), "delivery.tls", ("n",)),
        (re.compile(r"(?:connect|connection): no answer within (\S+) s \((\w+)\)"),
         "delivery.silent_within", ("n", "n")),
        (re.compile(r"(?:connect|connection): no answer \((\w+)\)"), "delivery.silent",
         ("n",)),
        (re.compile(r"(?:connect|connection): lost \((\w+)\)"), "delivery.lost", ("n",)),
        (re.compile(r"(?:connect|connection): refused \((\w+)\)"), "delivery.refused",
         ("n",)),
        (re.compile(r"connect: (\w+)"), "delivery.connect", ("n",)),
        (re.compile(r"connect: (.*)"), "delivery.connect_said", ("quote",)),
        (re.compile(r"connection: (\w+)"), "delivery.connection", ("n",)),
        (re.compile(r"smtp: (.*)"), "delivery.smtp", ("quote",)),
        (re.compile(r"deadline: no result within (\S+) s"), "delivery.deadline", ("n",)),
        (re.compile(r"error: (\w+)"), "delivery.error", ("n",)),
        (re.compile(r"render failed: (\w+)"), "delivery.render", ("n",)),
        (re.compile(r"bad payload: (\w+)"), "delivery.payload", ("n",)),
        (re.compile(r"unknown operation (.*)"), "delivery.operation", ("n",)),
        (re.compile(r"network: (\w+)"), "delivery.network", ("n",)),
        (re.compile(r"429: retry after (\d+) s"), "delivery.wait", ("n",)),
        (re.compile(r"403: (.*)"), "delivery.403", ("quote",)),
        (re.compile(r"400: (.*)"), "delivery.400", ("quote",)),
        (re.compile(r"hard bounce ?(.*)"), "delivery.hard", ("code",)),
        (re.compile(r"soft bounce ?(.*)"), "delivery.soft", ("code",)),
        (re.compile(r"(\d{3}\b.*)"), "delivery.server", ("quote",)),
    ),
    "rule": (
        (re.compile(r"query (\d+)"), "rule.query", ("n",)),
    ),
    "signal": (
        (re.compile(r"(.+):no-failure"), "signal.no-failure", ("signal",)),
        (re.compile(r"from:(.+)"), "signal.from", ("quote",)),
        (re.compile(r"precedence:(.+)"), "signal.precedence", ("quote",)),
        (re.compile(r"subject:(.+)"), "signal.subject-prefix", ("quote",)),
        (re.compile(r"hard bounce ?(.*)"), "signal.hard", ("code",)),
        (re.compile(r"soft bounce ?(.*)"), "signal.soft", ("code",)),
        (re.compile(r"the answer is longer than (\d+) characters"), "signal.longer", ("n",)),
        (re.compile(r"survey (\S+) is not in the configuration"), "signal.not configured",
         ("n",)),
    ),
    "quarantine": (
        (re.compile(r"(\d+) bytes; headers kept, body left on the server"),
         "quarantine.large", ("n",)),
        (re.compile(r"(\w+): (.+)"), "quarantine.with", ("quarantine", "why")),
    ),
    "received": (
        (re.compile(r"(\d+) bytes"), "received.bytes", ("n",)),
    ),
    "released": (
        (re.compile(r"was (.+)"), "released.was", ("quarantine",)),
    ),
}

#: The engine's event kinds in the order they explain a status change (the first one the
#: reason names is shown).
_ENGINE_ORDER = ("stopped", "questionnaire_completed", "resumed", "paused", "answer_recorded",
                 "query_raised", "page_completed", "item_skipped", "answer_removed",
                 "input_rejected", "reply")

#: Outbound message kinds as the operator says them (numbered per invitation, except the
#: invitation itself, which there is only one of). Bokmål, for the dashboard.
KIND_NAMES = {kind: _NB[f"kind.{kind}"] for kind in (
    "invitation", "reminder", "page", "confirmation", "closed", "info", "ack")}
#: Inbound classifications as the operator says them (bokmål).
CLASSIFICATION_NAMES = {code: _NB[f"class.{code}"] for code in (
    "answer", "query", "opt_out", "bounce", "auto_reply", "forward", "unknown", "start")}
#: Invitation statuses in bokmål.
INVITATION_NAMES = {status: _NB[f"invitation.{status}"] for status in (
    "pending", "invited", "delivered", "started", "finished", "bounced", "opted_out",
    "closed")}
#: Outbox and inbox event statuses in bokmål.
EVENT_NAMES = {status: _NB[f"event.{status}"] for status in (
    "queued", "sending", "sent", "retry", "bounced", "dead", "ignored", "soft_bounce",
    "received", "processed", "failed", "released")}


@dataclass(frozen=True, slots=True)
class Words:
    """The history's words in one language (`LANGUAGES`).

    `code` turns a machine code of a namespace into words; a code it does not know comes
    back as it is, so that nothing is hidden, and `known` says whether it would.
    """

    lang: str = "nb"

    def __post_init__(self) -> None:
        if self.lang not in WORDS:
            raise ValueError(f"no words for language {self.lang!r} (use "
                             f"{', '.join(LANGUAGES)})")

    def __call__(self, key: str, *values: object) -> str:
        """The entry `key`, filled with `values`."""
        return WORDS[self.lang][key].format(*values)

    def quote(self, text: str) -> str:
        """Someone else's words (a server's reply), marked as such."""
        return self("quote", text)

    def status(self, source: str, status: str) -> str:
        """An invitation status (source `invitation`) or an outbox or inbox event status."""
        space = "invitation" if source == "invitation" else "event"
        return WORDS[self.lang].get(f"{space}.{status}", status)

    def channel(self, channel: str) -> str:
        """A channel's name."""
        return WORDS[self.lang].get(f"channel.{channel}", channel)

    def known(self, namespace: str, code: str) -> bool:
        """Whether `code` has words in `namespace` (else `code` shows it as it is)."""
        return self._describe(namespace, code) is not None

    def code(self, namespace: str, code: str) -> str:
        """`code` of `namespace` in words, or `code` itself when it has none."""
        described = self._describe(namespace, code)
        return self.placeholders(code) if described is None else described

    def placeholders(self, text: str) -> str:
        """`safe_reason`'s stand-ins for an address or a token, in this language."""
        return (text.replace("[address]", self("address"))
                .replace("[token]", self("token")))

    def _describe(self, namespace: str, code: str) -> str | None:
        table = WORDS[self.lang]
        exact = table.get(f"{namespace}.{code}")
        if exact is not None and "{" not in exact:
            return exact
        for pattern, key, groups in _PATTERNS.get(namespace, ()):
            match = pattern.fullmatch(code)
            if match is None:
                continue
            values = match.groups()
            if groups and groups[0] == "key":
                key, groups, values = key.format(values[0]), groups[1:], values[1:]
            if key not in table:
                continue
            return table[key].format(*(self._group(how, value)
                                       for how, value in zip(groups, values, strict=True)))
        return None

    def _group(self, how: str, value: str) -> str:
        if how == "n":
            return self.placeholders(value)
        if how == "quote":
            return self.quote(self.placeholders(value))
        if how == "code":
            return self("delivery.code", value) if value else ""
        if how == "event":
            return self.status("outbox", value)
        if how == "why":  # what a quarantine reason adds: its own words, or the classifier's
            return self.code("quarantine" if self.known("quarantine", value) else "signal",
                             value)
        return self.code(how, value)


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of the history.

    `status` is the event's machine status (an outbox status such as `retry`, an inbox event
    such as `processed`, or an invitation status); `what` and `detail` are for people.
    `source` is `invitation`, `outbox` or `inbox`.
    """

    at: dt.datetime
    survey: str
    what: str
    status: str
    detail: str
    respondent_id: int | None = None
    source: str = ""

    def as_dict(self) -> dict[str, object]:
        """The entry for JSON: `at` as ISO 8601 UTC."""
        return {"at": self.at.isoformat(), "survey": self.survey, "what": self.what,
                "status": self.status, "detail": self.detail,
                "respondent_id": self.respondent_id, "source": self.source}


def _utc(moment: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes (stored as UTC)."""
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def local_time(moment: dt.datetime, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """`moment` on the operator's clock."""
    return _utc(moment).astimezone(LOCAL_TIME).strftime(fmt)


# --- writing --------------------------------------------------------------------------------


def record_changes(session: Session, changes: Iterable[tuple[int, InvitationStatus | None,
                                                            InvitationStatus]],
                   *, reason: str, now: dt.datetime) -> int:
    """Write one `invitation_events` row per (invitation id, previous, new status); how many.

    For bulk status updates that bypass `storage.identity.set_status` (the sender marks a
    whole batch invited in one UPDATE): one multi-row INSERT, in the caller's transaction.
    """
    rows = [{"invitation_id": invitation_id, "at": now, "status": status.value,
             "previous": None if previous is None else previous.value,
             "reason": safe_reason(reason)}
            for invitation_id, previous, status in changes]
    if rows:
        session.execute(insert(cast(Table, InvitationEvent.__table__)), rows)
    return len(rows)


# --- reading --------------------------------------------------------------------------------


def _invitation_rows(session: Session, where: list[Any], limit: int | None,
                     words: Words) -> list[Entry]:
    query = (
        select(InvitationEvent.id, InvitationEvent.at, InvitationEvent.status,
               InvitationEvent.previous, InvitationEvent.reason, Invitation.survey_id,
               Invitation.respondent_id)
        .join(Invitation, Invitation.id == InvitationEvent.invitation_id).where(*where))
    if limit is not None:
        query = query.order_by(InvitationEvent.id.desc()).limit(limit)
    return [Entry(at=_utc(row.at), survey=row.survey_id, what=words("what.status"),
                  status=str(row.status),
                  detail=status_detail(row.previous, str(row.status), row.reason or "",
                                       words),
                  respondent_id=row.respondent_id, source="invitation")
            for row in session.execute(query)]


def status_detail(previous: str | None, status: str, reason: str,
                  words: Words | None = None) -> str:
    """A status change for people: `previous → new (why)`."""
    words = words or Words()
    new = words.status("invitation", status)
    said = reason_words(reason, words)
    if previous is None:
        return words("change.first", new, said)
    return words("change", words.status("invitation", previous), new, said)


def reason_words(reason: str, words: Words | None = None) -> str:
    """Why an invitation's status changed, in words: a reason code, or the conversation's
    events (`conversation: answer_recorded, paused`), told by the one that explains most."""
    words = words or Words()
    reason = safe_reason(reason)
    head, _, kinds = reason.partition(": ")
    if head == "conversation" and kinds:
        named = {kind.strip() for kind in kinds.split(",")}
        first = next((kind for kind in _ENGINE_ORDER if kind in named), None)
        if first is not None:
            return words(f"engine.{first}")
    return words.code("reason", reason)


def _outbox_rows(session: Session, where: list[Any], limit: int | None,
                 words: Words) -> list[Entry]:
    earlier = aliased(OutboxMessage)
    number = (select(func.count()).select_from(earlier)
              .where(earlier.invitation_id == OutboxMessage.invitation_id,
                     earlier.kind == OutboxMessage.kind, earlier.id <= OutboxMessage.id)
              .correlate(OutboxMessage).scalar_subquery())
    query = (
        select(OutboxEvent.id, OutboxEvent.at, OutboxEvent.status, OutboxEvent.detail,
               OutboxEvent.attempt, OutboxEvent.next_at, OutboxMessage.kind,
               OutboxMessage.channel, number.label("number"), Invitation.survey_id,
               Invitation.respondent_id)
        .join(OutboxMessage, OutboxMessage.id == OutboxEvent.outbox_id)
        .outerjoin(Invitation, Invitation.id == OutboxMessage.invitation_id).where(*where))
    if limit is not None:
        query = query.order_by(OutboxEvent.id.desc()).limit(limit)
    entries = []
    for row in session.execute(query):
        entries.append(Entry(at=_utc(row.at), survey=row.survey_id or "",
                             what=outbound_what(row.kind, row.number, row.channel, words),
                             status=str(row.status),
                             detail=outbox_detail(row.detail or "", row.attempt, row.next_at,
                                                  words=words),
                             respondent_id=row.respondent_id, source="outbox"))
    return entries


def outbound_what(kind: str, number: int | None, channel: str,
                  words: Words | None = None) -> str:
    """`påminnelse 2 (e-post)`: the kind, numbered per invitation (except the invitation
    itself, which there is only one of), and the channel it goes on."""
    words = words or Words()
    name = words.code("kind", kind)
    if kind != "invitation" and number is not None:
        name = words("what.numbered", name, number)
    return words("what.outgoing", name, words.channel(channel))


def outbox_detail(detail: str, attempt: int | None = None,
                  next_at: dt.datetime | None = None, *, words: Words | None = None) -> str:
    """An outbox event's detail for people: a retry names the time of the next attempt."""
    words = words or Words()
    said = words.code("delivery", safe_reason(detail)) if detail else ""
    if attempt is not None and next_at is not None:
        return words("retry", said, local_time(next_at, "%H:%M"), attempt)
    return said


def _inbox_rows(session: Session, where: list[Any], limit: int | None,
                words: Words) -> list[Entry]:
    query = (
        select(InboxEvent.id, InboxEvent.at, InboxEvent.status, InboxEvent.detail,
               InboxMessage.classification, InboxMessage.channel, Invitation.survey_id,
               Invitation.respondent_id)
        .join(InboxMessage, InboxMessage.id == InboxEvent.inbox_id)
        .outerjoin(Invitation, Invitation.id == InboxMessage.invitation_id).where(*where))
    if limit is not None:
        query = query.order_by(InboxEvent.id.desc()).limit(limit)
    entries = []
    for row in session.execute(query):
        entries.append(Entry(at=_utc(row.at), survey=row.survey_id or "",
                             what=inbound_what(row.channel, row.classification, words),
                             status=str(row.status),
                             detail=inbox_detail(str(row.status), row.detail or "",
                                                 row.classification, words),
                             respondent_id=row.respondent_id, source="inbox"))
    return entries


def inbound_what(channel: str, classification: str | None, words: Words | None = None) -> str:
    """`innkommende e-post: svar`: the channel, and what the message was taken for."""
    words = words or Words()
    incoming = WORDS[words.lang].get(f"incoming.{channel}", channel)
    if not classification:
        return incoming
    return words("what.incoming", incoming, words.code("class", classification))


def inbox_detail(status: str, detail: str, classification: str | None = None,
                 words: Words | None = None) -> str:
    """An inbox event's detail for people, read as the event that wrote it: the size of what
    was received, why it was set aside or released, how its text was found, or why it needed
    no handling. A detail that only repeats the classification says nothing more."""
    words = words or Words()
    detail = safe_reason(detail)
    if not detail or (status == "processed" and detail == classification):
        return ""
    namespace = {"received": "received", "released": "released", "failed": "quarantine",
                 "processed": "rule"}.get(status, "signal")
    return words.code(namespace, detail)


def _merge(parts: Iterable[list[Entry]]) -> list[Entry]:
    merged = [entry for part in parts for entry in part]
    merged.sort(key=lambda e: (e.at, _ORDER.get(e.source, 9)))
    return merged


def respondent_history(session: Session, respondent_id: int, survey: str | None = None, *,
                       lang: str = "nb") -> list[Entry]:
    """Everything that happened to the respondent's invitations (one survey's, if given),
    oldest first: status changes, every outbound attempt, every reply received; told in
    `lang`."""
    words = Words(lang)
    where: list[Any] = [Invitation.respondent_id == respondent_id]
    if survey is not None:
        where.append(Invitation.survey_id == survey)
    return _merge([_invitation_rows(session, where, None, words),
                   _outbox_rows(session, where, None, words),
                   _inbox_rows(session, where, None, words)])


def recent_history(session: Session, limit: int, *, lang: str = "nb") -> list[Entry]:
    """The last `limit` events across everyone, oldest first (the operator's morning look),
    told in `lang`.

    Each table is read newest-first by id, at most `limit` rows, so this costs three short
    index scans however long the history is.
    """
    if limit <= 0:
        return []
    words = Words(lang)
    merged = _merge([_invitation_rows(session, [], limit, words),
                     _outbox_rows(session, [], limit, words),
                     _inbox_rows(session, [], limit, words)])
    return merged[-limit:]
