"""The dialogue engine: pages by email, one item in chat, confirmations, re-asking, commands."""

from __future__ import annotations

import itertools
import random
import re
from datetime import UTC, datetime

import pytest

from flows.engine import EngineError, advance, progress
from flows.events import (
    AnswerRecorded,
    AnswerRemoved,
    InputRejected,
    ItemSkipped,
    PageCompleted,
    Paused,
    QueryRaised,
    QuestionnaireCompleted,
    Reminder,
    Reply,
    Resumed,
    Start,
    Step,
    Stopped,
)
from flows.loader import load_shipped, parse
from flows.model import AnswerValue, Item, ItemType, Questionnaire
from flows.render import BUTTON_CHARS, button_label
from flows.session import Channel, Session, Status, from_json, new_session, to_json
from flows.simulate import converse

NOW = datetime(2019, 10, 15, 9, 0, tzinfo=UTC)

SMALL = """\
spec_version: 1
id: small
title: {nb: Liten test, nn: Liten test}
languages: [nb, nn]
pages:
  - id: p1
    title: {nb: Om deg, nn: Om deg}
    items:
      - id: sektor
        type: single
        required: true
        text: {nb: "Hvilken sektor?", nn: "Kva sektor?"}
        help: {nb: Velg den som passer best., nn: Vel den som passar best.}
        options:
          - {id: helse, label: {nb: Helse og omsorg, nn: Helse og omsorg}}
          - {id: oppvekst, label: {nb: Oppvekst og utdanning, nn: Oppvekst og utdanning}}
          - {id: kultur, label: {nb: Kultur, nn: Kultur}}
      - id: innovert
        type: yesno
        required: true
        dont_know: true
        text: {nb: "Har dere innført noe nytt?", nn: "Har de innført noko nytt?"}
      - id: hva
        type: text
        text: {nb: Beskriv det nyeste., nn: Beskriv det nyaste.}
        show_if: {item: innovert, equals: "yes"}
  - id: p2
    title: {nb: Mer, nn: Meir}
    items:
      - id: ansatte
        type: number
        min: 0
        max: 5000
        text: {nb: "Hvor mange ansatte?", nn: "Kor mange tilsette?"}
      - id: grad
        type: grid
        text: {nb: "Hva fremmet det?", nn: "Kva fremja det?"}
        scale:
          min: 1
          max: 6
          labels: {1: {nb: Hemmet, nn: Hemma}, 6: {nb: Fremmet, nn: Fremja}}
          dont_know: true
        rows:
          - {id: teknologi, label: {nb: Ny teknologi, nn: Ny teknologi}}
          - {id: ledelse, label: {nb: Ledelse, nn: Leiing}}
          - {id: okonomi, label: {nb: Økonomi, nn: Økonomi}}
      - id: samarbeid
        type: multi
        max_choices: 2
        text: {nb: "Hvem samarbeidet dere med?", nn: "Kven samarbeidde de med?"}
        options:
          - {id: kommuner, label: {nb: Andre kommuner, nn: Andre kommunar}}
          - {id: forskning, label: {nb: Forskning, nn: Forsking}}
          - {id: private, label: {nb: Private bedrifter, nn: Private bedrifter}}
          - {id: ingen, label: {nb: Ingen, nn: Ingen}, exclusive: true}
"""


@pytest.fixture(scope="module")
def q() -> Questionnaire:
    return parse(SMALL, "small.yaml")


class Chat:
    """Drives the engine like a channel does: the session crosses JSON between every step."""

    def __init__(self, q: Questionnaire, channel: Channel = "email", lang: str = "nb") -> None:
        self.q = q
        self.stored = to_json(new_session(q.id, q.revision, channel=channel,
                                          lang=lang))  # type: ignore[arg-type]
        self.last = self.send(Start())

    @property
    def session(self) -> Session:
        return from_json(self.stored)

    def send(self, inbound: Start | Reply | Reminder) -> Step:
        step = advance(self.q, from_json(self.stored), inbound, now=NOW)
        self.stored = to_json(step.session)
        self.last = step
        return step

    def say(self, text: str) -> Step:
        return self.send(Reply(text))


def kinds(step: Step) -> list[str]:
    return [e.kind for e in step.events]


def test_email_asks_a_whole_page_numbered(q: Questionnaire) -> None:
    """By email the first message asks every item of page 1 that applies, numbered."""
    chat = Chat(q)
    prompt = chat.last.prompts[0]
    assert prompt.asked == ("sektor", "innovert")  # 'hva' waits for the yes/no
    assert "Del 1 av 2: Om deg" in prompt.text
    assert "1. Hvilken sektor?" in prompt.text
    assert "   2) Oppvekst og utdanning" in prompt.text
    assert "2. Har dere innført noe nytt?" in prompt.text
    assert chat.session.status is Status.IN_PROGRESS


def test_chat_asks_one_item_with_buttons(q: Questionnaire) -> None:
    """In a chat one item is asked at a time, with a button per option."""
    chat = Chat(q, channel="chat")
    prompt = chat.last.prompts[0]
    assert prompt.asked == ("sektor",)
    assert [c.label for c in prompt.choices] == ["Helse og omsorg", "Oppvekst og utdanning",
                                                 "Kultur"]
    step = chat.say(prompt.choices[2].reply)
    assert step.events[0] == AnswerRecorded("sektor", "kultur")
    assert step.prompts[0].asked == ("innovert",)
    assert [c.reply for c in step.prompts[0].choices] == ["ja", "nei", "vet ikke"]


def test_numbered_reply_answers_several_items_and_confirms(q: Questionnaire) -> None:
    """`1: …` / `2) …` lines answer their items; the reply confirms what was understood."""
    chat = Chat(q)
    step = chat.say("1: helse og omsorg\n2) ja")
    assert [e for e in step.events if isinstance(e, AnswerRecorded)] == [
        AnswerRecorded("sektor", "helse"), AnswerRecorded("innovert", "yes")]
    text = step.prompts[0].text
    assert "Registrert:\n  1: Helse og omsorg\n  2: Ja" in text
    assert step.prompts[0].asked == ("hva",)  # the follow-up shown by the yes


