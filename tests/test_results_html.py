"""The HTML and PDF report show the published figures and nothing else.

The report is built from real counts (an SQLite answer store filled as `test_aggregate` fills
it): unit leaders in helse and teknisk, and three in kultur, one of whom wrote something
telling. Kultur's whole column is hidden, and so is enough else that its numbers cannot be
worked out. The checks read the output as a reader would (the text of the HTML, the text of
the PDF, the SVG charts) and allow a number only if the published figures (`shown_numbers`),
the front page's fieldwork or the methods section put it there, or it is structural (k, the
field period, the 95 % of the margins, page numbers): a hidden count that slipped into a
label, a description or the length of a bar fails them.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from browser import axe_violations, browser_session, describe_violations, screenshot
from bs4 import BeautifulSoup, Tag
from sqlalchemy import create_engine
from test_aggregate import TELLING_TEXT, add_responses, answers_for, questionnaire

from bot.results.charts import percent
from bot.results.fieldwork import Fieldwork, FieldworkRow
from bot.results.html import render_html
from bot.results.pdf import render_pdf
from bot.results.published import (
    Changes,
    Comparison,
    Estimates,
    FigureKey,
    Question,
    Results,
    Weighting,
    publish_results,
    shown_numbers,
)
from storage.aggregate import Report, build_report, stratum_label
from storage.schema import Base

K = 5
PERIOD = (dt.date(2019, 10, 15), dt.date(2019, 12, 6))
SAMPLE_NOTE = "Stratifisert utvalg etter sektor, trukket med seed 7 av svarbot sample."
INVITED = {"helse": 41, "kultur": 6, "teknisk": 33}
#: Free text the report must never show: the telling answer and the others written.
FREE_TEXTS = (TELLING_TEXT, "inhabil", "tekst nummer")
NUMBER = re.compile(r"[+\u2212]?\d+(?:[\u00a0\u202f]\d{3})*(?:,\d+)?")
#: What follows a category label on a table row or a chart line in the PDF's text: cells.
CELLS = re.compile(r"(\s+(:|[+\u2212-]?\d+(\s%)?\*?|±\d+))+")


# --- the report --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Report]:
    path = tmp_path_factory.mktemp("report") / "answers.db"
    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    rows: list[tuple[dict[str, Any], dict[str, object]]] = []
    rows += [({"sector": "helse"}, answers_for(n, "helse")) for n in range(30)]
    rows += [({"sector": "teknisk"}, answers_for(n + 1, "teknisk")) for n in range(24)]
    rows += [({"sector": "kultur"}, {**answers_for(n, "kultur"), "fritt": TELLING_TEXT})
             for n in range(3)]
    add_responses(engine, "s", rows)
    with engine.connect() as connection:
        yield build_report(connection, "s", questionnaire(), ("sector",), K)
    engine.dispose()


def fieldwork_of(report: Report) -> Fieldwork:
    """The front page's numbers: answered as the report publishes its respondents."""
    first = report.tables[0].respondents
    rows = []
    for column, answered in zip(report.columns, first, strict=True):
        invited = sum(INVITED.values()) if column.key is None else INVITED[column.label]
        rows.append(FieldworkRow(column.label, invited, answered))
    return Fieldwork("Innovasjonsbarometeret 2020 – test", report.questionnaire_id, PERIOD,
                     tuple(rows))


def _shown_keys(results: Results, answer_ids: Iterable[str]) -> Iterator[tuple[FigureKey,
                                                                               float]]:
    wanted = set(answer_ids)
    for q in results.questions:
        if q.spec.answer_id not in wanted:
            continue
        for i, category in enumerate(q.spec.categories):
            for j, figure in enumerate(q.figures[i]):
                if figure.share is not None:
                    yield (q.spec.answer_id, category.id, j), figure.share


