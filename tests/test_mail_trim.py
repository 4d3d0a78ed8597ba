"""Reply extraction against public corpora and synthetic Norwegian client formats."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bot.channels.email.html_text import html_to_text, strip_quote_containers
from bot.channels.email.trim import MARKERS, extract_reply, extract_reply_html

FIXTURES = Path(__file__).parent / "fixtures" / "trim"
TRIMMER = FIXTURES / "email_reply_trimmer"
CRISP = FIXTURES / "email-reply-parser"
FORWARDS = FIXTURES / "email-forward-parser"
SYNTHETIC = FIXTURES / "synthetic"


def _read(path: Path) -> str:
    # Decode without newline translation: CRLF fixtures must reach the trimmer as CRLF.
    return path.read_bytes().decode("utf-8")


# --- discourse/email_reply_trimmer ------------------------------------------------------------
# Cases where svarbot returns something other than Discourse, on purpose. Discourse keeps
# `>`-quoted lines around inline/bottom-posted text; svarbot keeps only the unquoted lines
# (they are the answer) and flags for review only what is uncertain.
TRIMMER_DIFFERENT = {
    "embedded_email_7": "inline answer below a quote: quoted lines dropped, text kept",
    "embedded_email_16": "bottom-post under a quote: quoted lines dropped",
    "embedded_email_17": "inline answer: quoted lines and the nested attribution dropped",
    "quote_and_text": "bottom-post: quoted line dropped",
    "quote_only": "nothing but a quote is no answer: empty text",
}
TRIMMER_NAMES = sorted(p.stem for p in (TRIMMER / "emails").glob("*.txt"))
TRIMMER_SAME = [n for n in TRIMMER_NAMES if n not in TRIMMER_DIFFERENT]


def test_trimmer_corpus_counts() -> None:
    assert len(TRIMMER_NAMES) == 64
    assert len(TRIMMER_SAME) == 59
    assert set(TRIMMER_DIFFERENT) <= set(TRIMMER_NAMES)


@pytest.mark.parametrize("name", TRIMMER_SAME)
def test_trimmer_corpus(name: str) -> None:
    body = _read(TRIMMER / "emails" / f"{name}.txt")
    expected = _read(TRIMMER / "trimmed" / f"{name}.txt").strip()
    assert extract_reply(body).text == expected


@pytest.mark.parametrize(
    ("name", "expected", "rule"),
    [
        ("quote_only", "", "quoted"),
        ("quote_and_text", "And this is some text.", "bottom_post"),
        (
            "embedded_email_16",
            "Yep, me too, although I bet due to RubyConf/OOPSLA, it may be a little\n"
            "longer yet...",
            "bottom_post",
        ),
    ],
)
def test_trimmer_corpus_deliberate_differences(name: str, expected: str, rule: str) -> None:
    result = extract_reply(_read(TRIMMER / "emails" / f"{name}.txt"))
    assert result.text == expected
    assert result.rule == rule
    # Text typed below a `>` quote is the answer: nothing there for a person to check.
    assert not result.needs_review


def test_trimmer_inline_keeps_text_on_both_sides_of_quote() -> None:
    result = extract_reply(_read(TRIMMER / "emails" / "embedded_email_17.txt"))
    assert result.text.startswith("The intent was to return nil")
    assert "People are intent on not understanding" in result.text
    assert result.text.endswith("Cheers")
    assert ">" not in result.text.replace("&&", "")
    assert result.rule == "inline"
    assert result.needs_review


def test_trimmer_elided_holds_the_quote() -> None:
    result = extract_reply(_read(TRIMMER / "emails" / "embedded_email_norwegian.txt"))
    assert result.text == "Thanx :-)"
    assert result.elided.startswith("Sendt fra min iPad")
    assert "Den 15. jun. 2016 kl. 20.42 skrev Jeff Atwood" in result.elided


# --- crisp-oss/email-reply-parser -------------------------------------------------------------
PARAGRAPH = (
    "Fusce bibendum, quam hendrerit sagittis tempor, dui turpis tempus erat, pharetra sodales "
    "ante sem sit amet metus.\n"
    "Nulla malesuada, orci non vulputate lobortis, massa felis pharetra ex, convallis "
    "consectetur ex libero eget ante.\n"
    "Nam vel turpis posuere, rhoncus ligula in, venenatis orci. Duis interdum venenatis ex a "
    "rutrum.\n"
    "Duis ut libero eu lectus consequat consequat ut vel lorem. Vestibulum convallis lectus urna,"
    "\n"
    "et mollis ligula rutrum quis. Fusce sed odio id arcu varius aliquet nec nec nibh."
)
CRISP_PARAGRAPH = [
    "email_7", "email_8", "email_9", "email_10", "email_11", "email_12", "email_13", "email_14",
    "email_16", "email_17", "email_15", "email_18", "email_22", "email_23", "email_24", "email_25",
    "email_26", "email_portuguese", "email_german", "email_german_2", "email_german_3",
    "email_german_outlook", "email_norwegian_gmail", "email_finnish", "email_italian",
    "email_russian", "email_outlook_split_line_from", "email_gmail_split_line_from",
    "email_ios_outlook", "email_ios_outlook_fr", "email_msn", "email_fr_multiline",
    "email_french_2", "email_en_multiline_2", "email_original_message", "email_original_message_2",
    "email_danish_dash_separator", "email_french_dash_separator", "email_tricky_5_mixed_languages",
    "email_tricky_10_special_chars_in_name", "email_tricky_12_no_space_after_header",
    "email_tricky_14_long_quote_header", "email_tricky_15_original_message_variations",
]


def test_crisp_paragraph_count() -> None:
    assert len(CRISP_PARAGRAPH) == 43


@pytest.mark.parametrize("name", CRISP_PARAGRAPH)
def test_crisp_fixed_paragraph(name: str) -> None:
    assert extract_reply(_read(CRISP / f"{name}.txt")).text == PARAGRAPH


CRISP_EXACT = {
    "email_1": "Hi folks\n\nWhat is the best way to clear a Riak bucket of all key, values after\n"
    "running a test?\nI am currently using the Java HTTP API.\n\n-Abhishek Kona",
    "email_3": "Oh thanks.\n\nHaving the function would be great.\n\n-Abhishek Kona",
    "email_sent_from": "Hi it can happen to any texts you type, as long as you type in between "
    "words or paragraphs.",
    "email_emoji": "🎉\n\n—\nJohn Doe\nCEO at Pandaland\n\n@pandaland",
    "email_zoho": "What is the best way to clear a Riak bucket of all key, values after\n"
    "running a test?",
    # Upstream cuts "Regards," as a signature; svarbot never cuts at closing phrases.
    "email_with_regards": "Hi,\n\nI still have the same problem....\n\nCan you help?\n\n"
    "Regards,\n\nJohn Doe\nCEO @ Acme !",
    "correct_sig": "this is an email with a correct -- signature.",
}


@pytest.mark.parametrize(("name", "expected"), sorted(CRISP_EXACT.items()))
def test_crisp_exact(name: str, expected: str) -> None:
    assert extract_reply(_read(CRISP / f"{name}.txt")).text == expected


CRISP_CONTAINS = {
    "email_4": ("Awesome", "Loader"),
    "email_6": ("I get proper rendering", "Was this"),
    "email_reply_header": ("On the other hand", "On Wed, Dec 9"),
    "email_one_is_not_on": ("One outstanding question", "On Oct 1, 2012"),
    "email_tricky_2_url_with_wrote": ("https://example.com/blog/on-date-someone-wrote", None),
    "email_tricky_3_code_block": ("function sendEmail", None),
    "email_tricky_6_regards_in_sentence": ("with regards to the payment", None),
    "email_tricky_7_multiple_dashes": ("Also these equal signs", None),
    "email_tricky_8_sent_from_in_content": ("sent from my iPhone app", None),
    "email_tricky_9_nested_quotes": ("I agree with the points", "Thanks for forwarding"),
    "email_tricky_11_double_signature": ("Thanks for your help", "Senior Developer"),
    "email_tricky_13_timestamp_variations": ("not quote headers", None),
    "email_tricky_16_unicode_signatures": ("Thanks for the update", None),
    "email_tricky_17_forward_header": ("See the forwarded message", "forwarded content"),
    "email_tricky_19_quote_without_header": ("And my final thoughts", "quoted section"),
    "email_tricky_20_html_entities": ("&gt; 100 and &lt; 200", None),
}


@pytest.mark.parametrize(("name", "kept", "cut"), [(k, *v) for k, v in CRISP_CONTAINS.items()])
def test_crisp_fragments(name: str, kept: str, cut: str | None) -> None:
    result = extract_reply(_read(CRISP / f"{name}.txt"))
    assert kept in result.text
    if cut is not None:
        assert cut not in result.text
        assert cut in result.elided


@pytest.mark.parametrize(
    "name", ["email_tricky_1_on_false_positive", "email_not_a_signature", "email_not_a_signature_2"]
)
def test_crisp_nothing_to_cut(name: str) -> None:
    body = _read(CRISP / f"{name}.txt")
    result = extract_reply(body)
    lines = [line.rstrip() for line in body.replace("\r\n", "\n").split("\n")]
    assert result.text == "\n".join(lines).strip()
    assert result.rule == "none"
    assert not result.needs_review


def test_crisp_inline_reply_keeps_every_answer() -> None:
    result = extract_reply(_read(CRISP / "email_tricky_18_inline_reply.txt"))
    assert result.text == (
        "I think option A is great.\n\nOption B has some drawbacks.\n\n"
        "Option C is not suitable for our use case."
    )
    assert result.needs_review


@pytest.mark.parametrize("path", sorted(CRISP.glob("*.txt")), ids=lambda p: p.stem)
def test_crisp_smoke_never_grows(path: Path) -> None:
    body = _read(path)
    result = extract_reply(body)
    assert len(result.text) <= len(body)
    assert result.rule


# --- Norwegian forwards (crisp-oss/email-forward-parser) --------------------------------------
@pytest.mark.parametrize("path", sorted(FORWARDS.glob("*_no_body.txt")), ids=lambda p: p.stem)
def test_norwegian_forward_is_never_a_plain_answer(path: Path) -> None:
    result = extract_reply(_read(path))
    assert result.needs_review
    assert "Fra:" not in result.text
    if path.stem == "apple_mail_no_body":  # entirely `>`-quoted: nothing new at all
        assert (result.text, result.rule) == ("", "forward")
    else:
        assert "Aenean quis diam urna" in result.text


def test_forward_with_comment_keeps_comment() -> None:
    body = "Kan du svare på denne?\n\n" + _read(FORWARDS / "thunderbird_no_body.txt")
    result = extract_reply(body)
    assert result.text == "Kan du svare på denne?"
    assert result.rule == "forward"
    assert result.needs_review


# --- synthetic Norwegian client formats -------------------------------------------------------
SYNTHETIC_RULES = {
    "apple_mail_nb": ("marker", False),
    "bottom_post_nb": ("bottom_post", False),
    "gmail_en_wrapped": ("quote_header", False),
    "gmail_nb": ("quote_header", False),
    "gmail_nb_dot_time": ("quote_header", False),
    "gmail_nb_wrapped": ("quote_header", False),
    "inline_nb": ("inline", False),
    "iphone_nb": ("signature", False),
    "iphone_nb_unquoted_header": ("signature", False),
    "marker_only_nb": ("marker", False),
    "marker_quoted_nn": ("marker", False),
    "numbered_times_nb": ("quote_header", False),
    "outlook_desktop_nb": ("header_block", False),
    "outlook_desktop_nb_bold": ("header_block", False),
    "outlook_desktop_nb_opprinnelig": ("quote_header", False),
    "outlook_mac_nb": ("quote_header", False),
    "outlook_web_nb": ("header_block", False),
    "takk_list_nb": ("quote_header", False),
    "thunderbird_nb": ("signature", False),
}


def test_every_synthetic_fixture_is_listed() -> None:
    assert sorted(p.stem for p in SYNTHETIC.glob("*.txt")) == sorted(SYNTHETIC_RULES)


@pytest.mark.parametrize(("name", "rule_review"), sorted(SYNTHETIC_RULES.items()))
def test_synthetic_plain(name: str, rule_review: tuple[str, bool]) -> None:
    result = extract_reply(_read(SYNTHETIC / f"{name}.txt"))
    assert result.text == _read(SYNTHETIC / f"{name}.expected").rstrip("\n")
    assert (result.rule, result.needs_review) == rule_review
    assert "Skriv svaret ditt" not in result.text


@pytest.mark.parametrize(
    "name", ["outlook_nb", "outlook_web_nb", "gmail_nb", "thunderbird_nb"]
)
def test_synthetic_html_only(name: str) -> None:
    result = extract_reply_html(_read(SYNTHETIC / f"{name}.html"))
    assert result.text == _read(SYNTHETIC / f"{name}_html.expected").rstrip("\n")
    assert not result.needs_review
    assert "svarbot.localhost" not in result.text


# --- answers that must survive ----------------------------------------------------------------
@pytest.mark.parametrize(
    "answer",
    [
        "Ja",
        "4",
        "1: 3\n2: ja\n3) nei",
        "Takk for at dere spør.\n- punkt 1\n- punkt 2",
        "Takk\n\nMvh\nKari",
        "Med vennlig hilsen\nKari",
        "Hilsen Kari\n-- Kari",
        "Best regards\n- a\n- b\n--\n- c\n--\nsluttord",
        "Til: alle ansatte\nSendt ut 3. mars",
        "Den 3. mars skrev vi til rådmannen om dette.",
        "- første punkt\n- andre punkt",
    ],
)
def test_answers_survive_whole(answer: str) -> None:
    result = extract_reply(answer)
    assert result.text == answer
    assert result.rule == "none"
    assert result.elided == ""


def test_answer_survives_above_quote() -> None:
    body = (
        "Takk for at dere spør.\n- punkt 1\n- punkt 2\n\nHilsen Kari\n\n"
        "Den 14.01.2025 10:03, skrev Svarbot:\n> " + MARKERS[0] + "\n> spørsmål\n"
    )
    result = extract_reply(body)
    assert result.text == "Takk for at dere spør.\n- punkt 1\n- punkt 2\n\nHilsen Kari"
    assert result.elided.startswith("Den 14.01.2025")


@pytest.mark.parametrize("marker", MARKERS)
def test_each_marker_cuts(marker: str) -> None:
    result = extract_reply(f"Ja\n{marker}\nHei Kari\n")
    assert (result.text, result.rule, result.elided) == ("Ja", "marker", f"{marker}\nHei Kari")


def test_marker_in_quote_with_answer_below() -> None:
    body = f"> {MARKERS[0]}\n> Har dere fått opplæring?\n\nJa, i fjor.\n"
    result = extract_reply(body)
    assert result.text == "Ja, i fjor."
    assert not result.needs_review  # below a real quote: certain
    assert result.rule == "bottom_post"


def test_normalisation() -> None:
    body = "Ja\u00a0takk\u200b\r\nA\u030a ja\r\n\r\nSendt fra min iPhone\r\n"
    result = extract_reply(body)
    assert result.text == "Ja takk\nÅ ja"
    assert result.rule == "signature"


@pytest.mark.parametrize("body", ["", "   \n\n", "\r\n"])
def test_empty(body: str) -> None:
    assert extract_reply(body).text == ""


def test_single_sig_delimiter_only_when_once() -> None:
    assert extract_reply("Ja\n-- \nKari").text == "Ja"
    assert extract_reply("Ja\n--\nKari\n--\nOla").text == "Ja\n--\nKari\n--\nOla"


# --- bounded work -----------------------------------------------------------------------------
PATHOLOGICAL = {
    "attribution_lines": "On 14. jan. 2025 kl. 10:03 Name <a@b\n" * 30_000,
    "repeated_on": "On 1 " * 200_000,
    "skrev": ("tir. 14. " + "skrev " * 100 + "<a@b.c>\n") * 3_000,
    "nested_quotes": "".join(">" * (i % 50) + " x\n" for i in range(100_000)),
    "fields": "Fra: x\n" * 150_000,
    "spaces": " " * 1_000_000 + "x",
    "long_address": "<" + "a@" * 500_000 + ">:\n",
    "mixed": ("Ja\n> q\nTil: a\n" + "_" * 50 + "\nSendt fra min iPhone\n") * 20_000,
}


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_pathological_input_is_fast(name: str) -> None:
    body = PATHOLOGICAL[name]
    assert len(body) >= 600_000
    started = time.perf_counter()
    extract_reply(body)
    assert time.perf_counter() - started < 1.0


def test_input_is_capped() -> None:
    body = "Ja\n" + "x\n" * 10_000
    result = extract_reply(body)
    assert result.text.count("\n") < 2_000
    assert result.needs_review


# --- HTML -------------------------------------------------------------------------------------
def test_html_to_text_blocks_lists_entities() -> None:
    html = (
        "<html><head><style>p{}</style><title>t</title></head><body>"
        "<div>Hei&nbsp;der<br>linje&nbsp;2</div><p>R&oslash;d &amp; bl&aring;</p>"
        "<ul><li>en</li><li>to <b>fet</b></li></ul><table><tr><td>a</td></tr></table>"
        "<!-- kommentar --><script>alert(1)</script></body></html>"
    )
    assert html_to_text(html) == "Hei\u00a0der\nlinje\u00a02\nRød & blå\n- en\n- to fet\na"


@pytest.mark.parametrize(
    "container",
    [
        '<div class="gmail_quote">Q</div>',
        '<div class="gmail_quote_container">Q</div>',
        '<div class="gmail_extra">Q</div>',
        '<div class="gmail_signature">Q</div>',
        '<blockquote type="cite">Q</blockquote>',
        '<div class="moz-cite-prefix">Q</div><p>Q</p>',
        '<hr><div id="divRplyFwdMsg">Q</div><div>Q</div>',
        '<div id="appendonsend"></div><div>Q</div>',
        '<div id="Signature">Q</div>',
        '<div><div style="border:none;border-top:solid #E1E1E1 1.0pt">Q</div></div><p>Q</p>',
        '<div style="border:none; border-top:solid #B5C4DF 1.0pt">Q</div><p>Q</p>',
        '<div class="yahoo_quoted">Q</div>',
        '<div class="protonmail_quote">Q</div>',
    ],
)
def test_quote_containers_removed(container: str) -> None:
    html = f"<body><div>Svar</div>{container}</body>"
    stripped = strip_quote_containers(html)
    assert html_to_text(stripped) == "Svar"
    assert "Q" in html_to_text(html)


# --- inline replies: answers belong to the question quoted above them -------------------------
INLINE_WITH_BLANK = """\
Den 15.10.2019 09:03, skrev Innovasjonsbarometeret:
> Del 5 av 8: Samarbeid
>
> 19. Hvor mange ansatte har virksomheten?
>    Svar med et tall.
40
>
> 20. Hvem har dere samarbeidet med?
>    1) Andre kommuner
>    2) Private bedrifter
>
> 21. Hvor kom ideen fra?
>    1) internt
>    2) eksternt
internt
>
> 22. Hvor enig er du?
>    a) Vi har en plan
>    b) Vi har penger
>    1 = helt uenig, 5 = helt enig
>    a) Vi har en plan
4
>    b) Vi har penger
2
"""


def test_an_inline_reply_with_a_blank_keeps_every_answer_under_its_question() -> None:
    """`internt` typed under question 21 is the answer to 21, though 20 was left blank; grid
    rows typed under their quoted row get the row's letter."""
    result = extract_reply(INLINE_WITH_BLANK)
    assert result.text == "19: 40\n21: internt\n22a: 4\n22b: 2"
    assert result.rule == "inline"
    assert not result.needs_review


def test_inline_text_that_says_its_number_is_kept_as_typed() -> None:
    body = ("Den 15.10.2019 09:03, skrev Svarbot:\n> 1. Sektor?\n1: helse\n"
            "> 2. Antall ansatte?\n40\n")
    assert extract_reply(body).text == "1: helse\n2: 40"


def test_inline_text_below_a_quote_of_no_question_is_flagged() -> None:
    """Text above and below a quote that asks nothing: kept, and a person should look."""
    body = "Svar under.\nDen 15.10.2019 09:03, skrev Kari:\n> Hei, se under.\nJa, det går fint.\n"
    result = extract_reply(body)
    assert (result.text, result.rule, result.needs_review) == (
        "Svar under.\nJa, det går fint.", "inline", True)
