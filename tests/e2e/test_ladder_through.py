"""The order-book ladder (``static/js/book.js``) in a real browser (Debian chromium): one of my
quotes priced through the book shown (the book came from a newer update than the bot's open
orders) is marked and explained, never sorted in silently as if it rested behind the touch."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e]

BOOK_JS = Path(__file__).resolve().parents[2] / "static" / "js" / "book.js"


def _render(page, book, quotes):
    page.set_content('<table id="ladder"><tbody></tbody></table>')
    page.add_script_tag(path=str(BOOK_JS))
    page.evaluate("([b, q]) => MMBook.renderLadder(document.getElementById('ladder'), b, q)", [book, quotes])
    return page.evaluate("() => Object.assign({}, document.getElementById('ladder').dataset)")


def test_a_quote_through_the_shown_book_is_marked_with_the_reason(browser):
    page = browser.new_page()
    book = {"bids": [["100.0", "1"], ["99.9", "2"]], "asks": [["100.1", "1"], ["100.2", "3"]]}
    # my ask at 99.95 is below the book's best bid 100.0: the book moved after my quotes were sent
    data = _render(page, book, [{"side": "sell", "price": "99.95", "qty": "0.1"},
                                {"side": "buy", "price": "99.9", "qty": "0.2"}])  # fmt: skip
    assert data["quotes"] == "2" and data["through"] == "1"
    cell = page.locator("#ladder td.mine.ask.through")
    assert cell.count() == 1
    assert cell.inner_text().startswith("⚠") and "0.1" in cell.inner_text()
    assert "priced through the book shown" in cell.get_attribute("title")
    # my bid at 99.9 rests behind the touch: marked as mine, not as through
    assert page.locator("#ladder td.mine.bid.through").count() == 0
    assert "0.2" in page.locator("#ladder td.mine.bid").nth(1).inner_text()

    # a bid at the best ask is through as well; quotes inside the spread are not
    data = _render(page, book, [{"side": "buy", "price": "100.1", "qty": "0.3"},
                                {"side": "sell", "price": "100.05", "qty": "0.1"}])  # fmt: skip
    assert data["through"] == "1"
    assert page.locator("#ladder td.mine.bid.through").count() == 1
    assert page.locator("#ladder td.mine.ask.through").count() == 0
    page.close()