def test_plain_lines_answer_in_item_order(q: Questionnaire) -> None:
    """Unnumbered lines answer the open items in order."""
    chat = Chat(q)
    step = chat.say("Oppvekst\nnei")
    assert chat.session.answers == {"sektor": "oppvekst", "innovert": "no"}
    assert PageCompleted("p1") in step.events
    assert step.prompts[0].asked == ("ansatte", "grad", "samarbeid")
    assert "Del 2 av 2: Mer" in step.prompts[0].text


def test_only_the_missing_or_invalid_item_is_asked_again_with_help(q: Questionnaire) -> None:
    """A reply that answers one item and garbles another gets the garbled one back, with help."""
    chat = Chat(q)
    step = chat.say("1: blomster\n2: ja")
    rejected = [e for e in step.events if isinstance(e, InputRejected)]
    assert rejected == [InputRejected("sektor", "unknown_option", "blomster")]
    text = step.prompts[0].text
    assert "Jeg forstod ikke svaret på 1 («blomster»)" in text
    assert "(Velg den som passer best.)" in text
    assert step.prompts[0].asked == ("sektor", "hva")
    assert chat.session.answers == {"innovert": "yes"}


def test_text_that_fits_nowhere_is_quoted_back(q: Questionnaire) -> None:
    """Extra lines are never dropped silently: they are named in the reply."""
    chat = Chat(q)
    step = chat.say("1: kultur\n2: nei\nForresten er vi en liten enhet")
    assert InputRejected(None, "not_placed", "Forresten er vi en liten enhet") in step.events
    assert "«Forresten er vi en liten enhet»" in step.prompts[0].text


def test_a_question_to_a_person_becomes_a_query(q: Questionnaire) -> None:
    """'Hvem skal svare på dette?' goes to the contact person, not into an answer."""
    chat = Chat(q)
    step = chat.say("Hvem skal svare på dette?")
    assert step.events == (QueryRaised("Hvem skal svare på dette?"),)
    assert "kontaktpersonen" in step.prompts[0].text
    assert step.prompts[0].asked == ("sektor", "innovert")


def test_changing_an_answer_re_evaluates_what_follows(q: Questionnaire) -> None:
    """Changing 'innovert' from yes to no removes the answer to the follow-up it showed."""
    chat = Chat(q)
    chat.say("1: helse\n2: ja")
    chat.say("Vi har innført digitalt nattilsyn.")
    assert chat.session.answers["hva"] == "Vi har innført digitalt nattilsyn."
    step = chat.say("endre 2")
    assert step.prompts[0].asked == ("innovert",)
    assert "Svaret ditt nå: Ja" in step.prompts[0].text
    step = chat.say("nei")
    assert AnswerRecorded("innovert", "no", changed=True) in step.events
    assert AnswerRemoved("hva") in step.events
    assert "hva" not in chat.session.answers
    assert step.prompts[0].asked == ("ansatte", "grad", "samarbeid")


def test_grid_rows_by_letter_or_on_one_line(q: Questionnaire) -> None:
    """A grid is answered row by row (`5a: 4`) or on one line; missing rows are re-asked."""
    chat = Chat(q)
    chat.say("1: kultur\n2: nei")
    step = chat.say("4: ca. 40\n5a: 6\n5b: fem\n6: 1 og 2")
    assert chat.session.answers == {
        "sektor": "kultur", "innovert": "no", "ansatte": 40, "grad.teknologi": 6,
        "grad.ledelse": 5, "samarbeid": ["kommuner", "forskning"]}
    assert step.prompts[0].asked == ("grad",)
    assert "c) Økonomi" in step.prompts[0].text
    assert "a) Ny teknologi" not in step.prompts[0].text
    step = chat.say("vet ikke")
    assert AnswerRecorded("grad.okonomi", "dont_know") in step.events
    assert QuestionnaireCompleted() in step.events
    assert chat.session.status is Status.COMPLETED
    assert step.prompts[0].kind == "completed"

    other = Chat(q)
    other.say("1: kultur\n2: nei")
    other.say("4: 12\n5: 1 2 3\n6: ingen")
    assert [other.session.answers[f"grad.{r}"] for r in ("teknologi", "ledelse", "okonomi")] \
        == [1, 2, 3]


def test_skip_respects_required(q: Questionnaire) -> None:
    """`hopp over` skips optional items and refuses required ones."""
    chat = Chat(q)
    step = chat.say("hopp over")
    assert not any(isinstance(e, ItemSkipped) for e in step.events)
    assert "Spørsmål 1 må besvares" in step.prompts[0].text
    chat.say("1: kultur\n2: nei")
    step = chat.say("4: 10\nhopp over")
    assert ItemSkipped("grad") in step.events
    assert ItemSkipped("samarbeid") in step.events
    assert chat.session.status is Status.COMPLETED


def test_stop_pause_resume_and_status(q: Questionnaire) -> None:
    """Opt-out stops everything; pause waits; any reply resumes; status tells the progress."""
    chat = Chat(q)
    step = chat.say("status")
    assert "Du har svart på 0 av 6 spørsmål som gjelder deg." in step.prompts[0].text
    step = chat.say("pause")
    assert step.events == (Paused(),)
    assert chat.session.status is Status.PAUSED
    step = chat.say("1: helse")
    assert step.events[0] == Resumed()
    step = chat.say("meld meg av")
    assert step.events == (Stopped(),)
    assert step.prompts[0].kind == "stopped"
    step = chat.say("2: ja")
    assert step.events == ()
    assert chat.session.answers == {"sektor": "helse"}
    step = chat.say("fortsett")
    assert step.events == (Resumed(),)
    assert step.prompts[0].asked == ("innovert",)


def test_back_in_chat_and_email(q: Questionnaire) -> None:
    """`tilbake` re-asks the previous item (chat) or page (email)."""
    chat = Chat(q, channel="chat")
    chat.say("1")
    step = chat.say("tilbake")
    assert step.prompts[0].asked == ("sektor",)
    step = chat.say("3")
    assert AnswerRecorded("sektor", "kultur", changed=True) in step.events
    assert step.prompts[0].asked == ("innovert",)
    mail = Chat(q)
    mail.say("1: helse\n2: nei")
    step = mail.say("tilbake")
    assert step.prompts[0].asked == ("sektor", "innovert")


