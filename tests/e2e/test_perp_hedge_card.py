"""The perp card's legs table in a real browser (Debian chromium via Playwright): a card rendered
for a one-way bot, then ``static/js/perp.js`` given a hedge-mode bot's live figures (a real
PerpRisk's) shows the legs table with exactly the text the server's template gives for the same
figures, and hides it again for one-way figures."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.template.loader import render_to_string
from django.utils.html import strip_tags

from tests.apps.dashboard.test_perp_hedge_portal import hedge_status

pytestmark = [pytest.mark.e2e]

CELLS = [f"perp-{leg}-{what}" for leg in ("long", "short")
         for what in ("contracts", "entry", "unrealized", "margin-used", "funding", "liquidation")]  # fmt: skip


def cells(page) -> dict[str, str]:
    return page.evaluate(
        "ids => Object.fromEntries(ids.map(i => [i, document.getElementById(i).textContent.trim()]))", CELLS
    )


def test_the_legs_table_follows_the_live_status_as_the_template_renders_it(browser):
    from apps.dashboard.perp import perp_figures

    status = hedge_status()
    figures = perp_figures(status)
    script = (Path(settings.BASE_DIR) / "static" / "js" / "perp.js").read_text()
    one_way = {**figures, "legs": None, "position_mode": "one_way"}
    page = browser.new_page()
    try:
        page.set_content(
            f"<html><body>{render_to_string('dashboard/_perp_card.html', {'perp': one_way})}</body></html>"
        )
        page.add_script_tag(content=script)
        assert page.locator("#perp-legs").is_hidden()
        page.evaluate("s => window.MMPerp.update(s.perp, s.ts)", status)
        assert page.locator("#perp-legs").is_visible()
        assert page.text_content("#perp-position-mode") == "hedge"
        server = Page(render_to_string("dashboard/_perp_card.html", {"perp": figures}))
        shown = cells(page)
        assert shown == {cell: server.text(cell) for cell in CELLS}
        assert shown["perp-long-contracts"] == "0.004" and shown["perp-short-unrealized"] == "+1"
        page.evaluate(
            "s => window.MMPerp.update(Object.assign({}, s.perp, {legs: null, position_mode: 'one_way'}), s.ts)", status
        )
        assert page.locator("#perp-legs").is_hidden()
    finally:
        page.close()


class Page:
    """The text of the server-rendered card's cells, by id."""

    def __init__(self, html: str) -> None:
        self.cells = {m[0]: strip_tags(m[1]).strip() for m in re.findall(r'<td id="([^"]+)">(.*?)</td>', html, re.S)}

    def text(self, cell: str) -> str:
        return self.cells[cell]
