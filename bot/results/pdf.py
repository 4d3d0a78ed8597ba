"""The report as a PDF: the HTML report (`bot.results.html`) printed on A4 by WeasyPrint.

The PDF is the HTML file on paper, so it publishes the same figures and nothing more; the
page size, page numbers and running title come from the report's own @page rules. The HTML
carries everything it needs, so the fetcher refuses every URL: a report never reaches out to
the network or the file system while it is printed, whatever a label might contain.
"""

from __future__ import annotations

import logging

from weasyprint import HTML  # type: ignore[import-untyped]
from weasyprint.urls import URLFetcher  # type: ignore[import-untyped]

log = logging.getLogger(__name__)


def _no_fetching() -> URLFetcher:
    """A fetcher that allows no protocol at all and stops the rendering if asked to fetch."""
    return URLFetcher(allowed_protocols=(), fail_on_errors=True)


def render_pdf(html: str) -> bytes:
    """`html` (a self-contained report) as PDF bytes."""
    document = HTML(string=html, url_fetcher=_no_fetching(), media_type="print").render()
    log.info("report printed on %d pages", len(document.pages))
    pdf: bytes = document.write_pdf()
    return pdf