def test_nynorsk_prompts(q: Questionnaire) -> None:
    """A nynorsk respondent gets nynorsk questions and nynorsk words from the bot."""
    chat = Chat(q, lang="nn")
    assert "Kva sektor?" in chat.last.prompts[0].text
    step = chat.say("1: ingenting\n2: veit ikkje")
    assert "Eg forstod ikkje svaret på 1" in step.prompts[0].text
    assert chat.session.answers == {"innovert": "dont_know"}


def test_reminder_says_where_the_respondent_stands(q: Questionnaire) -> None:
    """A reminder carries the progress and the open questions."""
    chat = Chat(q)
    chat.say("1: helse")
    step = chat.send(Reminder())
    assert "Du har svart på 1 av 6 spørsmål som gjelder deg." in step.prompts[0].text
    assert step.prompts[0].asked == ("innovert",)
    assert step.events == ()


def test_progress_counts_applicable_items(q: Questionnaire) -> None:
    """Progress counts answered items against those that apply."""
    chat = Chat(q)
    chat.say("1: helse\n2: ja")
    assert progress(q, chat.session) == (2, 6)
    chat.say("endre 2")
    chat.say("nei")
    assert progress(q, chat.session) == (2, 5)


def test_caller_errors_raise_and_change_nothing(q: Questionnaire) -> None:
    """A naive clock or another questionnaire's session is the caller's error."""
    session = new_session(q.id, q.revision)
    with pytest.raises(EngineError):
        advance(q, session, Start(), now=datetime(2019, 10, 15))  # noqa: DTZ001
    with pytest.raises(EngineError):
        advance(q, new_session("other", "x"), Start(), now=NOW)
    assert session == new_session(q.id, q.revision)


def test_same_inputs_same_outputs(q: Questionnaire) -> None:
    """The engine is deterministic: replaying a conversation gives identical steps."""
    script = ["1: helse\n2: ja", "Nytt system", "hjelp", "4: 30\n5: 4 5 6\n6: a og c"]
    runs = []
    for _ in range(2):
        chat = Chat(q)
        runs.append([chat.last] + [chat.say(text) for text in script])
    assert runs[0] == runs[1]


def test_dash_and_paren_separators_and_greetings(q: Questionnaire) -> None:
    """`1 - helse og omsorg` and `2) ja` key their items; a greeting and sign-off are ignored."""
    chat = Chat(q)
    step = chat.say("Hei!\n\n1 - helse og omsorg\n2) ja\n\nMed vennlig hilsen\nKari")
    assert chat.session.answers == {"sektor": "helse", "innovert": "yes"}
    assert not any(isinstance(e, InputRejected) for e in step.events)


def test_answer_on_the_line_below_its_number(q: Questionnaire) -> None:
    """A number alone on a line with the answer beneath it, as people write under questions."""
    chat = Chat(q)
    chat.say("1.\nKultur\n\n2.\nnei")
    assert chat.session.answers == {"sektor": "kultur", "innovert": "no"}


def test_free_text_keeps_every_line(q: Questionnaire) -> None:
    """A free-text answer over several lines is kept as written."""
    chat = Chat(q)
    chat.say("1: helse\n2: ja")
    chat.say("3: Vi har tatt i bruk\nsensorer om natten.")
    assert chat.session.answers["hva"] == "Vi har tatt i bruk\nsensorer om natten."


def test_reminder_after_completion_or_opt_out_says_nothing(q: Questionnaire) -> None:
    """The engine gives no reminder text to someone who finished or opted out."""
    chat = Chat(q)
    chat.say("stopp")
    assert chat.send(Reminder()).prompts == ()


def test_very_long_message_is_capped_and_reported(q: Questionnaire) -> None:
    """A huge message is read up to the cap and the respondent is told."""
    chat = Chat(q)
    step = chat.say("1: kultur\n2: nei\n" + "x" * 30_000)
    assert any(isinstance(e, InputRejected) and e.reason == "too_long" for e in step.events)
    assert "bare de første 20000 tegnene" in step.prompts[0].text


def test_follow_up_answered_in_the_same_reply(q: Questionnaire) -> None:
    """`2: ja` and `3: …` in one reply: item 3 depends on 2 and is read after it."""
    chat = Chat(q)
    step = chat.say("1: helse\n2: ja\n3: Nytt vaktsystem")
    assert chat.session.answers == {"sektor": "helse", "innovert": "yes",
                                    "hva": "Nytt vaktsystem"}
    assert PageCompleted("p1") in step.events
    other = Chat(q)
    step = other.say("1: helse\n2: nei\n3: Nytt vaktsystem")
    assert "hva" not in other.session.answers
    assert InputRejected(None, "no_such_item", "3") in step.events
    assert "Spørsmål 3 finnes ikke eller gjelder ikke for deg." in step.prompts[0].text


# --- one question asked: a listed marker is an option -------------------------------------

SHIPPED = {q_id: load_shipped(q_id) for q_id in ("virksomhetsleder-2020", "ordforer-2020")}
ALL_NO = "nei nei nei nei"
SOME_YES = "ja nei ja nei"


def recorded(step: Step) -> dict[str, object]:
    return {e.answer_id: e.value for e in step.events if isinstance(e, AnswerRecorded)}


@pytest.mark.parametrize("text", ["1)", "1.", "1", "1:", "3)", "3.", "3", "3 -"])
def test_chat_marker_alone_is_the_option_not_the_question(q: Questionnaire, text: str) -> None:
    """In a chat `3)` copies the marker of option 3, even where question 3 exists or is
    the question asked itself (`1)` while question 1 is asked)."""
    chat = Chat(q, channel="chat")
    step = chat.say(text)
    expected = "helse" if text.startswith("1") else "kultur"
    assert recorded(step) == {"sektor": expected}
    assert not any(isinstance(e, InputRejected) for e in step.events)
    assert step.prompts[0].asked == ("innovert",)


def test_chat_marker_answers_yes_no_number_and_scale() -> None:
    """A marker answers whatever is asked: a choice, a yes/no (1 ja, 2 nei), a scale point,
    a count."""
    q = SHIPPED["ordforer-2020"]
    chat = Chat(q, channel="chat")
    assert recorded(chat.say("1)")) == {"forvaltningsniva": "kommune"}
    assert recorded(chat.say("2.")) == {"innbyggere": "fra_3000"}
    assert recorded(chat.say("2)")) == {"strategi": "andre_mater"}
    assert recorded(chat.say("2.")) == {"formal": ["kvalitet"]}
    assert recorded(chat.say("2.")) == {"midler": "no"}
    chat.say("nei")
    chat.say("4 4 4 4 4")
    assert chat.last.prompts[0].asked == ("kunnskap",)
    assert recorded(chat.say("3)")) == {"kunnskap": 3}
    other = Chat(SHIPPED["virksomhetsleder-2020"], channel="chat")
    other.say("1")
    other.say("1")
    assert recorded(other.say("12.")) == {"ansatte": 12}