def rich_results(report: Report) -> Results:
    """The report with weighted shares and margins for some questions, and a previous wave."""
    plain = publish_results(report)
    weighted: dict[FigureKey, float] = {}
    moe: dict[FigureKey, float] = {}
    for key, share in _shown_keys(plain, ("ny", "grad", "tiltak")):
        weighted[key] = min(1.0, share + 0.021)
        moe[key] = 0.061 + 0.01 * key[2]
    found = {key: (max(0.0, share - 0.052), 5.2 if key[2] else -3.4, key[2] != 0)
             for key, share in _shown_keys(plain, ("ny", "tiltak"))}
    weighting = Weighting(by=("sector",), frame="ramme-2019.csv",
                          population={("helse",): 1240, ("kultur",): 85, ("teknisk",): 410},
                          design_effect=(1.0, 1.0, 1.0, 1.08))
    comparison = Comparison("Innovasjonsbarometeret 2018", "KS, publiserte tabeller 2018",
                            "Spørsmålet om tiltak hadde ett alternativ mindre.")
    return publish_results(report, Estimates(weighted, moe, weighting),
                           Changes(found, comparison))


@pytest.fixture(scope="module")
def variants(report: Report) -> dict[str, Results]:
    return {"plain": publish_results(report), "rich": rich_results(report)}


@pytest.fixture(scope="module")
def documents(variants: dict[str, Results], report: Report) -> dict[str, str]:
    fieldwork = fieldwork_of(report)
    return {name: render_html(results, fieldwork, sample_note=SAMPLE_NOTE)
            for name, results in variants.items()}


