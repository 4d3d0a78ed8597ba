"""The shipped 2019 municipality list and what is derived from it (counties, landsdeler, sizes)."""

from __future__ import annotations

import hashlib
from importlib import resources

import pytest

from storage import reference


def test_the_list_has_422_kommuner_and_17_county_municipalities() -> None:
    """2019: 422 kommuner in 18 counties; Oslo has no fylkeskommune, so 17; 439 mayors."""
    kommuner = reference.municipalities()
    counties = reference.county_municipalities()
    assert len(kommuner) == 422
    assert len({k.county_no for k in kommuner.values()}) == 18
    assert len(counties) == 17
    assert reference.OSLO_COUNTY not in counties
    assert len(kommuner) + len(counties) == 439


def test_known_municipalities_resolve() -> None:
    """Spot checks from the data README: Oslo, Utsira (the smallest), Ringsaker, Bærum."""
    oslo = reference.municipality("0301")
    utsira = reference.municipality("1151")
    baerum = reference.municipality("0219")
    assert oslo is not None
    assert oslo.population == 681_071
    assert oslo.size_class == "50000+"
    assert utsira is not None
    assert utsira.population == 196
    assert utsira.size_class == "<3000"
    assert baerum is not None
    assert (baerum.name, baerum.county, baerum.landsdel) == ("Bærum", "Akershus",
                                                             "Oslo og Akershus")
    assert sum(k.population for k in reference.municipalities().values()) == 5_328_212


def test_successors_in_2020() -> None:
    """Renumbered, merged and split municipalities map to their 2020 successors."""
    assert [s.number for s in reference.successors_2020("0101")] == ["3001"]
    assert [s.number for s in reference.successors_2020("0412")] == ["3411"]
    assert reference.successors_2020("0412")[0].county == "Innlandet"
    assert sorted(s.number for s in reference.successors_2020("1850")) == ["1806", "1875"]
    assert reference.successors_2020("9999") == ()


@pytest.mark.parametrize(("population", "label"), [
    (0, "<3000"), (2_999, "<3000"), (3_000, "3000-9999"), (9_999, "3000-9999"),
    (10_000, "10000-49999"), (49_999, "10000-49999"), (50_000, "50000+"), (681_071, "50000+"),
])
def test_size_band_boundaries(population: int, label: str) -> None:
    """KS's cut-offs (up to 3 000, more than 10 000) are band boundaries, and so is 50 000."""
    assert reference.size_class(population) == label


def test_size_band_counts_match_the_docstring() -> None:
    """The documented table: 158 / 151 / 97 / 16 kommuner per band."""
    counts: dict[str, int] = {}
    for kommune in reference.municipalities().values():
        counts[kommune.size_class] = counts.get(kommune.size_class, 0) + 1
    assert counts == {"<3000": 158, "3000-9999": 151, "10000-49999": 97, "50000+": 16}
    assert reference.__doc__ is not None
    for label, count in counts.items():
        assert f"``{label}``" in reference.__doc__
        assert str(count) in reference.__doc__


def test_landsdeler_are_the_seven_nuts2016_regions() -> None:
    """Landsdel is NUTS-2 2016, in code order."""
    assert reference.landsdeler() == (
        "Oslo og Akershus", "Hedmark og Oppland", "Sør-Østlandet", "Agder og Rogaland",
        "Vestlandet", "Trøndelag", "Nord-Norge")


def test_county_municipalities() -> None:
    """A fylkeskommune: its county's name, landsdel and summed population; size class apart."""
    ostfold = reference.county_municipality("01")
    assert ostfold is not None
    assert ostfold.name == "Østfold fylkeskommune"
    assert ostfold.landsdel == "Sør-Østlandet"
    assert ostfold.size_class == reference.SIZE_COUNTY
    assert ostfold.population == sum(k.population for k in reference.municipalities().values()
                                     if k.county_no == "01")
    assert reference.county_municipality("03") is None


def test_place_resolves_numbers_and_repairs_leading_zeros() -> None:
    """4 digits: a kommune; 2 digits: a fylkeskommune; a spreadsheet's `301` is 0301."""
    oslo = reference.place("301")
    county = reference.place("1")
    assert oslo is not None
    assert (oslo.number, oslo.name, oslo.is_county) == ("0301", "Oslo",
                                                                             False)
    assert county is not None
    assert (county.number, county.is_county) == ("01", True)
    assert county.name == "Østfold fylkeskommune"
    for unknown in ("03", "9999", "0000", "abc", "", "03011"):
        assert reference.place(unknown) is None


def test_data_file_is_shipped_with_its_source_note() -> None:
    """The CSV is read as package data, unchanged from the shared copy, with an NLOD note."""
    data = resources.files("storage").joinpath("data", reference.DATA_FILE).read_bytes()
    note = resources.files("storage").joinpath("data", "README.md").read_text(encoding="utf-8")
    digest = hashlib.sha256(data).hexdigest()
    assert digest == "89c217843a89f255e66009b85f2529d5105f6d78beaf865e162d2b366f0d1c2c"
    assert digest in note
    assert "NLOD" in note
    assert "Statistisk sentralbyrå" in note