def test_chat_colon_and_numbered_replies_still_name_questions(q: Questionnaire) -> None:
    """`2: ja` answers question 2; after `1) kommune` for the question asked, `2) 2` is
    question 2 (which that answer shows), as on a page of several questions."""
    chat = Chat(q, channel="chat")
    assert recorded(chat.say("2: ja")) == {"innovert": "yes"}
    assert chat.last.prompts[0].asked == ("sektor",)
    other = Chat(SHIPPED["ordforer-2020"], channel="chat")
    step = other.say("1) kommune\n2) 2")
    assert recorded(step) == {"forvaltningsniva": "kommune", "innbyggere": "fra_3000"}


@pytest.mark.parametrize("text", ["2)", "2.", "2"])
def test_email_page_with_one_question_takes_its_marker(text: str) -> None:
    """An email page that asks one question reads `2)` as its option 2, not question 2."""
    q = SHIPPED["ordforer-2020"]
    mail = Chat(q)
    assert mail.last.prompts[0].asked == ("forvaltningsniva",)
    step = mail.say(text)
    assert recorded(step) == {"forvaltningsniva": "fylkeskommune"}
    assert not any(isinstance(e, InputRejected) for e in step.events)
    mail = Chat(q)
    mail.say("kommune")
    assert mail.last.prompts[0].asked == ("innbyggere",)
    assert recorded(mail.say(text)) == {"innbyggere": "fra_3000"}


def test_email_page_with_several_questions_reads_markers_as_question_numbers(
        q: Questionnaire) -> None:
    """`1) 3` and `2) ja` on a page of several questions: question 1 is 3, question 2 is ja."""
    mail = Chat(q)
    assert recorded(mail.say("1) 3\n2) ja")) == {"sektor": "kultur", "innovert": "yes"}
    page_two = Chat(q)
    page_two.say("1: helse\n2: nei")
    assert recorded(page_two.say("4) 12\n6) 2")) == {"ansatte": 12, "samarbeid": ["forskning"]}


# --- grid rows by their letters on one line -------------------------------------------------

LETTERED = ["a 3, b 4, c 2", "a3 b4 c2", "a: 3, b: 4, c: 2", "a) 3 b) 4 c) 2", "a 3 og b 4 og c 2",
            "c 2, a 3, b 4"]
GRAD = {"grad.teknologi": 3, "grad.ledelse": 4, "grad.okonomi": 2}


@pytest.mark.parametrize("text", LETTERED)
def test_chat_grid_rows_by_letter_on_one_line(q: Questionnaire, text: str) -> None:
    """A grid asked row by row in a chat still takes `a 3, b 4, c 2` and its variants."""
    chat = Chat(q, channel="chat")
    chat.say("1")
    chat.say("nei")
    chat.say("12")
    assert chat.last.prompts[0].asked == ("grad.teknologi",)
    step = chat.say(text)
    assert recorded(step) == GRAD
    assert step.prompts[0].asked == ("samarbeid",)


@pytest.mark.parametrize("text", LETTERED)
def test_email_grid_rows_by_letter_on_one_line(q: Questionnaire, text: str) -> None:
    """On an email page the lettered rows come numbered (`5: a 3, b 4`), or unnumbered
    where the grid's answer belongs."""
    for reply in (f"4: 12\n5: {text}\n6: 2", f"12\n{text}\nforskning"):
        mail = Chat(q)
        mail.say("1: helse\n2: nei")
        step = mail.say(reply)
        assert recorded(step) == {"ansatte": 12, **GRAD, "samarbeid": ["forskning"]}, reply
        assert chat_done(mail)


def chat_done(chat: Chat) -> bool:
    return chat.session.status is Status.COMPLETED


def test_lettered_rows_after_a_row_number_and_partly(q: Questionnaire) -> None:
    """`5a: 3, b: 4` gives both rows; rows left out are asked again; a bad row is named."""
    mail = Chat(q)
    mail.say("1: helse\n2: nei")
    step = mail.say("4: 12\n5a: 3, b: 4\n6: 2")
    assert recorded(step) == {"ansatte": 12, "grad.teknologi": 3, "grad.ledelse": 4,
                              "samarbeid": ["forskning"]}
    assert step.prompts[0].asked == ("grad",)
    assert "c) Økonomi" in step.prompts[0].text
    chat = Chat(q, channel="chat")
    chat.say("1")
    chat.say("nei")
    chat.say("12")
    step = chat.say("a 3, b 9, c 2")
    assert recorded(step) == {"grad.teknologi": 3, "grad.okonomi": 2}
    assert InputRejected("grad", "out_of_range", "9") in step.events
    assert "Jeg forstod ikke svaret på 5b («9»)" in step.prompts[0].text


# --- a grid's lettered rows among other questions on an email page -------------------------


def page_two(q: Questionnaire) -> Chat:
    mail = Chat(q)
    mail.say("1: helse\n2: nei")
    assert mail.last.prompts[0].asked == ("ansatte", "grad", "samarbeid")
    return mail


ROWS_BY_LINE = "a) 3\nb) 4\nc) 2"


@pytest.mark.parametrize("reply", [
    f"12\n{ROWS_BY_LINE}\nforskning",  # in the grid's place
    f"12\n5)\n{ROWS_BY_LINE}\nforskning",  # after a line naming the grid
    f"12\n5:\n{ROWS_BY_LINE}\nforskning",
    f"4: 12\n{ROWS_BY_LINE}\n6: forskning",  # after the numbered answer before the grid
    f"4: 12\n{ROWS_BY_LINE}\nforskning",
    "12\na: 3\nb: 4\nc: 2\nforskning",
])
def test_email_grid_rows_by_letter_among_other_questions(q: Questionnaire, reply: str) -> None:
    """Lines that start with the grid's row letters go to the grid; what follows them goes to
    the questions after the grid."""
    mail = page_two(q)
    step = mail.say(reply)
    assert recorded(step) == {"ansatte": 12, **GRAD, "samarbeid": ["forskning"]}
    assert not any(isinstance(e, InputRejected) for e in step.events)
    assert chat_done(mail)


