"""Take the README's pictures of the report: docs/report-html.png and docs/report-pdf.png.

Run the demo first, then this script, both from the project's folder:

    make demo                                    # or .venv/bin/svarbot demo
    .venv/bin/python docs/report_screenshots.py --demo demo

The script reads the demo's configuration (`demo/config.yaml`), opens its database and builds
the report of the unit leaders' survey (`virksomhetsleder-2020`) by sector, as `svarbot report
--by sector` does: `storage.aggregate.build_report` with k from `privacy.min_cell`, the front
page's numbers from `bot.results.fieldwork`, and a note on the sample drawn from the demo's
frame and sample files. It writes the HTML report with `bot.results.html.render_html` to a
temporary folder, opens it in headless Chromium (/usr/bin/chromium, /usr/bin/chromedriver, no
download) in a 1280 x 900 window and saves the first screen; then prints it to PDF with
`bot.results.pdf.render_pdf` and saves the PDF's first page with `pdftoppm` (poppler-utils)
at 60 dpi. It reads the database only and takes about fifteen seconds, most of it WeasyPrint.

Exit status 0 when both pictures were saved, 1 when something failed (the reason on stderr).
`--out` chooses another folder for the pictures (default: this script's folder); `--keep`
keeps the HTML and PDF there too (report.html, report.pdf).
"""

from __future__ import annotations

import argparse
import csv
import logging
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from screenshots import HEIGHT, WIDTH, ShotError, load_demo, open_chromium
from selenium.common.exceptions import WebDriverException
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from bot.config import Settings
from bot.results.fieldwork import Fieldwork, fieldwork
from bot.results.html import render_html
from bot.results.pdf import render_pdf
from bot.results.published import Results, publish_results
from flows.loader import QuestionnaireError, load_reference
from storage.aggregate import build_report
from storage.db import StorageError
from storage.migrate import open_database
from storage.schema import Survey

log = logging.getLogger("report_screenshots")

SURVEY = "virksomhetsleder-2020"
BY = ("sector",)
PDFTOPPM = "pdftoppm"
DPI = 60


def _rows(path: Path) -> int | None:
    """The number of data rows of a CSV file, or None when it is not there."""
    if not path.is_file():
        return None
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return max(0, sum(1 for _ in csv.reader(handle)) - 1)


def sample_note(folder: Path, seed: int) -> str:
    """How the demo drew its sample, in the report's words, from the files it wrote."""
    frame = _rows(folder / "virksomhetsledere-ramme.csv")
    drawn = _rows(folder / "virksomhetsledere-utvalg.csv")
    size = f"{drawn} " if drawn is not None else ""
    source = (f"en syntetisk utvalgsramme på {frame} virksomhetsledere"
              if frame is not None else "en syntetisk utvalgsramme")
    return (f"Demoundersøkelse: et stratifisert utvalg av {size}virksomhetsledere fra {source}, "
            "bygd på kommunelisten for 2019, fordelt etter sektor, landsdel og "
            f"kommunestørrelse (svarbot sample, seed {seed}). Respondentene er simulerte.")


def build(settings: Settings) -> tuple[Results, Fieldwork]:
    """The published report of SURVEY by sector, and its front page, from the demo database."""
    engine = open_database(settings.database.url)
    try:
        with engine.connect() as connection:
            reference = connection.execute(select(Survey.questionnaire)
                                           .where(Survey.id == SURVEY)).scalar_one_or_none()
            if reference is None:
                raise ShotError(f"no survey {SURVEY} in the demo database")
            questionnaire = load_reference(reference)
            report = build_report(connection, SURVEY, questionnaire, BY,
                                  settings.privacy.min_cell)
            survey = next((s for s in settings.surveys if s.id == SURVEY), None)
            front = fieldwork(connection, report, questionnaire.title.nb, survey)
    finally:
        engine.dispose()
    return publish_results(report), front


def html_shot(page: Path, target: Path) -> None:
    """The first screen of the HTML report in headless Chromium."""
    with tempfile.TemporaryDirectory(prefix="svarbot-report-shot-") as profile:
        driver = open_chromium(Path(profile))
        try:
            driver.get(page.as_uri())
            driver.execute_script("window.scrollTo(0, 0);")
            target.parent.mkdir(parents=True, exist_ok=True)
            if not driver.save_screenshot(str(target)):
                raise ShotError(f"Chromium could not save {target}")
        finally:
            driver.quit()


def pdf_shot(pdf: Path, target: Path) -> None:
    """The PDF's first page as a PNG (pdftoppm writes `<stem>.png` with -singlefile)."""
    if shutil.which(PDFTOPPM) is None:
        raise ShotError("pdftoppm not found: install poppler-utils")
    stem = target.with_suffix("")
    done = subprocess.run([PDFTOPPM, "-png", "-r", str(DPI), "-f", "1", "-l", "1",  # noqa: S603
                           "-singlefile", str(pdf), str(stem)], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0 or not target.is_file():
        raise ShotError(f"pdftoppm failed: {done.stderr.strip() or done.returncode}")


def take(folder: Path, out: Path, seed: int, *, keep: bool) -> None:
    settings = load_demo(folder)
    results, front = build(settings)
    html = render_html(results, front, sample_note=sample_note(folder, seed))
    with tempfile.TemporaryDirectory(prefix="svarbot-report-") as work:
        where = out if keep else Path(work)
        where.mkdir(parents=True, exist_ok=True)
        page = where / "report.html"
        page.write_text(html, encoding="utf-8")
        html_shot(page, out / "report-html.png")
        log.info("saved %s (%d x %d, first screen of %s)", out / "report-html.png", WIDTH,
                 HEIGHT, page.name)
        pdf = where / "report.pdf"
        pdf.write_bytes(render_pdf(html))
        pdf_shot(pdf, out / "report-pdf.png")
        log.info("saved %s (first page of the PDF, %d dpi)", out / "report-pdf.png", DPI)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--demo", default="demo", type=Path,
                        help="the folder `svarbot demo` wrote (default: demo)")
    parser.add_argument("--out", default=Path(__file__).resolve().parent, type=Path,
                        help="folder for report-html.png and report-pdf.png (default: docs/)")
    parser.add_argument("--seed", default=2019, type=int,
                        help="the seed the demo was run with, for the methods section "
                             "(default: 2019, the demo's own default)")
    parser.add_argument("--keep", action="store_true",
                        help="keep report.html and report.pdf in --out as well")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for quiet in ("alembic", "bot", "storage", "weasyprint", "fontTools"):
        logging.getLogger(quiet).setLevel(logging.WARNING)
    began = time.monotonic()
    try:
        take(args.demo, args.out, args.seed, keep=args.keep)
    except (ShotError, StorageError, QuestionnaireError, SQLAlchemyError, OSError,
            WebDriverException) as exc:
        lines = str(exc).strip().splitlines()
        raise SystemExit(f"report_screenshots: {lines[0] if lines else type(exc).__name__}",
                         ) from None
    log.info("done in %.1f s", time.monotonic() - began)


if __name__ == "__main__":
    main()
