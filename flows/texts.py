"""The engine's own words to respondents, in bokmål, nynorsk and English.

Questionnaire files hold the questions; everything svarbot itself says (instructions,
confirmations, "I did not understand") lives here, so that one table shows every phrase
in every language side by side. Placeholders use `str.format` names.
"""

from __future__ import annotations

from flows.model import Lang

_PHRASES: dict[str, tuple[str, str, str]] = {
    # key: (nb, nn, en)
    "page_header": ("Del {n} av {total}: {title}", "Del {n} av {total}: {title}",
                    "Part {n} of {total}: {title}"),
    "how_to_email": (
        "Trykk Svar og skriv svarene øverst i e-posten, ett per linje med spørsmålets nummer "
        "foran, for eksempel «{example}». Skriv «hjelp» om du står fast.",
        "Trykk Svar og skriv svara øvst i e-posten, eitt per linje med nummeret på spørsmålet "
        "framfor, til dømes «{example}». Skriv «hjelp» om du står fast.",
        "Press Reply and write your answers at the top of the email, one per line with the "
        "question's number first, for example «{example}». Write «help» if you get stuck.",
    ),
    "single": ("Svar med nummeret eller navnet på ett alternativ.",
               "Svar med nummeret eller namnet på eitt alternativ.",
               "Answer with the number or name of one option."),
    "multi": ("Du kan velge flere – skriv for eksempel «1, 3».",
              "Du kan velje fleire – skriv til dømes «1, 3».",
              "You may choose several – write for example «1, 3»."),
    "multi_max": ("Velg inntil {max} – skriv for eksempel «1, 3».",
                  "Vel inntil {max} – skriv til dømes «1, 3».",
                  "Choose up to {max} – write for example «1, 3»."),
    "scale": ("Svar med et tall fra {min} til {max}.", "Svar med eit tal frå {min} til {max}.",
              "Answer with a number from {min} to {max}."),
    "scale_grid": (
        "Svar med et tall fra {min} til {max} for hver linje, for eksempel «a: {max}», "
        "eller alle på én linje i rekkefølge.",
        "Svar med eit tal frå {min} til {max} for kvar linje, til dømes «a: {max}», "
        "eller alle på éi linje i rekkjefølgje.",
        "Answer with a number from {min} to {max} for each line, for example «a: {max}», "
        "or all on one line in order.",
    ),
    "yesno_grid": (
        "Svar ja eller nei for hver linje, for eksempel «a: ja», eller alle på én linje: "
        "«ja nei ja …».",
        "Svar ja eller nei for kvar linje, til dømes «a: ja», eller alle på éi linje: "
        "«ja nei ja …».",
        "Answer yes or no for each line, for example «a: yes», or all on one line: "
        "«yes no yes …».",
    ),
    "yesno": ("Svar ja eller nei.", "Svar ja eller nei.", "Answer yes or no."),
    # A grid in a chat: the rows come one message each, so say how many there are.
    "scale_rows": (
        "Svar med et tall fra {min} til {max} for hvert av de {count} punktene – de kommer ett "
        "om gangen.",
        "Svar med eit tal frå {min} til {max} for kvart av dei {count} punkta – dei kjem eitt "
        "om gongen.",
        "Answer each of the {count} points with a number from {min} to {max} – they come one "
        "at a time.",
    ),
    "yesno_rows": (
        "Svar ja eller nei for hvert av de {count} punktene – de kommer ett om gangen.",
        "Svar ja eller nei for kvart av dei {count} punkta – dei kjem eitt om gongen.",
        "Answer yes or no for each of the {count} points – they come one at a time.",
    ),
    "number": ("Svar med et tall.", "Svar med eit tal.", "Answer with a number."),
    "number_range": ("Svar med et tall fra {min} til {max}.",
                     "Svar med eit tal frå {min} til {max}.",
                     "Answer with a number from {min} to {max}."),
    "text": ("Skriv svaret med egne ord.", "Skriv svaret med eigne ord.",
             "Write your answer in your own words."),
    "required_item": ("(Dette spørsmålet må besvares.)", "(Dette spørsmålet må svarast på.)",
                      "(This question must be answered.)"),
    "dont_know": ("Vet ikke", "Veit ikkje", "Don't know"),
    "not_relevant": ("Ikke relevant", "Ikkje relevant", "Not relevant"),
    "yes": ("Ja", "Ja", "Yes"),
    "no": ("Nei", "Nei", "No"),
    "or_special": ("Du kan også svare «{words}».", "Du kan òg svare «{words}».",
                   "You can also answer «{words}»."),
    "recorded": ("Registrert:", "Registrert:", "Recorded:"),
    "skipped": ("Hoppet over: {numbers}.", "Hoppa over: {numbers}.", "Skipped: {numbers}."),
    "not_understood": ("Jeg forstod ikke svaret på {number} («{text}»): {why}",
                       "Eg forstod ikkje svaret på {number} («{text}»): {why}",
                       "I did not understand the answer to {number} («{text}»): {why}"),
    "not_placed": ("Denne teksten kunne jeg ikke knytte til et spørsmål: «{text}»",
                   "Denne teksten kunne eg ikkje knyte til eit spørsmål: «{text}»",
                   "I could not match this text to a question: «{text}»"),
    "no_such_item": ("Spørsmål {number} finnes ikke eller gjelder ikke for deg.",
                     "Spørsmål {number} finst ikkje eller gjeld ikkje for deg.",
                     "Question {number} does not exist or does not apply to you."),
    "required": ("Spørsmål {number} må besvares og kan ikke hoppes over.",
                 "Spørsmål {number} må svarast på og kan ikkje hoppast over.",
                 "Question {number} must be answered and cannot be skipped."),
    "nothing_to_skip": ("Det er ikke noe spørsmål å hoppe over nå.",
                        "Det er ikkje noko spørsmål å hoppe over no.",
                        "There is no question to skip now."),
    "at_start": ("Du er ved det første spørsmålet.", "Du er ved det første spørsmålet.",
                 "You are at the first question."),
    "current_answer": ("Svaret ditt nå: {value}", "Svaret ditt no: {value}",
                       "Your answer now: {value}"),
    "no_answer": ("Vi fant ikke noe svar i meldingen din, så vi spør på nytt.",
                  "Vi fann ikkje noko svar i meldinga di, så vi spør på nytt.",
                  "We found no answer in your message, so we are asking again."),
    "too_long_message": ("Meldingen var svært lang; jeg leste bare de første {limit} tegnene.",
                         "Meldinga var svært lang; eg las berre dei første {limit} teikna.",
                         "The message was very long; I read only the first {limit} characters."),
    "query": ("Spørsmålet ditt er sendt videre til kontaktpersonen, som svarer deg så snart "
              "som mulig.",
              "Spørsmålet ditt er sendt vidare til kontaktpersonen, som svarar deg så snart "
              "som mogleg.",
              "Your question has been passed on to the contact person, who will reply as soon "
              "as possible."),
    # "that apply to you": the total counts only what this respondent is asked, so it falls
    # when an answer rules questions out, and the words say why.
    "progress": ("Du har svart på {done} av {total} spørsmål som gjelder deg.",
                 "Du har svart på {done} av {total} spørsmål som gjeld deg.",
                 "You have answered {done} of the {total} questions that apply to you."),
    "reminder": ("En påminnelse: vi setter stor pris på svaret ditt.",
                 "Ei påminning: vi set stor pris på svaret ditt.",
                 "A reminder: we would greatly value your answer."),
    "paused": ("Greit, vi tar en pause. Svar på denne meldingen når det passer, så fortsetter "
               "vi der du slapp.",
               "Greitt, vi tek ein pause. Svar på denne meldinga når det passar, så held vi "
               "fram der du slapp.",
               "Fine, we will pause. Reply to this message whenever it suits you and we will "
               "continue where you left off."),
    "stopped": ("Du er meldt av undersøkelsen og får ikke flere meldinger om den. Ombestemmer "
                "du deg, skriv «fortsett».",
                "Du er meld av undersøkinga og får ikkje fleire meldingar om henne. Ombestemmer "
                "du deg, skriv «fortset».",
                "You have opted out of the survey and will get no more messages about it. If "
                "you change your mind, write «continue»."),
    "still_stopped": ("Du har meldt deg av undersøkelsen. Skriv «fortsett» om du vil delta "
                      "likevel.",
                      "Du har meldt deg av undersøkinga. Skriv «fortset» om du vil delta "
                      "likevel.",
                      "You have opted out of the survey. Write «continue» if you want to take "
                      "part after all."),
    "completed": ("Takk! Du har svart på alle spørsmålene. Vil du endre et svar, skriv "
                  "«endre» og nummeret, for eksempel «endre 3».",
                  "Takk! Du har svart på alle spørsmåla. Vil du endre eit svar, skriv "
                  "«endre» og nummeret, til dømes «endre 3».",
                  "Thank you! You have answered every question. To change an answer, write "
                  "«change» and the number, for example «change 3»."),
    "already_completed": ("Du har allerede svart på alle spørsmålene – takk! Skriv «endre» og "
                          "nummeret om du vil endre et svar.",
                          "Du har alt svart på alle spørsmåla – takk! Skriv «endre» og "
                          "nummeret om du vil endre eit svar.",
                          "You have already answered every question – thank you! Write "
                          "«change» and the number to change an answer."),
    "commands": ("Du kan skrive: «tilbake», «hopp over», «endre 3», «pause», «status» eller "
                 "«stopp» (meld meg av). Har du spørsmål til oss, skriv det, så går det til "
                 "kontaktpersonen.",
                 "Du kan skrive: «tilbake», «hopp over», «endre 3», «pause», «status» eller "
                 "«stopp» (meld meg av). Har du spørsmål til oss, skriv det, så går det til "
                 "kontaktpersonen.",
                 "You can write: «back», «skip», «change 3», «pause», «status» or «stop» "
                 "(opt out). If you have a question for us, write it and it goes to the "
                 "contact person."),
    # reasons an answer was not accepted
    "why_empty": ("svaret mangler.", "svaret manglar.", "the answer is missing."),
    "why_unknown_option": ("det passer ikke med noe alternativ.",
                           "det passar ikkje med noko alternativ.",
                           "it does not match any option."),
    "why_ambiguous": ("det kan bety flere alternativer ({candidates}).",
                      "det kan tyde fleire alternativ ({candidates}).",
                      "it could mean several options ({candidates})."),
    "why_too_many": ("velg høyst {limit}.", "vel høgst {limit}.", "choose at most {limit}."),
    "why_exclusive": ("dette alternativet kan ikke kombineres med andre.",
                      "dette alternativet kan ikkje kombinerast med andre.",
                      "this option cannot be combined with others."),
    "why_out_of_range": ("tallet er utenfor det tillatte området.",
                         "talet er utanfor det tillatne området.",
                         "the number is outside the allowed range."),
    "why_not_a_number": ("jeg fant ikke ett helt tall.", "eg fann ikkje eitt heilt tal.",
                         "I could not find one whole number."),
    "why_not_yes_no": ("svar ja eller nei.", "svar ja eller nei.", "answer yes or no."),
    "why_too_long": ("svaret er for langt (høyst {limit} tegn).",
                     "svaret er for langt (høgst {limit} teikn).",
                     "the answer is too long (at most {limit} characters)."),
    "why_not_offered": ("det svaralternativet finnes ikke her.",
                        "det svaralternativet finst ikkje her.",
                        "that answer is not offered here."),
    "why_rows_missing": ("svar for hver linje ({rows}).", "svar for kvar linje ({rows}).",
                         "answer each line ({rows})."),
}

_INDEX: dict[Lang, int] = {"nb": 0, "nn": 1, "en": 2}


def phrase(key: str, lang: Lang, **values: object) -> str:
    """The phrase `key` in `lang`, with placeholders filled in."""
    return _PHRASES[key][_INDEX[lang]].format(**values)


def keys() -> tuple[str, ...]:
    """Every phrase key (for tests that check all languages are written)."""
    return tuple(_PHRASES)