def test_an_answer_left_out_before_the_grid_does_not_shift_the_rest(q: Questionnaire) -> None:
    """The lines after the grid's rows answer the questions after the grid, even when a
    question before it was left out."""
    mail = page_two(q)
    step = mail.say(f"{ROWS_BY_LINE}\nforskning")
    assert recorded(step) == {**GRAD, "samarbeid": ["forskning"]}
    assert step.prompts[0].asked == ("ansatte",)
    mail = page_two(q)
    step = mail.say(f"12\nvi vet ikke\n{ROWS_BY_LINE}\nforskning")
    assert recorded(step) == {"ansatte": 12, **GRAD, "samarbeid": ["forskning"]}
    assert InputRejected(None, "not_placed", "vi vet ikke") in step.events


def test_letters_inside_a_later_free_text_answer_stay_there() -> None:
    """`26: Vi har to ting:` with `a)` and `b)` lines under it is the comment, not grid rows."""
    q = SHIPPED["virksomhetsleder-2020"]
    mail = Chat(q)
    mail.say("1\n1\n40")
    mail.say(ALL_NO)
    mail.say("nei")
    assert mail.last.prompts[0].asked == (
        "strategi", "midler", "innovasjonsressurs", "kultur", "kommentar")
    step = mail.say("ja\nnei\nja\n1 2 3 4 2\n26: Vi har to ting:\na) bedre ledelse\nb) mer tid")
    assert step.session.answers["kommentar"] == "Vi har to ting:\na) bedre ledelse\nb) mer tid"
    assert step.session.answers["kultur.tid"] == 2


def test_shipped_culture_page_with_grid_rows_by_letter() -> None:
    """The respondents' case: three yes/no answers, the grid's rows a) to e), a comment."""
    q = SHIPPED["virksomhetsleder-2020"]
    mail = Chat(q)
    mail.say("1\n1\n40")
    mail.say(ALL_NO)
    mail.say("nei")
    step = mail.say("ja\nnei\nja\na) 1\nb) 2\nc) 3\nd) 4\ne) 2\nIngen kommentar")
    assert step.session.answers["kommentar"] == "Ingen kommentar"
    assert [step.session.answers[f"kultur.{r.id}"] for r in q.item("kultur").rows] == [
        1, 2, 3, 4, 2]
    assert {k: step.session.answers[k] for k in ("strategi", "midler", "innovasjonsressurs")} \
        == {"strategi": "yes", "midler": "no", "innovasjonsressurs": "yes"}
    assert step.session.status is Status.COMPLETED
    text = step.prompts[0].text
    assert text.index("  22: Ja") < text.index("  25a: 1") < text.index("  26: Ingen")


# --- "Del n av m" and the question total ----------------------------------------------------


def headers(step: Step) -> list[str]:
    return [line for p in step.prompts for line in p.text.split("\n")
            if line.startswith(("Del ", "Part "))]


@pytest.mark.parametrize("channel", ["email", "chat"])
def test_pages_skipped_by_show_if_are_not_counted(channel: Channel) -> None:
    """"Del 2 av 8" is followed by "Del 3 av …", never "Del 4": the total counts the pages
    that still apply."""
    q = SHIPPED["virksomhetsleder-2020"]
    for grid, expected in ((ALL_NO, "Del 3 av 4: Utviklingsarbeid"),
                           (SOME_YES, "Del 3 av 7: Den nyeste innovasjonen")):
        conversation = Chat(q, channel=channel)
        assert headers(conversation.last) == ["Del 1 av 8: Om virksomheten"]
        for answer in (["1\n1\n40"] if channel == "email" else ["1", "1", "40"]):
            step = conversation.say(answer)
        assert headers(step) == ["Del 2 av 8: Innovasjon de siste to årene"]
        assert headers(conversation.say(grid)) == [expected]
    step = conversation.say("endre 4")
    assert headers(step) == ["Del 2 av 7: Innovasjon de siste to årene"]


@pytest.mark.parametrize("q_id", sorted(SHIPPED))
@pytest.mark.parametrize("channel", ["email", "chat"])
def test_page_numbers_never_jump_and_totals_never_grow(q_id: str, channel: Channel) -> None:
    """Along any path: parts are numbered 1, 2, 3 … ending at the total, and neither the
    page total nor the question total grows (no one changes an answer here)."""
    q = SHIPPED[q_id]
    rng = random.Random(3)
    for _ in range(30):
        transcript = converse(q, rng, channel=channel, now=NOW)
        numbers: list[tuple[int, int]] = []
        totals: list[int] = []
        for step in transcript.steps:
            for line in headers(step):
                n, total = re.match(r"Del (\d+) av (\d+)", line).groups()  # type: ignore[union-attr]
                numbers.append((int(n), int(total)))
            totals.append(progress(q, step.session)[1])
        assert [n for n, _ in numbers] == list(range(1, len(numbers) + 1)), numbers
        assert all(a[1] >= b[1] for a, b in itertools.pairwise(numbers)), numbers
        assert numbers[-1][0] == numbers[-1][1], numbers
        assert totals == sorted(totals, reverse=True)
        assert progress(q, transcript.final) == (totals[-1], totals[-1])


def test_question_total_counts_what_still_applies() -> None:
    """The total is what this respondent may still be asked: it falls as answers rule items
    out, and rises again only when an answer is changed."""
    q = SHIPPED["virksomhetsleder-2020"]
    mail = Chat(q)
    mail.say("1\n1\n40")
    assert progress(q, mail.session) == (3, 26)
    mail.say(SOME_YES)
    assert progress(q, mail.session) == (4, 24)
    assert "Du har svart på 4 av 24 spørsmål som gjelder deg." in mail.say("status").prompts[0].text
    other = Chat(q)
    other.say("1\n1\n40")
    other.say(ALL_NO)
    assert progress(q, other.session) == (4, 11)
    other.say("nei")
    assert progress(q, other.session) == (5, 10)
    other.say("endre 4")
    other.say(SOME_YES)
    assert progress(q, other.session) == (4, 24)


# --- a reply with nothing in it -------------------------------------------------------------