@pytest.fixture(scope="module")
def pdf_file(documents: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pdf") / "rapport.pdf"
    path.write_bytes(render_pdf(documents["rich"]))
    return path


# --- what may be shown -------------------------------------------------------------------------


def _norm(text: str) -> str:
    return " ".join(text.replace("\u00a0", " ").replace("\u202f", " ").split())


def known_texts(results: Results, fieldwork: Fieldwork) -> set[str]:
    """Wording from the questionnaire and the configuration, which may hold digits of its own
    ("1 Liten", "10–49", "2020"): shown as written, and only where the report names it."""
    texts = {fieldwork.title, fieldwork.questionnaire, SAMPLE_NOTE,
             *(c.label for c in results.columns), *(r.label for r in fieldwork.rows)}
    for q in results.questions:
        spec = q.spec
        texts |= {q.title, f"{spec.item.number}. {spec.item.text.nb}",
                  *(c.label for c in spec.categories)}
        if spec.row_label:
            texts |= {spec.row_label, f"{spec.number}. {spec.row_label}"}
    if results.comparison is not None:
        texts |= {results.comparison.label, results.comparison.source,
                  results.comparison.note}
    if results.weighting is not None:
        texts |= {results.weighting.frame, *(stratum_label(key) for key in
                                               results.weighting.population)}
    return {_norm(t) for t in texts}


def allowed_numbers(results: Results, fieldwork: Fieldwork) -> set[str]:
    """The published figures, the front page's, the methods section's and the structural."""
    allowed = set(shown_numbers(results)) | {str(results.k), "95"}
    for day in fieldwork.period or ():
        allowed |= {str(day.day), str(day.year)}
    for row in fieldwork.rows:
        allowed.add(str(row.invited))
        if row.answered is not None:
            allowed.add(str(row.answered))
        if row.rate is not None:
            allowed.add(f"{100 * row.rate:.0f}")
    if results.comparison is not None:
        allowed.add("5")  # the significance level of the test
    if results.weighting is not None:
        allowed |= {str(n) for n in results.weighting.population.values()}
        allowed |= {f"{d:.2f}".replace(".", ",") for d in results.weighting.design_effect}
    return allowed


def numbers_in(text: str) -> list[str]:
    """Every number in `text` as shown_numbers writes it: '1240', '+4', '-3', '1,08'."""
    return [m.replace("\u2212", "-").replace("\u00a0", "").replace("\u202f", "")
            for m in NUMBER.findall(text)]


def assert_only_allowed(text: str, allowed: set[str], where: str) -> None:
    stray = [n for n in numbers_in(text) if n not in allowed]
    assert not stray, f"{where}: numbers that are not published: {stray}"


def _remove_label_prefixes(text: str, labels: Iterable[str]) -> str:
    """Remove known labels written before a figure ("Ja: 30 %", "helse, Ja: …")."""
    for label in sorted(labels, key=len, reverse=True):
        for tail in (": ", ", "):
            text = text.replace(label + tail, " ")
    return text


# --- the HTML ----------------------------------------------------------------------------------


def check_chart(svg: Tag, question: Question, allowed: set[str]) -> None:
    """One chart: a bar per shown figure of its columns (as long as its share), ':' per hidden
    one, no number but published shares, and 0 % / 100 % on the axis only."""
    columns = [int(j) for j in str(svg["data-columns"]).split()]
    estimates = [f.estimate for row in question.figures for j, f in enumerate(row)
                 if j in columns and f.estimate is not None]
    hidden = [f for row in question.figures for j, f in enumerate(row)
              if j in columns and f.estimate is None]
    bars = svg.select("rect.bar")
    assert len(bars) == len(estimates), question.title
    assert len(svg.select("text.hidden-mark")) == len(hidden), question.title
    assert all(t.get_text() == ":" for t in svg.select("text.hidden-mark"))
    axis = svg.select_one("line.axis")
    assert axis is not None
    full = float(str(axis["x2"])) - float(str(axis["x1"]))
    assert sorted(round(float(str(b["width"])) / full, 3) for b in bars) == \
        sorted(round(e, 3) for e in estimates), question.title
    assert [_norm(t.get_text()) for t in svg.select("text.axis-label")] == ["0 %", "100 %"]
    for value in svg.select("text.value"):
        assert re.fullmatch(r"\d+ %", _norm(value.get_text())), value
        assert_only_allowed(value.get_text(), allowed, f"chart {question.title}")
    title = svg.find("title")
    assert title is not None
    assert _norm(title.get_text()) == _norm(question.title)


def visible_text(soup: BeautifulSoup, known: set[str]) -> str:
    """The document's text once every questionnaire or configuration wording is checked to be
    exactly that wording and taken out; chart descriptions lose their labels, and the axis
    labels (which `check_chart` holds to 0 % and 100 %) go."""
    for element in soup.select("svg text.axis-label"):
        element.decompose()
    for element in soup.select(".verbatim"):
        text = _norm(element.get_text(" "))
        assert text in known, f"not questionnaire wording: {text!r}"
        element.decompose()
    for element in soup.find_all(["style", "title"]):
        element.decompose()
    for desc in soup.find_all("desc"):
        desc.string = _remove_label_prefixes(_norm(desc.get_text()), known)
    return soup.get_text(" ")


@pytest.mark.parametrize("variant", ["plain", "rich"])
def test_every_number_in_the_html_is_published(variant: str, variants: dict[str, Results],
                                               documents: dict[str, str],
                                               report: Report) -> None:
    results, html = variants[variant], documents[variant]
    fieldwork = fieldwork_of(report)
    allowed = allowed_numbers(results, fieldwork)
    soup = BeautifulSoup(html, "html.parser")
    assert soup.title is not None
    assert soup.title.get_text() == fieldwork.title
    questions = {q.spec.number: q for q in results.questions}
    charts = soup.select("svg.chart")
    assert len(charts) == sum(not q.free_text for q in results.questions)
    for svg in charts:
        title = svg.find("title")
        assert isinstance(title, Tag)
        number = str(title["id"]).removeprefix("figur-").removesuffix("-title")
        check_chart(svg, questions[number], allowed)
    assert_only_allowed(visible_text(soup, known_texts(results, fieldwork)), allowed, variant)
    assert "3" not in allowed  # kultur's three respondents: in no shown figure


def test_the_check_catches_a_hidden_count(variants: dict[str, Results],
                                          documents: dict[str, str], report: Report) -> None:
    """The same check on a document with one hidden count let through fails."""
    results, html = variants["plain"], documents["plain"]
    fieldwork = fieldwork_of(report)
    leaked = html.replace("<abbr class=\"hidden\" title=\"Skjult\">:</abbr>", "3", 1)
    text = visible_text(BeautifulSoup(leaked, "html.parser"), known_texts(results, fieldwork))
    with pytest.raises(AssertionError, match="not published"):
        assert_only_allowed(text, allowed_numbers(results, fieldwork), "leaked")


def _cells(section: Tag) -> list[list[str]]:
    """The table cells of a question's section, rows × columns, tables side by side joined."""
    grid: list[list[str]] = []
    for n, table in enumerate(section.select("table")):
        rows = [[_norm(td.get_text(" ")) for td in tr.find_all("td")]
                for tr in table.select("tbody tr")]
        grid = rows if n == 0 else [a + b for a, b in zip(grid, rows, strict=True)]
    return grid


@pytest.mark.parametrize("variant", ["plain", "rich"])
def test_hidden_cells_are_colons_explained_in_a_footnote(variant: str,
                                                         variants: dict[str, Results],
                                                         documents: dict[str, str]) -> None:
    results = variants[variant]
    soup = BeautifulSoup(documents[variant], "html.parser")
    kultur = next(j for j, c in enumerate(results.columns) if c.label == "kultur")
    seen_hidden = 0
    for q in results.questions:
        section = soup.find(id=f"sporsmal-{q.spec.number}")
        assert isinstance(section, Tag), q.title
        cells = _cells(section)
        for i, row in enumerate(q.figures):
            for j, figure in enumerate(row):
                if figure.hidden:
                    assert cells[i][j] == ":", (q.title, i, j)
                    seen_hidden += 1
                elif q.free_text:
                    assert cells[i][j] == str(figure.count)
                else:
                    assert figure.estimate is not None
                    assert cells[i][j].startswith(_norm(percent(figure.estimate)))
                    assert str(figure.count) in cells[i][j].split()
        assert q.figures[0][kultur].hidden
        notes = _norm(" ".join(p.get_text(" ") for p in section.select(".footnote")))
        assert f": Skjult for å verne den enkelte: færre enn {K} svar" in notes, q.title
        if not q.free_text:
            n_row = [_norm(td.get_text()) for td in section.select("tfoot td")]
            assert n_row[kultur] == ":"
    assert seen_hidden > 20


@pytest.mark.parametrize("variant", ["plain", "rich"])
def test_free_text_never_appears(variant: str, documents: dict[str, str],
                                 variants: dict[str, Results]) -> None:
    html = documents[variant]
    for text in FREE_TEXTS:
        assert text not in html
    free = next(q for q in variants[variant].questions if q.free_text)
    # 15 of helse's 30, 12 of teknisk's 24 and the three in kultur wrote something.
    assert free.figures[0][-1].count == 30
    assert "Svarene er skrevet fritt og publiseres aldri" in html


@pytest.mark.parametrize("variant", ["plain", "rich"])
def test_the_html_fetches_nothing(variant: str, documents: dict[str, str]) -> None:
    soup = BeautifulSoup(documents[variant], "html.parser")
    assert not soup.find_all(["script", "link", "img", "iframe", "object", "embed", "base"])
    for element in soup.find_all(True):
        for name, value in element.attrs.items():
            if name == "xmlns":
                continue
            text = " ".join(value) if isinstance(value, list) else str(value)
            assert not re.match(r"\s*(https?:)?//", text), (element.name, name, text)
            assert not name.startswith("on"), (element.name, name)
            assert name != "style", element.name
    style = " ".join(s.get_text() for s in soup.find_all("style"))
    assert "url(" not in style
    assert "@import" not in style


def test_rich_report_shows_weights_margins_and_changes(variants: dict[str, Results],
                                                       documents: dict[str, str]) -> None:
    soup = BeautifulSoup(documents["rich"], "html.parser")
    section = soup.find(id="sporsmal-3")
    assert isinstance(section, Tag)
    assert section.select(".moe")
    assert section.select(".chg")
    assert section.select(".prev")
    assert section.select("svg path.moe")
    assert "Vektet andel" in section.get_text()
    methods = _norm(soup.select_one("#metode").get_text(" "))  # type: ignore[union-attr]
    for words in ("ramme-2019.csv", "1 240", "1,08", "Innovasjonsbarometeret 2018",
                  "komplementær skjuling", f"færre enn {K} svar", "95 % konfidensintervall",
                  "endelig populasjon", SAMPLE_NOTE):
        assert words in methods
    plain = BeautifulSoup(documents["plain"], "html.parser")
    assert not plain.select(".moe")
    assert not plain.select(".chg")


# --- the PDF -----------------------------------------------------------------------------------


def _pdf_numbers(text: str, allowed: set[str]) -> list[str]:
    """Numbers in pdftotext's text, which turns a non-breaking space into a plain one: two
    groups '1 240' are read as one number when that is the published one."""
    found = list(re.finditer(r"[+-]?\d+(?:,\d+)?", text.replace("\u2212", "-")))
    out: list[str] = []
    n = 0
    while n < len(found):
        here = found[n][0]
        if n + 1 < len(found):
            after = found[n + 1]
            joined = here + after[0]
            if (re.fullmatch(r"\d{3}", after[0]) and found[n].end() + 1 == after.start()
                    and joined in allowed):
                out.append(joined)
                n += 2
                continue
        out.append(here)
        n += 1
    return out


def pdf_text_without_wording(text: str, known: set[str], columns: Sequence[str],
                             pages: int, charts: int) -> str:
    """pdftotext's text with page numbers and the charts' axes checked and removed, and the
    questionnaire's wording removed. Labels without letters ('2', '10–49') go only where a
    table row or a chart line starts with them and only figures follow, or as a grouped
    chart's heading (a line of its own followed by a column's bar); other wording goes
    wherever it is, once wrapped lines are joined."""
    def page_number(match: re.Match[str]) -> str:
        assert 1 <= int(match[1]) <= int(match[2]) == pages
        return " "
    text = re.sub(r"Side (\d+) av (\d+)", page_number, text)
    lines = _norm_lines(text)
    assert lines.count("0 % 100 %") == charts
    lines = [line for line in lines if line != "0 % 100 %"]
    bare = sorted((t for t in known if not re.search(r"[^\W\d_]", t)), key=len, reverse=True)
    kept = []
    for n, line in enumerate(lines):
        following = lines[n + 1] if n + 1 < len(lines) else ""
        if line in bare and any(following.startswith(c + " ") for c in columns):
            continue
        for label in bare:
            if line.startswith(label + " ") and CELLS.fullmatch(line[len(label):]):
                line = line[len(label):]
                break
        kept.append(line)
    joined = _norm(" ".join(kept))
    for wording in sorted(known - set(bare), key=len, reverse=True):
        joined = joined.replace(wording, " ")
    return joined


def _norm_lines(text: str) -> list[str]:
    return [_norm(line) for line in text.splitlines()]


def test_pdf_shows_only_published_numbers(pdf_file: Path, variants: dict[str, Results],
                                          report: Report) -> None:
    results = variants["rich"]
    fieldwork = fieldwork_of(report)
    info = subprocess.run(["pdfinfo", str(pdf_file)], capture_output=True, text=True,
                          check=True).stdout
    pages = int(re.search(r"^Pages:\s+(\d+)", info, re.MULTILINE)[1])  # type: ignore[index]
    assert pages > 1
    assert re.search(r"^Page size:\s+595\.\d* x 841\.\d* pts \(A4\)", info, re.MULTILINE)
    raw = subprocess.run(["pdftotext", "-raw", "-enc", "UTF-8", str(pdf_file), "-"],
                         capture_output=True, text=True, check=True).stdout
    for text in FREE_TEXTS:
        assert text not in raw
    assert "Side 2 av" in raw
    assert re.search(r"(^|\s): : ", raw), "hidden cells print as ':'"
    assert "Skjult for å verne den enkelte" in raw
    allowed = allowed_numbers(results, fieldwork)
    charts = sum(not q.free_text for q in results.questions)
    rest = pdf_text_without_wording(raw, known_texts(results, fieldwork),
                                    [c.label for c in results.columns], pages, charts)
    stray = [n for n in _pdf_numbers(rest, allowed) if n not in allowed]
    assert not stray, f"numbers in the PDF that are not published: {stray}"
    assert "3" not in allowed


# --- in the browser ------------------------------------------------------------------------------


def test_report_has_no_accessibility_violations(documents: dict[str, str],
                                                tmp_path: Path) -> None:
    with browser_session(tmp_path / "chromium") as driver:
        for name, html in documents.items():
            page = tmp_path / f"{name}.html"
            page.write_text(html, encoding="utf-8")
            driver.get(page.as_uri())
            violations = axe_violations(driver)
            if violations:
                screenshot(driver, tmp_path / f"{name}.png")
            assert violations == [], f"{name}: {describe_violations(violations)}"
