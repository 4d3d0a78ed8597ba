"""Weights, margins of error and the previous wave (`bot.results.estimates`, `compare`).

The figures are checked against hand computations on data small enough to do by hand, and
the disclosure rules against the report's own suppression: a hidden count gets no weighted
share, no margin of error and no change, and a weighted share needs every count it adds up.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine
from test_aggregate import add_responses, questionnaire

from bot.results.compare import (
    ComparisonError,
    compare,
    load_previous,
    two_proportion_significant,
)
from bot.results.estimates import Frame, WeightingError, estimate
from bot.results.published import publish_results
from storage.aggregate import build_report
from storage.schema import Base

K = 3


def _answers(yes: bool) -> dict[str, object]:
    return {"ny": "yes" if yes else "no"}


def _engine(path: Path, cells: tuple[tuple[str, int, int], ...]) -> Engine:
    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    rows: list[tuple[dict[str, Any], dict[str, object]]] = []
    for sector, n, yes in cells:
        rows += [({"respondent_type": "unit_leader", "sector": sector}, _answers(m < yes))
                 for m in range(n)]
    add_responses(engine, "s", rows)
    return engine


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """helse: 20 answers, 15 yes; oppvekst: 10 answers, 4 yes; kultur: 4 answers, 1 yes."""
    engine = _engine(tmp_path / "answers.db",
                     (("helse", 20, 15), ("oppvekst", 10, 4), ("kultur", 4, 1)))
    yield engine
    engine.dispose()


@pytest.fixture
def roomy(tmp_path: Path) -> Iterator[Engine]:
    """Every sector with enough yes and no answers to be published: 20/15, 10/4, 8/4."""
    engine = _engine(tmp_path / "roomy.db",
                     (("helse", 20, 15), ("oppvekst", 10, 4), ("kultur", 8, 4)))
    yield engine
    engine.dispose()


def frame(helse: int, oppvekst: int, kultur: int) -> Frame:
    people = ([{"sector": "helse"}] * helse + [{"sector": "oppvekst"}] * oppvekst
              + [{"sector": "kultur"}] * kultur)
    return Frame("ramme.csv", tuple(people))


def _figure(engine: Engine, by: tuple[str, ...], population: Frame | None,
            weight_by: tuple[str, ...] = ("sector",)) -> Any:
    with engine.connect() as connection:
        report = build_report(connection, "s", questionnaire(), by, K)
        found = estimate(connection, report, questionnaire(), weight_by=weight_by,
                         frame=population)
    results = publish_results(report, found)
    return results, next(q for q in results.questions if q.spec.answer_id == "ny")


def test_a_sector_is_one_weighting_cell_and_its_hidden_count_hides_the_total(
        engine: Engine) -> None:
    results, ny = _figure(engine, ("sector",), frame(100, 300, 40))
    labels = [c.label for c in results.columns]
    total = ny.figures[0][labels.index("Totalt")]
    # kultur's single yes is below k: hidden, so the weighted total, which needs it, is not
    # shown; the unweighted share is.
    assert ny.figures[0][labels.index("kultur")].hidden
    assert total.weighted is None
    assert total.share == pytest.approx(20 / 34)
    helse = ny.figures[0][labels.index("helse")]
    assert helse.weighted == pytest.approx(15 / 20)  # one cell: weighting changes nothing


def test_a_weighted_total_is_shown_when_every_count_it_needs_is(roomy: Engine) -> None:
    results, ny = _figure(roomy, ("respondent_type",), frame(100, 300, 40))
    total = ny.figures[0][-1]
    cells = (("helse", 20, 15), ("oppvekst", 10, 4), ("kultur", 8, 4))
    w = {"helse": 100 / 20, "oppvekst": 300 / 10, "kultur": 40 / 8}
    expected = sum(w[s] * yes for s, _n, yes in cells) / sum(w[s] * n for s, n, _y in cells)
    assert total.weighted == pytest.approx(expected)
    assert total.estimate == total.weighted
    assert total.share == pytest.approx(23 / 38)
    assert results.weighting is not None
    sw = sum(n * w[s] for s, n, _y in cells)
    sw2 = sum(n * w[s] ** 2 for s, n, _y in cells)
    assert results.weighting.design_effect[-1] == pytest.approx(38 * sw2 / sw ** 2)
    deff = results.weighting.design_effect[-1]
    assert total.moe == pytest.approx(1.96 * math.sqrt(deff * expected * (1 - expected) / 38
                                                       * (440 - 38) / 439))


def test_a_weighted_total_that_needs_a_hidden_count_is_not_shown(engine: Engine) -> None:
    _results, ny = _figure(engine, ("respondent_type",), frame(100, 300, 40))
    total = ny.figures[0][-1]
    assert total.weighted is None  # kultur's single yes is hidden in the sector breakdown
    assert total.share == pytest.approx(20 / 34)


def test_the_margin_of_error_has_the_finite_population_correction(engine: Engine) -> None:
    results, ny = _figure(engine, ("sector",), frame(100, 300, 40), weight_by=())
    labels = [c.label for c in results.columns]
    helse = ny.figures[0][labels.index("helse")]
    p, n, big_n = 0.75, 20, 100
    assert helse.moe == pytest.approx(1.96 * math.sqrt(p * (1 - p) / n * (big_n - n)
                                                       / (big_n - 1)))
    _census, ny_census = _figure(engine, ("sector",), frame(20, 10, 4), weight_by=())
    assert ny_census.figures[0][0].moe == 0.0  # everyone answered: no sampling error
    for row in ny.figures:
        for f in row:
            assert (f.moe is None) == f.hidden


def test_without_a_frame_weighting_is_refused_in_one_line(engine: Engine) -> None:
    with pytest.raises(WeightingError, match="needs the frame"):
        _figure(engine, ("sector",), None)
    with pytest.raises(WeightingError, match="kultur has 4 responses but no one in the frame"):
        _figure(engine, ("sector",), frame(100, 300, 0))


def test_the_change_from_the_previous_wave(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "prev.csv").write_text(
        "question,category,stratum,n,share\nforrige_ny,ja,Totalt,400,80\n"
        "forrige_ny,ja,helse,,70\nforrige_ny,ja,kultur,50,10\n", encoding="utf-8")
    (tmp_path / "prev.yaml").write_text(
        'label: "2018"\nsource: "KS"\nquestions:\n  ny:\n    question: forrige_ny\n'
        '    categories: {"yes": ja}\n', encoding="utf-8")
    previous = load_previous(tmp_path / "prev.csv")
    with engine.connect() as connection:
        report = build_report(connection, "s", questionnaire(), ("sector",), K)
        found = estimate(connection, report, questionnaire(), weight_by=(), frame=None)
    changes = compare(report, found, previous)
    results = publish_results(report, found, changes)
    ny = next(q for q in results.questions if q.spec.answer_id == "ny")
    labels = [c.label for c in results.columns]
    total, helse = ny.figures[0][labels.index("Totalt")], ny.figures[0][labels.index("helse")]
    assert total.previous == 0.8
    assert total.change_pp == round(100 * 20 / 34) - 80
    assert total.significant is two_proportion_significant(20 / 34, 34, 0.8, 400)
    assert total.significant is True
    assert (helse.change_pp, helse.significant) == (5.0, False)  # no n then: untested
    kultur = ny.figures[0][labels.index("kultur")]
    assert kultur.hidden
    assert (kultur.previous, kultur.change_pp) == (None, None)  # hidden: no change either


def test_a_broken_previous_wave_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "prev.csv").write_text("question,category,stratum,n,share\nq,ja,Totalt,x,8\n",
                                       encoding="utf-8")
    (tmp_path / "prev.yaml").write_text("questions: {}\n", encoding="utf-8")
    with pytest.raises(ComparisonError, match=r"prev.csv:2: n 'x' is not a whole number"):
        load_previous(tmp_path / "prev.csv")


def test_the_shipped_2018_figures_load_and_map_to_the_questionnaire() -> None:
    from bot.demo.run import PREVIOUS_2018
    from flows.loader import load_shipped
    from storage.aggregate import key_specs

    previous = load_previous(PREVIOUS_2018)
    assert previous.comparison.label == "2018"
    assert "Avrundede publiserte tall" in previous.comparison.note
    assert previous.cells[("minst_en_innovasjon", "ja", "Totalt")].share == 0.74
    ids = {s.answer_id: s for s in key_specs(load_shipped("virksomhetsleder-2020"))}
    for ours, (_theirs, categories) in previous.questions.items():
        assert ours in ids
        assert set(categories) <= {c.id for c in ids[ours].categories}


def test_the_front_page_hides_answered_counts_like_the_report(tmp_path: Path) -> None:
    """helse 30, kultur 3, teknisk 24 answered: kultur's 3 is hidden, and so is one more
    count, or 57 − 30 − 24 would give it back."""
    from bot.results.fieldwork import fieldwork

    engine = _engine(tmp_path / "front.db",
                     (("helse", 30, 15), ("kultur", 3, 1), ("teknisk", 24, 12)))
    with engine.connect() as connection:
        report = build_report(connection, "s", questionnaire(), ("sector",), K + 2)
        work = fieldwork(connection, report, "Tittel", None)
    engine.dispose()
    answered = {row.label: row.answered for row in work.rows}
    assert answered["kultur"] is None
    assert sum(v is None for v in answered.values()) >= 2
    assert all(row.rate is None for row in work.rows if row.answered is None)