NO_ANSWER = {
    "nb": "Vi fant ikke noe svar i meldingen din, så vi spør på nytt.",
    "nn": "Vi fann ikkje noko svar i meldinga di, så vi spør på nytt.",
    "en": "We found no answer in your message, so we are asking again.",
}


@pytest.mark.parametrize("text", ["", "   ", "\n\n  \t\n", "Hei!\n\nMvh\nKari Nordmann"])
@pytest.mark.parametrize("channel", ["email", "chat"])
def test_empty_reply_is_told_and_asked_again(q: Questionnaire, text: str,
                                             channel: Channel) -> None:
    """A mail that held only the quote (or only a greeting) is told so, then asked again."""
    conversation = Chat(q, channel=channel)
    asked = conversation.last.prompts[0].asked
    step = conversation.say(text)
    assert step.events == ()
    assert step.prompts[0].text.startswith(NO_ANSWER["nb"])
    assert step.prompts[0].asked == asked
    assert "Hvilken sektor?" in step.prompts[0].text
    assert conversation.session.status is Status.IN_PROGRESS


@pytest.mark.parametrize("lang", ["nb", "nn", "en"])
def test_empty_reply_in_every_language(lang: str) -> None:
    q = SHIPPED["ordforer-2020"]
    mail = Chat(q, lang=lang)
    mail.say("1")
    step = mail.say("")
    assert step.prompts[0].text.startswith(NO_ANSWER[lang])
    assert step.prompts[0].asked == ("innbyggere",)


def test_no_empty_reply_note_where_something_was_read(q: Questionnaire) -> None:
    """Answers, commands, rejected text and finished or paused conversations get no note."""
    for text in ("1: helse", "status", "hjelp", "1: blomster", "Hvem skal svare?"):
        step = Chat(q).say(text)
        assert NO_ANSWER["nb"] not in step.prompts[0].text, text
    chat = Chat(q)
    chat.say("pause")
    assert NO_ANSWER["nb"] not in chat.say("").prompts[0].text
    done = Chat(q)
    done.say("1: kultur\n2: nei")
    done.say("4: 10\nhopp over")
    assert done.session.status is Status.COMPLETED
    assert NO_ANSWER["nb"] not in done.say("").prompts[0].text


# --- a grid in a chat: one row at a time -----------------------------------------------------


def at_grid(q: Questionnaire) -> Chat:
    """A chat on the small questionnaire, asked the first row of the grid (question 5)."""
    chat = Chat(q, channel="chat")
    chat.say("1")
    chat.say("nei")
    chat.say("12")
    assert chat.last.prompts[0].asked == ("grad.teknologi",)
    return chat


def test_chat_asks_a_grid_row_by_row(q: Questionnaire) -> None:
    """Each row is its own prompt, named `grid.row`; the grid's question comes with the first
    row only; each tap answers the row asked; after the last row the next item comes."""
    chat = at_grid(q)
    first = chat.last.prompts[0]
    assert "5. Hva fremmet det?" in first.text
    assert "   1 = Hemmet" in first.text
    assert "for hvert av de 3 punktene – de kommer ett om gangen." in first.text
    assert first.text.endswith("5a) Ny teknologi")
    assert "Ledelse" not in first.text
    assert [(c.label, c.reply) for c in first.choices] == [
        ("1 – hemmet", "1"), ("2", "2"), ("3", "3"), ("4", "4"), ("5", "5"),
        ("6 – fremmet", "6"), ("Vet ikke", "vet ikke")]
    assert chat.session.asked == ("grad.teknologi",)
    step = chat.say(first.choices[3].reply)
    assert recorded(step) == {"grad.teknologi": 4}
    second = step.prompts[0]
    assert second.asked == ("grad.ledelse",)
    assert second.text == "Registrert:\n  5a: 4\n\n5b) Ledelse"
    assert second.choices == first.choices
    step = chat.say("vet ikke")
    assert recorded(step) == {"grad.ledelse": "dont_know"}
    assert step.prompts[0].asked == ("grad.okonomi",)
    step = chat.say("6")
    assert recorded(step) == {"grad.okonomi": 6}
    assert PageCompleted("p2") not in step.events  # samarbeid is still open
    assert step.prompts[0].asked == ("samarbeid",)


@pytest.mark.parametrize(("reply", "expected"), [
    ("3", {"grad.teknologi": 3}),
    ("3)", {"grad.teknologi": 3}),
    ("fem", {"grad.teknologi": 5}),
    ("5 av 6", {"grad.teknologi": 5}),
    ("6 fremmet", {"grad.teknologi": 6}),  # a value and its own label: one answer
    ("3 4", {"grad.teknologi": 3, "grad.ledelse": 4}),
    ("4 4", {"grad.teknologi": 4, "grad.ledelse": 4}),
    ("3 4 2", {"grad.teknologi": 3, "grad.ledelse": 4, "grad.okonomi": 2}),
    ("342", {"grad.teknologi": 3, "grad.ledelse": 4, "grad.okonomi": 2}),
    ("3\n4", {"grad.teknologi": 3, "grad.ledelse": 4}),
    ("b 4", {"grad.ledelse": 4}),
    ("a 3, c 2", {"grad.teknologi": 3, "grad.okonomi": 2}),
    ("5: 3 4", {"grad.teknologi": 3, "grad.ledelse": 4}),
])
def test_chat_grid_row_replies(q: Questionnaire, reply: str,
                               expected: dict[str, object]) -> None:
    """A reply answers the row asked; plain values after it answer the next rows; rows named
    by their letters answer those rows."""
    step = at_grid(q).say(reply)
    assert recorded(step) == expected
    assert not any(isinstance(e, InputRejected) for e in step.events)


def test_chat_grid_values_go_to_the_rows_still_open(q: Questionnaire) -> None:
    """Values typed at a row skip rows already answered; too many values are rejected and
    name the rows that are left; a bad value is named by its row."""
    chat = at_grid(q)
    chat.say("c 2")
    step = chat.say("3 4")
    assert recorded(step) == {"grad.teknologi": 3, "grad.ledelse": 4}
    chat = at_grid(q)
    chat.say("4")
    step = chat.say("1 2 3")  # as many values as rows: the whole grid, from row a
    assert recorded(step) == {"grad.teknologi": 1, "grad.ledelse": 2, "grad.okonomi": 3}
    chat = at_grid(q)
    chat.say("4")
    chat.say("4")
    step = chat.say("1 2")
    assert recorded(step) == {}
    assert InputRejected("grad", "rows_missing", "1 2") in step.events
    assert "svar for hver linje (c)" in step.prompts[0].text
    chat = at_grid(q)
    chat.say("4")
    step = chat.say("9")
    assert InputRejected("grad", "out_of_range", "9") in step.events
    assert "Jeg forstod ikke svaret på 5b («9»)" in step.prompts[0].text
    assert step.prompts[0].asked == ("grad.ledelse",)
    assert "5. Hva fremmet det?" in step.prompts[0].text  # asked again with the question


