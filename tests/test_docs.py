"""docs.py: tables and quoted figures written from saved results, and checked against them."""

import re
from pathlib import Path

import pytest

from lecun1989.studies import docs
from lecun1989 import cli
from lecun1989.studies import rows as studies
from lecun1989.studies import runner
from lecun1989.cli import main
from lecun1989.errors import LecunError

REPO = Path(__file__).resolve().parents[1]
TINY = studies.Study("tiny", "two seeds, one pass, a few digits", (
    studies.Row("usps", "lecun1989 repro --data usps --train-size 60 --test-size 40 --passes 1 --seeds 0-1"),))
DOC = """# A study

<!-- table tiny -->
<!-- /table -->

Test misses <!-- fig tiny/usps test_misses --><!-- /fig -->, train error <!-- fig tiny/usps train_error.mean --><!-- /fig -->.
"""


def tiny_table(r):
    return docs._table(["row", "command", *docs.FOUR], [docs._four(r, "tiny/usps", "two seeds")])


@pytest.fixture(scope="module")
def results(tmp_path_factory, raw_dir):
    root = tmp_path_factory.mktemp("tiny")
    runner.run([TINY], root / "results", cli.run_command, root / "work", echo=lambda line: None)
    return root / "results"


def fill(tmp_path, results, check=False):
    return docs.docs(tmp_path, results, check=check, tables={"tiny": tiny_table}, files=("DOC.md",),
                     with_pictures=False)


def test_a_tiny_study_fills_a_table_that_then_checks_and_a_changed_digit_fails(tmp_path, results):
    (tmp_path / "DOC.md").write_text(DOC, encoding="utf-8")
    assert len(fill(tmp_path, results, check=True)) == 3   # empty table, two empty figures
    assert (tmp_path / "DOC.md").read_text(encoding="utf-8") == DOC   # --check changes nothing
    fill(tmp_path, results)
    text = (tmp_path / "DOC.md").read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| two seeds |"))
    assert "`lecun1989 repro --data usps --train-size 60 --test-size 40 --passes 1 --seeds 0-1`" in row
    final = docs.Results(results).final("tiny/usps")
    assert docs.figure("misses", final["test_misses"]) in row and f"{final['test_misses']['mean']:.1f} ± " in text
    assert fill(tmp_path, results, check=True) == []

    digit = next(c for c in row.split("|")[3] if c.isdigit())   # a digit of the train error's cell
    cells = row.split("|")
    cells[3] = cells[3].replace(digit, str((int(digit) + 1) % 10), 1)
    (tmp_path / "DOC.md").write_text(text.replace(row, "|".join(cells)), encoding="utf-8")
    [found] = fill(tmp_path, results, check=True)
    assert found.doc == "DOC.md" and found.where == "line 6, table tiny, row 'two seeds'"

    figure = docs.figure("misses", final["test_misses"])
    changed = figure.replace(figure[0], str((int(figure[0]) + 1) % 10), 1)
    (tmp_path / "DOC.md").write_text(text.replace(f"-->{figure}<", f"-->{changed}<"), encoding="utf-8")
    [found] = fill(tmp_path, results, check=True)
    assert found.where == "line 9, figure tiny/usps test_misses" and (found.ours, found.theirs) == (changed, figure)


def test_check_on_the_command_line_names_what_differs_and_exits_2(tmp_path, results, capsys, monkeypatch):
    monkeypatch.setattr(docs, "TABLES", {"tiny": tiny_table})
    monkeypatch.setattr(docs, "DOCS", ("DOC.md",))
    (tmp_path / "DOC.md").write_text(DOC, encoding="utf-8")
    assert main(["docs", "--check", "--root", str(tmp_path), "--results", str(results)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("DOC.md: line 4, table tiny, row ") and err[-1].endswith(
        "3 quoted figures differ from the results; `lecun1989 docs` rewrites them from the results")


def test_a_missing_result_or_unknown_table_is_one_line(tmp_path, results):
    (tmp_path / "DOC.md").write_text("<!-- table nonesuch -->\n<!-- /table -->\n", encoding="utf-8")
    with pytest.raises(LecunError, match="no table named 'nonesuch'"):
        fill(tmp_path, results)
    (tmp_path / "DOC.md").write_text("<!-- fig gone/row test_error --><!-- /fig -->\n", encoding="utf-8")
    with pytest.raises(LecunError, match="gone/row/study.json is missing: run `lecun1989 study gone"):
        fill(tmp_path, results)


def test_the_repositorys_docs_match_its_saved_results():
    """What CI's `lecun1989 docs --check` asks, from the README's test command too."""
    found = docs.docs(REPO, check=True)
    assert not found, "\n".join(d.line() for d in found)


def test_docs_redraws_the_pictures_from_the_saved_results_and_kept_weights(tmp_path, raw_dir):
    for name in docs.DOCS:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text((REPO / name).read_text(encoding="utf-8"), encoding="utf-8")
    assert docs.docs(tmp_path, REPO / "results") == []   # the texts were current: nothing to change
    for name in ("paper-usps-curves.png", "paper-usps-misclassified.png", "paper-usps-features.png"):
        assert (tmp_path / "docs/img" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (REPO / "docs/img" / name).is_file()   # the docs show every picture it draws


BROKEN_MARKERS = {
    "table-end-removed": ("README.md", lambda t: t.replace("<!-- /table -->", "", 1), "has no end before the next"),
    "table-end-extra": ("docs/MODERN.md", lambda t: t + "<!-- /table -->\n", "ends a pair never opened"),
    "table-opening-inline": ("docs/MODERN.md", lambda t: t.replace("<!-- table ", "see <!-- table ", 1),
                             "is not on a line of its own"),
    "last-table-open": ("docs/FIDELITY.md", lambda t: t + "<!-- table ablation-usps -->\n", "has no end"),
    "fig-end-misspelt": ("docs/READING.md", lambda t: t.replace("<!-- /fig -->", "<!-- /fg -->", 1),
                         "has no end before the next"),
}


@pytest.mark.parametrize("case", list(BROKEN_MARKERS))
def test_a_marker_without_its_pair_is_one_line_not_a_silent_pass(tmp_path, case):
    """A table or figure whose end marker is lost would be skipped by the check: it is an error instead."""
    name, damage, needle = BROKEN_MARKERS[case]
    for doc in docs.DOCS:
        (tmp_path / doc).parent.mkdir(parents=True, exist_ok=True)
        text = (REPO / doc).read_text(encoding="utf-8")
        (tmp_path / doc).write_text(damage(text) if doc == name else text, encoding="utf-8")
    with pytest.raises(LecunError, match=rf"^{re.escape(name)}: line \d+: <!-- .*{re.escape(needle)}"):
        docs.docs(tmp_path, REPO / "results", check=True)
