"""Stratified samples, substitutes for bounced units, and the synthetic frames behind them."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from sqlalchemy import create_engine

from storage import reference
from storage.contacts import (
    UNIT_TYPES,
    Contact,
    check_table,
    import_contacts,
    load_contacts,
    parse_table,
    read_table,
)
from storage.db import make_engine, session_factory
from storage.frame import ascii_fold, mayor_rows, unit_leader_rows, write_frame
from storage.sampling import (
    STRATA,
    SamplingError,
    allocate,
    draw,
    group,
    new_seed,
    parse_strata,
    stratum_of,
    substitutes,
    write_replacement,
    write_sample,
)
from storage.schema import Base

ROOT = Path(__file__).resolve().parents[1]
STRATA3 = ("sector", "landsdel", "size")


def svarbot(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `svarbot ARGS` as a real process."""
    return subprocess.run([sys.executable, "-m", "bot", *args], text=True, capture_output=True,
                          cwd=ROOT, timeout=120, check=False)


@pytest.fixture(scope="module")
def frame_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic frame of 3000 unit leaders (seed 2019)."""
    path = tmp_path_factory.mktemp("frame") / "frame.csv"
    write_frame(path, units=3000, seed=2019)
    return path


@pytest.fixture(scope="module")
def frame(frame_path: Path) -> list[Contact]:
    """The checked contacts of the synthetic frame."""
    return load_contacts(frame_path).contacts


# --- allocation -----------------------------------------------------------------------------


def test_allocation_is_proportional() -> None:
    """Sizes 600/300/100 and n = 100: exactly 60/30/10."""
    result = allocate({"a": 600, "b": 300, "c": 100}, 100, minimum=2)
    assert result.counts == {"a": 60, "b": 30, "c": 10}
    assert result.minimum_met


def test_allocation_gives_small_strata_the_minimum() -> None:
    """A tiny stratum gets the minimum; the rest is shared in proportion; a stratum smaller
    than the minimum is taken whole."""
    result = allocate({"big": 1000, "mid": 100, "tiny": 10, "one": 1}, 22, minimum=3)
    assert result.counts == {"big": 15, "mid": 3, "tiny": 3, "one": 1}
    assert result.minimum_met


def test_largest_remainder_rounding_is_deterministic() -> None:
    """Three equal strata, two units: ties go to the earlier strata; the total is exact."""
    assert allocate({"a": 5, "b": 5, "c": 5}, 2).counts == {"a": 1, "b": 1, "c": 0}
    assert allocate({"a": 3, "b": 7}, 5).counts == {"a": 1, "b": 4}  # 1.5 / 3.5: larger wins


def test_an_infeasible_minimum_falls_back_to_proportional() -> None:
    """Ten strata of five with n = 10 cannot all get 2: proportional, and it says so."""
    result = allocate({i: 5 for i in range(10)}, 10, minimum=2)
    assert not result.minimum_met
    assert sum(result.counts.values()) == 10
    assert set(result.counts.values()) == {1}


def test_more_than_the_frame_is_an_error() -> None:
    """n larger than the frame cannot be drawn."""
    with pytest.raises(SamplingError, match="cannot draw 11 units from a frame of 10"):
        allocate({"a": 4, "b": 6}, 11)


@given(st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=25),
       st.data(), st.integers(min_value=0, max_value=6))
def test_allocation_property(sizes: list[int], data: st.DataObject, minimum: int) -> None:
    """Always sums to n and never exceeds a stratum; the minimum holds whenever feasible;
    without a minimum each count is within one unit of its exact proportional share."""
    total = sum(sizes)
    n = data.draw(st.integers(min_value=0, max_value=total))
    strata = dict(enumerate(sizes))
    result = allocate(strata, n, minimum)
    counts = result.counts
    assert sum(counts.values()) == n
    assert all(0 <= counts[k] <= size for k, size in strata.items())
    feasible = sum(min(minimum, size) for size in sizes) <= n
    assert result.minimum_met == feasible
    if feasible:
        assert all(counts[k] >= min(minimum, size) for k, size in strata.items())
    plain = allocate(strata, n).counts
    assert all(abs(plain[k] - Fraction(n * size, total)) < 1 for k, size in strata.items())


@given(st.lists(st.integers(min_value=1, max_value=200), min_size=2, max_size=12),
       st.integers(min_value=1, max_value=4))
def test_allocation_with_minimum_stays_proportional_above_it(sizes: list[int],
                                                             minimum: int) -> None:
    """Strata above the minimum keep the order of their sizes (a bigger one never gets less)."""
    n = sum(sizes) // 3
    assume(sum(min(minimum, s) for s in sizes) <= n)
    counts = allocate(dict(enumerate(sizes)), n, minimum).counts
    for i, a in enumerate(sizes):
        for j, b in enumerate(sizes):
            if a > b:
                assert counts[i] >= counts[j]


# --- drawing --------------------------------------------------------------------------------


def test_unknown_strata_are_a_usage_error() -> None:
    """`--strata sector,fylke` names what is allowed."""
    assert parse_strata(" sector, landsdel ,size") == STRATA3
    with pytest.raises(SamplingError, match="unknown stratum 'fylke'"):
        parse_strata("sector,fylke")
    with pytest.raises(SamplingError, match="named twice"):
        parse_strata("size,size")


def test_sample_is_reproducible_and_depends_on_the_seed(frame: list[Contact]) -> None:
    """Same seed, same units; another seed, other units (with the same allocation)."""
    first = draw(frame, STRATA3, 300, seed=7)
    again = draw(frame, STRATA3, 300, seed=7)
    other = draw(frame, STRATA3, 300, seed=8)
    assert first.lines == again.lines
    assert first.lines != other.lines
    assert [r.sample for r in first.rows] == [r.sample for r in other.rows]
    assert len(first.lines) == len(set(first.lines)) == 300


def test_sample_follows_the_allocation(frame: list[Contact]) -> None:
    """Each stratum holds exactly its allocated units, and at least the minimum."""
    result = draw(frame, STRATA3, 300, seed=1, minimum=2)
    by_line = {c.line: c for c in frame}
    drawn = Counter(stratum_of(by_line[line], STRATA3) for line in result.lines)
    sizes = {key: len(units) for key, units in group(frame, STRATA3).items()}
    assert result.minimum_met
    assert {r.key: r.sample for r in result.rows} == {k: drawn.get(k, 0) for k in sizes}
    assert all(drawn[k] >= min(2, size) for k, size in sizes.items())
    assert [r.frame for r in result.rows] == list(sizes.values())


def test_strata_are_in_their_natural_order(frame: list[Contact]) -> None:
    """Sectors as the questionnaire lists them, sizes ascending (not alphabetically)."""
    keys = list(group(frame, ("sector", "size")))
    sectors = list(dict.fromkeys(k[0] for k in keys))
    sizes = list(dict.fromkeys(k[1] for k in keys if k[0] == "helse"))
    assert sectors == ["helse", "oppvekst", "sosial", "kultur", "teknisk"]
    assert sizes == ["<3000", "3000-9999", "10000-49999", "50000+"]


def test_sample_file_keeps_the_frame_format(tmp_path: Path) -> None:
    """A cp1252 `;` frame with extra columns gives a cp1252 `;` sample with the same header."""
    header = "Navn;E-post;Rolle;Kommunenr;Sektor;Merknad"
    rows = [f"Person {i};p{i}@baerum.kommune.no;virksomhetsleder;0219;"
            f"{'helse' if i % 2 else 'kultur'};Bærum {i}" for i in range(40)]
    frame_file = tmp_path / "frame.csv"
    frame_file.write_bytes(("\r\n".join([header, *rows]) + "\r\n").encode("cp1252"))
    out = tmp_path / "sample.csv"
    result = write_sample(load_contacts(frame_file), out, n=10, strata=("sector",), seed=3)
    table = read_table(out)
    assert (table.encoding, table.delimiter) == ("cp1252", ";")
    assert ";".join(table.header) == header
    assert len(table.rows) == 10 == len(result.lines)
    assert all(cells[5].startswith("Bærum ") for _, cells in table.rows)
    assert Counter(cells[4] for _, cells in table.rows) == {"helse": 5, "kultur": 5}


# --- substitutes ----------------------------------------------------------------------------


def test_substitutes_come_from_the_same_stratum(frame: list[Contact]) -> None:
    """Each bounced unit gets a never-drawn unit of its own stratum."""
    sample_lines = set(draw(frame, STRATA3, 200, seed=5).lines)
    sample = [c for c in frame if c.line in sample_lines]
    gone = {c.email for c in sample[:6]}
    result = substitutes(frame, sample, gone, STRATA3, seed=9)
    by_line = {c.line: c for c in frame}
    new = [by_line[line] for line in result.lines]
    assert len(new) == 6
    assert Counter(stratum_of(c, STRATA3) for c in new) == Counter(
        stratum_of(c, STRATA3) for c in sample[:6])
    assert not {c.email for c in new} & ({c.email for c in sample} | gone)
    assert result.shortfall == 0


def test_an_exhausted_stratum_is_reported(frame: list[Contact]) -> None:
    """If a stratum has no undrawn units left, the shortfall says how many stay unreplaced."""
    key = stratum_of(frame[0], ("county",))
    whole = [c for c in frame if stratum_of(c, ("county",)) == key]
    result = substitutes(frame, whole, {whole[0].email}, ("county",), seed=1)
    assert result.lines == ()
    assert result.shortfall == 1
    assert result.rows[0].left == 0


def test_replacement_file_round_trip(tmp_path: Path, frame_path: Path) -> None:
    """The sample file keeps every drawn unit and gains the substitutes; a second round never
    draws a unit already drawn (bounced ones included)."""
    out = tmp_path / "sample.csv"
    loaded = load_contacts(frame_path)
    write_sample(loaded, out, n=100, strata=STRATA3, seed=11)
    first = load_contacts(out).contacts
    bounced = tmp_path / "bounced.csv"
    bounced.write_text("E-post\n" + "\n".join(c.email.upper() for c in first[:3])
                       + "\nstranger@example.no\n", encoding="utf-8")
    result = write_replacement(loaded, load_contacts(out), bounced, out, strata=STRATA3,
                               seed=12)
    second = load_contacts(out).contacts
    assert [c.email for c in second[:100]] == [c.email for c in first]
    assert len(second) == 103
    assert result.warnings == (f"{bounced}:5: warning: 'stranger@example.no' is not in the "
                               f"sample {out} (ignored)",)
    bounced.write_text("email\n" + second[100].email + "\n", encoding="utf-8")
    write_replacement(loaded, load_contacts(out), bounced, out, strata=STRATA3, seed=12)
    third = load_contacts(out).contacts
    assert len(third) == 104
    assert len({c.email for c in third}) == 104


# --- synthetic frames -----------------------------------------------------------------------


def test_ascii_folding_as_norwegian_domains_do() -> None:
    """æ → ae, ø → o, å → a, accents dropped."""
    assert ascii_fold("Bærum") == "baerum"
    assert ascii_fold("Tromsø") == "tromso"
    assert ascii_fold("Ålesund") == "alesund"
    assert ascii_fold("Hábmer") == "habmer"


def test_mayors_frame_has_439_mayors_and_imports_cleanly(tmp_path: Path) -> None:
    """One mayor per 2019 kommune (422) and fylkeskommune (17), each checked without problems
    and imported."""
    text = "name,email,role,municipality_no,municipality_name,sector,unit_type,phone," \
           "telegram,lang\r\n" + "".join(",".join(row) + "\r\n" for row in mayor_rows(2019))
    parsed = check_table(parse_table(text.encode("utf-8"), "mayors.csv"))
    assert parsed.problems == []
    assert parsed.warnings == []
    numbers = Counter(c.municipality_no for c in parsed.contacts)
    assert len(parsed.contacts) == 439
    assert set(numbers) == set(reference.municipalities()) | set(
        reference.county_municipalities())
    assert set(numbers.values()) == {1}
    assert {c.role.value for c in parsed.contacts} == {"mayor"}
    engine = make_engine(f"sqlite:///{tmp_path / 'mayors.db'}")
    Base.metadata.create_all(engine)
    result = import_contacts(session_factory(engine), "ordforer-2020", parsed.contacts)
    engine.dispose()
    assert result.summary() == "439 new, 0 updated, 0 unchanged"


def test_unit_leader_frame_is_realistic_and_valid(frame: list[Contact]) -> None:
    """N valid rows; unit types fit sectors; addresses are name@kommune.kommune.no in ASCII;
    Oslo has many units, Utsira at most a couple."""
    assert len(frame) == 3000
    assert all(c.unit_type in UNIT_TYPES[c.sector or ""] for c in frame)
    assert all(re.fullmatch(r"[a-z-]+\.[a-z-]+\d*@[a-z-]+\.kommune\.no", c.email)
               for c in frame)
    assert len({c.email for c in frame}) == 3000
    per_kommune = Counter(c.municipality_no for c in frame)
    assert per_kommune["0301"] > 200
    assert per_kommune["1151"] <= 2
    sectors = Counter(c.sector for c in frame)
    assert sectors["oppvekst"] > sectors["helse"] > sectors["teknisk"] > sectors["sosial"] > 0
    assert {c.lang for c in frame} == {"nb", "nn"}
    oslo = next(c for c in frame if c.municipality_no == "0301")
    assert oslo.email.endswith("@oslo.kommune.no")


def test_frames_are_reproducible() -> None:
    """Same seed, same frame; another seed, another one."""
    assert list(unit_leader_rows(50, 1)) == list(unit_leader_rows(50, 1))
    assert list(unit_leader_rows(50, 1)) != list(unit_leader_rows(50, 2))
    assert list(mayor_rows(1)) == list(mayor_rows(1))


# --- the commands ---------------------------------------------------------------------------


def test_cli_demo_frame_sample_import(tmp_path: Path) -> None:
    """demo-frame → sample (table printed) → import; the sample imports as is."""
    frame_file, sample_file = tmp_path / "frame.csv", tmp_path / "sample.csv"
    made = svarbot("demo-frame", "--units", "1500", "--seed", "4", "--out", str(frame_file))
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == f"{frame_file}: 1500 unit leaders (seed 4)"
    drawn = svarbot("sample", str(frame_file), "--n", "200", "--strata", "sector,size",
                    "--seed", "5", "--out", str(sample_file))
    assert drawn.returncode == 0, drawn.stderr
    assert "helse" in drawn.stdout
    assert "total" in drawn.stdout
    assert "% of stratum" in drawn.stdout
    assert f"{sample_file}: 200 units from 1500 in 20 strata (seed 5)" in drawn.stdout
    assert len(load_contacts(sample_file).contacts) == 200
    config = tmp_path / "config.yaml"
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    config.write_text(f"database:\n  url: {url}\n", encoding="utf-8")
    imported = svarbot("import", str(sample_file), "--survey", "vl", "--config", str(config))
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == f"{sample_file}: 200 new, 0 updated, 0 unchanged"


def test_cli_mayors_frame_imports(tmp_path: Path) -> None:
    """`demo-frame --mayors` writes 439 rows that `import` takes without a problem."""
    mayors = tmp_path / "mayors.csv"
    made = svarbot("demo-frame", "--mayors", "--out", str(mayors))
    assert made.stdout.strip() == f"{mayors}: 439 mayors (seed 2019)"
    config = tmp_path / "config.yaml"
    config.write_text(f"database:\n  url: sqlite:///{tmp_path / 'none.db'}\n", encoding="utf-8")
    checked = svarbot("import", str(mayors), "--survey", "ordforer-2020", "--dry-run",
                      "--config", str(config))
    assert checked.returncode == 0, checked.stderr
    assert "439 rows are valid" in checked.stdout


def test_cli_sample_replace(tmp_path: Path, frame_path: Path) -> None:
    """`--replace` adds one substitute per bounced unit and prints the table."""
    out = tmp_path / "sample.csv"
    assert svarbot("sample", str(frame_path), "--n", "50", "--seed", "1",
                   "--out", str(out)).returncode == 0
    sampled = load_contacts(out).contacts
    bounced = tmp_path / "bounced.csv"
    bounced.write_text("name,email\nx," + sampled[0].email + "\n", encoding="utf-8")
    result = svarbot("sample", str(frame_path), "--replace", str(bounced), "--seed", "2",
                     "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "to replace" in result.stdout
    assert f"{out}: 1 substitutes added (seed 2)" in result.stdout
    after = load_contacts(out).contacts
    assert len(after) == 51
    assert stratum_of(after[-1], STRATA3) == stratum_of(sampled[0], STRATA3)


def test_cli_sample_without_a_seed_prints_the_one_it_drew(tmp_path: Path,
                                                          frame_path: Path) -> None:
    """No --seed: a fresh one, named in the summary with how to draw the same sample again."""
    from click.testing import CliRunner

    from bot.cli.contacts import sample_command

    first, again = tmp_path / "first.csv", tmp_path / "again.csv"
    runner = CliRunner()
    drawn = runner.invoke(sample_command, [str(frame_path), "--n", "40", "--out", str(first)])
    assert drawn.exit_code == 0, drawn.output
    summary = drawn.stdout.splitlines()[-1]
    match = re.fullmatch(rf"{re.escape(str(first))}: 40 units from 3000 in \d+ strata "
                         r"\(seed (\d+): run again with --seed (\d+) to draw the same sample\)",
                         summary)
    assert match is not None, summary
    assert match[1] == match[2]
    repeated = runner.invoke(sample_command, [str(frame_path), "--n", "40", "--seed", match[1],
                                              "--out", str(again)])
    assert repeated.exit_code == 0
    assert repeated.stdout.splitlines()[-1].endswith(f"(seed {match[1]})")
    assert first.read_bytes() == again.read_bytes()
    seeds = {new_seed() for _ in range(50)}
    assert len(seeds) > 1
    assert all(10_000 <= seed < 100_000 for seed in seeds)


@pytest.mark.parametrize(("args", "status", "message"), [
    (("--n", "10", "--seed", "1", "--strata", "sector,fylke"), 2, "unknown stratum 'fylke'"),
    (("--n", "999999", "--seed", "1"), 2, "cannot draw 999999 units from a frame of 3000"),
    (("--seed", "1"), 2, "--n is required"),
])
def test_cli_sample_usage_errors(tmp_path: Path, frame_path: Path, args: tuple[str, ...],
                                 status: int, message: str) -> None:
    """Bad options: one line, exit 2, nothing written."""
    out = tmp_path / "sample.csv"
    result = svarbot("sample", str(frame_path), *args, "--out", str(out))
    assert result.returncode == status
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_cli_sample_refuses_to_overwrite_and_checks_the_frame(tmp_path: Path) -> None:
    """An existing --out needs --force; a broken frame is exit 1 with its line."""
    out = tmp_path / "sample.csv"
    out.write_text("keep me", encoding="utf-8")
    frame_file = tmp_path / "frame.csv"
    frame_file.write_text("name,email,role,municipality_no,sector\n"
                          "A,a@x.no,mayor,0301,\nB,b@,mayor,0219,\n", encoding="utf-8")
    refused = svarbot("sample", str(frame_file), "--n", "1", "--seed", "1", "--out", str(out))
    assert refused.returncode == 2
    assert out.read_text(encoding="utf-8") == "keep me"
    broken = svarbot("sample", str(frame_file), "--n", "1", "--seed", "1", "--out", str(out),
                     "--force")
    assert broken.returncode == 1
    assert f"{frame_file}:3: email 'b@' is not an address" in broken.stderr
    assert out.read_text(encoding="utf-8") == "keep me"


def test_cli_sample_help_lists_every_stratum() -> None:
    """The --help text names every stratum the code accepts."""
    result = svarbot("sample", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for name in STRATA:
        assert name in text
    assert "--replace" in text
    assert "--min-per-stratum" in text