def test_chat_grid_back_and_skip_per_row(q: Questionnaire) -> None:
    """`tilbake` goes to the previous row (and from the first row to the item before);
    `hopp over` skips the row asked, and a later answer un-skips it."""
    chat = at_grid(q)
    chat.say("4")
    step = chat.say("tilbake")
    assert step.prompts[0].asked == ("grad.teknologi",)
    assert step.prompts[0].text == "5a) Ny teknologi\n   Svaret ditt nå: 4"
    step = chat.say("5")
    assert AnswerRecorded("grad.teknologi", 5, changed=True) in step.events
    assert step.prompts[0].asked == ("grad.ledelse",)
    step = chat.say("hopp over")
    assert step.events == (ItemSkipped("grad.ledelse"),)
    assert step.prompts[0].text == "Hoppet over: 5b.\n\n5c) Økonomi"
    assert chat.session.skipped == ("grad.ledelse",)
    step = chat.say("tilbake")
    assert step.prompts[0].asked == ("grad.ledelse",)
    step = chat.say("tilbake")
    assert step.prompts[0].asked == ("grad.teknologi",)
    step = chat.say("tilbake")
    assert step.prompts[0].asked == ("ansatte",)
    chat.say("12")
    assert chat.last.prompts[0].asked == ("grad.okonomi",)
    chat.say("2")
    assert chat.last.prompts[0].asked == ("samarbeid",)
    assert progress(q, chat.session) == (4, 5)  # the grid is done: rows answered or skipped
    step = chat.say("tilbake")
    assert step.prompts[0].asked == ("grad.okonomi",)
    assert "5. Hva fremmet det?" in step.prompts[0].text
    chat.say("endre 5")
    step = chat.say("b 3")
    assert recorded(step) == {"grad.ledelse": 3}
    assert "grad.ledelse" not in chat.session.skipped


def test_chat_change_walks_a_grid_from_its_first_row(q: Questionnaire) -> None:
    """`endre 5` asks the grid again from row a, each row with its answer; a tap keeps or
    changes it; after the last row the conversation goes on where it was."""
    chat = at_grid(q)
    chat.say("3 4 2")
    step = chat.say("endre 5")
    assert step.prompts[0].asked == ("grad.teknologi",)
    assert step.prompts[0].text.startswith("Del 2 av 2: Mer\n\n5. Hva fremmet det?")
    assert step.prompts[0].text.endswith("5a) Ny teknologi\n   Svaret ditt nå: 3")
    assert chat.session.focus == ("grad.teknologi", "grad.ledelse", "grad.okonomi")
    step = chat.say("3")
    assert step.events == ()
    assert step.prompts[0].text == "5b) Ledelse\n   Svaret ditt nå: 4"
    step = chat.say("1")
    assert recorded(step) == {"grad.ledelse": 1}
    assert step.prompts[0].asked == ("grad.okonomi",)
    step = chat.say("2")
    assert step.prompts[0].asked == ("samarbeid",)
    assert chat.session.focus == ()


def test_chat_grid_help_status_and_empty_reply_show_the_question(q: Questionnaire) -> None:
    """A respondent who is stuck on a row, or comes back to it, sees the grid's question
    again with the row."""
    chat = at_grid(q)
    chat.say("4")
    for text in ("hjelp", "status", "", "Hvem skal svare?"):
        step = chat.say(text)
        assert step.prompts[0].asked == ("grad.ledelse",), text
        assert "5. Hva fremmet det?" in step.prompts[0].text, text
        assert step.prompts[0].text.endswith("5b) Ledelse"), text
    assert chat.send(Start()).prompts[0].text.endswith("5b) Ledelse")


REQUIRED_GRID = """\
spec_version: 1
id: rows
title: Rader
languages: [nb]
pages:
  - id: p
    title: Side
    items:
      - id: tiltak
        type: grid
        row_type: yesno
        text: "Har dere gjort dette?"
        rows:
          - {id: a, label: "Nye tjenester"}
          - {id: b, label: "Nye verktøy"}
      - id: hva
        type: text
        text: "Hvilke tjenester?"
        show_if: {item: tiltak.a, equals: "yes"}
      - id: plikt
        type: grid
        row_type: yesno
        required: true
        text: "Må besvares"
        rows:
          - {id: x, label: "Første"}
"""


def test_a_skipped_row_rules_out_what_depends_on_it() -> None:
    """A follow-up of a skipped row is not asked (its condition is false, not pending), and
    a required grid's row cannot be skipped."""
    q = parse(REQUIRED_GRID, "rows.yaml")
    chat = Chat(q, channel="chat")
    assert chat.last.prompts[0].asked == ("tiltak.a",)
    assert [c.reply for c in chat.last.prompts[0].choices] == ["ja", "nei"]
    chat.say("hopp over")
    step = chat.say("ja")
    assert recorded(step) == {"tiltak.b": "yes"}
    assert step.prompts[0].asked == ("plikt.x",)
    assert "1x" not in step.prompts[0].text
    assert step.prompts[0].text.endswith("3a) Første")
    assert "Svar ja eller nei." in step.prompts[0].text  # one row: no "one at a time"
    step = chat.say("hopp over")
    assert "Spørsmål 3 må besvares" in step.prompts[0].text
    assert chat.session.skipped == ("tiltak.a",)
    assert progress(q, chat.session) == (1, 2)
    step = chat.say("nei")
    assert chat.session.status is Status.COMPLETED


def test_email_asks_a_grid_whole_after_a_chat_row(q: Questionnaire) -> None:
    """The session belongs to the invitation: a respondent who moves to email in the middle
    of a grid gets the grid's open rows on one page."""
    chat = at_grid(q)
    chat.say("4")
    step = chat.send(Start(channel="email"))
    assert step.prompts[0].asked == ("grad", "samarbeid")
    assert "a) Ny teknologi" not in step.prompts[0].text
    assert "   b) Ledelse" in step.prompts[0].text
    assert step.prompts[0].choices == ()
    step = chat.say("5: 3 2")
    assert recorded(step) == {"grad.ledelse": 3, "grad.okonomi": 2}


