"""The public report of a real release, rendered by headless Chromium and checked in its DOM.

Chromium loads ``report/index.html`` from disk with networking off and dumps the DOM it built;
the same checks as ``test_report_charts.py`` then run on that DOM: every cell of every chart is
present, labels come in order (dates ascending, ordinal columns in schema order, bins in bin
order) and percent labels are formatted. Needs Debian's ``chromium`` package; skipped, with the
reason, when no ``chromium`` binary is on the PATH.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from test_report_support import check_report_dom, make_release, parse_charts, read_report

CHROMIUM = shutil.which("chromium")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (apt-get install -y chromium)")


def _dump_dom(page: Path, profile: Path) -> str:
    assert CHROMIUM is not None
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
           "--dump-dom", page.resolve().as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, dict[str, object]]:
    tmp = tmp_path_factory.mktemp("browser")
    bundle = make_release(tmp)
    html, report = read_report(bundle)
    return _dump_dom(bundle / "report" / "index.html", tmp / "profile"), html, report


def test_chromium_dom_has_every_cell_in_order_with_formatted_percents(
        rendered: tuple[str, str, dict[str, object]]) -> None:
    dom, _, report = rendered
    assert "<figure" in dom and "</html>" in dom
    check_report_dom(dom, report)


def test_chromium_dom_matches_the_written_page(rendered: tuple[str, str, dict[str, object]]) -> None:
    dom, html, _ = rendered
    in_browser, on_disk = parse_charts(dom), parse_charts(html)
    assert len(in_browser) == len(on_disk) == 6
    assert in_browser == on_disk  # the browser built exactly the charts that were written