# --- buttons: every reply a chat offers reads back as its answer ------------------------------


def button_values(item: Item) -> list[AnswerValue]:
    """What each button of `item` (or of one of its grid rows) stands for, in order, worked
    out from the questionnaire alone."""
    if item.type is ItemType.SINGLE:
        return [o.id for o in item.options]
    if item.type is ItemType.MULTI:
        return [[o.id] for o in item.options]
    if item.type is ItemType.YESNO or (item.type is ItemType.GRID and item.row_type == "yesno"):
        return ["yes", "no", *(["dont_know"] if item.dont_know else [])]
    if item.scale is not None:
        scale = item.scale
        return [*range(scale.min, scale.max + 1), *(["dont_know"] if scale.dont_know else []),
                *(["not_relevant"] if scale.not_relevant else [])]
    return []


def several_options(item: Item) -> tuple[str, list[str]]:
    """"Ferdig" after choosing as many options as allowed (none exclusive): the reply and the
    value it stands for."""
    plain = [(n, o.id) for n, o in enumerate(item.options, 1) if not o.exclusive]
    chosen = plain[: item.max_choices or len(plain)]
    return ", ".join(str(n) for n, _ in chosen), [option_id for _, option_id in chosen]


def check_buttons(q: Questionnaire, step: Step) -> None:
    """Tap each button of the prompt: exactly its value is recorded for the id asked."""
    prompt = step.prompts[0]
    (asked,) = prompt.asked
    item = q.item(asked.partition(".")[0])
    values = button_values(item)
    assert len(prompt.choices) == len(values), asked
    assert prompt.multiple is (item.type is ItemType.MULTI), asked
    labels = [c.label for c in prompt.choices]
    assert len(set(labels)) == len(labels), labels
    assert all(0 < len(label) <= BUTTON_CHARS for label in labels), labels
    taps = [(c.reply, value) for c, value in zip(prompt.choices, values, strict=True)]
    if prompt.multiple:
        taps.append(several_options(item))
    for reply, value in taps:
        tapped = advance(q, from_json(to_json(step.session)), Reply(reply), now=NOW)
        assert recorded(tapped) == {asked: value}, (asked, reply)
        assert not any(isinstance(e, InputRejected) for e in tapped.events), (asked, reply)


@pytest.mark.parametrize("q_id", sorted(SHIPPED))
def test_every_button_records_what_it_stands_for(q_id: str) -> None:
    """For every item and grid row of the shipped questionnaires, in every language, tapping
    each button records the value it stands for; numbers and free text have no buttons."""
    q = SHIPPED[q_id]
    rng = random.Random(7)
    every = {unit for item in q.items for unit in (item.keys if item.rows else (item.id,))}
    for lang in q.languages:
        checked: set[str] = set()
        for _ in range(400):
            step = advance(q, new_session(q.id, q.revision, channel="chat", lang=lang), Start(),
                           now=NOW)
            while step.session.status is Status.IN_PROGRESS:
                (asked,) = step.prompts[0].asked
                item = q.item(asked.partition(".")[0])
                if asked not in checked:
                    checked.add(asked)
                    check_buttons(q, step)
                choices = step.prompts[0].choices
                reply = rng.choice(choices).reply if choices else (
                    "12" if item.type is ItemType.NUMBER else "Ingen kommentar.")
                step = advance(q, from_json(to_json(step.session)), Reply(reply), now=NOW)
            if checked == every:
                break
        assert checked == every, (lang, every - checked)


def test_button_labels_are_short_and_end_cleanly() -> None:
    """A long option becomes a label of at most 40 characters ending at a word, with "…",
    without a parenthesis left open; short ones stay as written."""
    assert button_label("Helse og omsorg") == "Helse og omsorg"
    assert button_label("Kultur (til dømes bibliotek, kulturskule, kulturhus)") == "Kultur…"
    assert button_label("Yes, we have a strategy or plan for innovation") == (
        "Yes, we have a strategy or plan for…")
    assert button_label("x" * 60) == "x" * 39 + "…"
    for option in SHIPPED["virksomhetsleder-2020"].item("enhetstype").options:
        label = button_label(option.label.nb)
        assert len(label) <= BUTTON_CHARS
        assert label == option.label.nb or (label.endswith("…") and "(" not in label[-3:])


def test_chat_multiple_choice_prompt_and_done_reply(q: Questionnaire) -> None:
    """A multiple choice offers one toggle per option and reads "1, 3" back as both; its
    limit and exclusive options are the engine's to enforce."""
    chat = at_grid(q)
    step = chat.say("3 4 2")
    prompt = step.prompts[0]
    assert prompt.asked == ("samarbeid",)
    assert prompt.multiple
    assert [(c.label, c.reply) for c in prompt.choices] == [
        ("Andre kommuner", "1"), ("Forskning", "2"), ("Private bedrifter", "3"), ("Ingen", "4")]
    assert recorded(chat.say("1, 2, 3")) == {}
    assert recorded(chat.say("1, 4")) == {}
    assert recorded(chat.say("1, 3")) == {"samarbeid": ["kommuner", "private"]}
    assert not Chat(q).last.prompts[0].multiple  # email: no buttons at all


def test_a_reminder_asks_in_the_style_of_the_channel_it_goes_by() -> None:
    """A chat session reminded by email gets a page (several questions), and the reverse."""
    from flows.events import Reminder, Start
    from flows.loader import load_shipped
    from flows.session import new_session

    q = load_shipped("virksomhetsleder-2020")
    now = datetime(2019, 10, 22, 9, 0, tzinfo=UTC)
    chat = advance(q, new_session(q.id, q.revision, channel="chat"), Start(channel="chat"),
                   now=now)
    assert len(chat.session.asked) == 1
    by_email = advance(q, chat.session, Reminder(channel="email"), now=now)
    assert by_email.session.channel == "email"
    assert len(by_email.session.asked) > 1
    by_chat = advance(q, by_email.session, Reminder(channel="chat"), now=now)
    assert len(by_chat.session.asked) == 1
