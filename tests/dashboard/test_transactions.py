"""Transactions: every filter returns exactly the matching rows, search, keyset pages, CSV."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta

import pytest

from app.extensions import db
from tests.support.factories import add_many_payments, add_payment

NOW = datetime(2026, 11, 20, 12, 0, 0)
ROW_ID = re.compile(r'href="/dashboard/payments/(pay_[A-Za-z0-9]+)"')


def ids_on_page(response) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return ROW_ID.findall(response.get_data(as_text=True))


@pytest.fixture
def dataset(app, tenants):
    """A small, varied set for merchant A, plus B's rows that must never show up for A."""
    specs = {
        "eur-ok": dict(
            status="SUCCESS",
            amount=1050,
            currency="EUR",
            email="ann@example.com",
            created_at=NOW - timedelta(days=1),
            session_id="cs_test_aaa111",
        ),
        "eur-fail": dict(
            status="FAILED",
            amount=2000,
            currency="EUR",
            email="ben@example.com",
            created_at=NOW - timedelta(days=2),
        ),
        "usd-pend": dict(
            status="PENDING",
            amount=999,
            currency="USD",
            email="ann@other.org",
            created_at=NOW - timedelta(days=3),
            session_id="cs_test_bbb222",
        ),
        "jpy-ok": dict(
            status="SUCCESS", amount=1050, currency="JPY", created_at=NOW - timedelta(days=4)
        ),
        "kwd-ok": dict(
            status="SUCCESS", amount=10500, currency="KWD", created_at=NOW - timedelta(days=5)
        ),
        "recc-init": dict(
            status="INITIATED",
            amount=500,
            currency="EUR",
            payment_type="RECC",
            created_at=NOW - timedelta(days=6),
        ),
        "order_%1": dict(
            status="CREATED", amount=700, currency="EUR", created_at=NOW - timedelta(days=7)
        ),
    }
    with app.app_context():
        rows = {}
        for ref, spec in specs.items():
            rows[ref] = add_payment(tenants.a_id, reference=ref, **spec)
        other = add_payment(
            tenants.b_id,
            reference="eur-ok",
            status="SUCCESS",
            amount=1050,
            email="ann@example.com",
            created_at=NOW - timedelta(days=1),
        )
        db.session.commit()
        ids = {ref: p.public_id for ref, p in rows.items()}
        ids["b"] = other.public_id
        return ids


def refs(dataset, *names):
    return {dataset[n] for n in names}


ALL_A = ["eur-ok", "eur-fail", "usd-pend", "jpy-ok", "kwd-ok", "recc-init", "order_%1"]


@pytest.mark.parametrize(
    "query, expected",
    [
        ("", ALL_A),
        ("status=SUCCESS", ["eur-ok", "jpy-ok", "kwd-ok"]),
        ("status=PENDING", ["usd-pend"]),
        ("currency=eur", ["eur-ok", "eur-fail", "recc-init", "order_%1"]),
        ("payment_type=RECC", ["recc-init"]),
        ("date_from=2026-11-17&date_to=2026-11-18", ["usd-pend", "eur-fail"]),
        ("date_from=2026-11-19", ["eur-ok"]),
        ("date_to=2026-11-14", ["recc-init", "order_%1"]),
        ("date_to=2026-11-13", ["order_%1"]),
        # 10.50 in the payment's own currency: 1050 EUR cents, 1050 JPY? no (¥10.50 → 10),
        # 10.500 KWD = 10500 fils.
        ("amount_min=10.50&amount_max=10.50", ["eur-ok", "kwd-ok"]),
        ("amount_min=10.5&amount_max=10.5&currency=EUR", ["eur-ok"]),
        ("amount_min=1000&amount_max=1100", ["jpy-ok"]),
        ("amount_min=20", ["eur-fail", "jpy-ok"]),
        ("amount_max=7", ["recc-init", "order_%1"]),
        ("status=SUCCESS&currency=EUR&amount_max=11", ["eur-ok"]),
        # search: exact or prefix on reference, payment id, PSP session, email
        ("q=eur-ok", ["eur-ok"]),
        ("q=eur-", ["eur-ok", "eur-fail"]),
        ("q=cs_test_bbb", ["usd-pend"]),
        ("q=cs_test_aaa111", ["eur-ok"]),
        ("q=ann@", ["eur-ok", "usd-pend"]),
        ("q=ann@example.com", ["eur-ok"]),
        # the beginning of an email, before its @ too, in any case (emails are kept in lower)
        ("q=ann", ["eur-ok", "usd-pend"]),
        ("q=ANN@Exam", ["eur-ok"]),
        ("q=be", ["eur-fail"]),
        ("q=ann ", ["eur-ok", "usd-pend"]),  # as pasted, with a space after
        ("refund_state=any", []),
        ("q=order_%", ["order_%1"]),  # % and _ are literal, not wildcards
        ("q=%25ok", []),  # no leading wildcard
        ("q=ok", []),  # no infix match
    ],
)
def test_each_filter_returns_exactly_the_matching_rows(client_a, dataset, query, expected):
    assert set(ids_on_page(client_a.get(f"/dashboard/payments?{query}"))) == refs(
        dataset, *expected
    )


def test_search_by_payment_id_exact_and_prefix(client_a, dataset):
    full = dataset["usd-pend"]
    assert ids_on_page(client_a.get(f"/dashboard/payments?q={full}")) == [full]
    assert full in ids_on_page(client_a.get(f"/dashboard/payments?q={full[:10]}"))


def test_newest_first(client_a, dataset):
    assert ids_on_page(client_a.get("/dashboard/payments")) == [dataset[r] for r in ALL_A]


def test_invalid_filters_say_what_is_wrong(client_a, dataset):
    response = client_a.get(
        "/dashboard/payments?amount_min=ten&currency=E1R&date_from=2026-11-20&date_to=2026-11-01&status=PAID"
    )
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Enter an amount like 12.50." in html
    assert "three-letter ISO code" in html
    assert "The end date is before the start date." in html
    assert "Not a valid choice" in html
    reversed_amounts = client_a.get("/dashboard/payments?amount_min=10&amount_max=5")
    assert reversed_amounts.status_code == 400
    assert "The upper amount is below the lower one." in reversed_amounts.get_data(as_text=True)
    assert ROW_ID.findall(html) == []  # no unfiltered list posing as the filtered one
    assert "Fix the filters above" in html


def test_keyset_pages_cover_every_row_once(app, client_a, tenants):
    with app.app_context():
        same_time = NOW - timedelta(hours=1)
        # 60 share one timestamp: the id breaks the tie, so none is skipped or repeated.
        for i in range(120):
            add_payment(
                tenants.a_id,
                reference=f"bulk-{i:03d}",
                created_at=same_time if i < 60 else NOW - timedelta(minutes=i),
            )
        db.session.commit()
    seen, url, sizes = [], "/dashboard/payments", []
    while url:
        response = client_a.get(url)
        page = ids_on_page(response)
        sizes.append(len(page))
        seen.extend(page)
        match = re.search(r'href="([^"]+)" rel="next"', response.get_data(as_text=True))
        url = match.group(1).replace("&amp;", "&") if match else None
    assert sizes == [50, 50, 20]
    assert len(seen) == len(set(seen)) == 120
    # … and "Newer" from page 2 leads back to page 1.
    page2 = client_a.get(
        re.search(
            r'href="([^"]+)" rel="next"', client_a.get("/dashboard/payments").get_data(as_text=True)
        )
        .group(1)
        .replace("&amp;", "&")
    )
    back = re.search(r'href="([^"]+)" rel="prev"', page2.get_data(as_text=True)).group(1)
    assert ids_on_page(client_a.get(back.replace("&amp;", "&"))) == seen[:50]


def test_a_broken_cursor_falls_back_to_the_first_page(client_a, dataset):
    response = client_a.get("/dashboard/payments?after=not-a-cursor")
    assert response.status_code == 200
    assert "not valid any more" in response.get_data(as_text=True)
    assert len(ids_on_page(response)) == len(ALL_A)


def read_csv(response) -> list[dict]:
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_csv_export_has_exactly_the_filtered_rows(client_a, dataset):
    response = client_a.get("/dashboard/payments/export.csv?currency=EUR&status=SUCCESS")
    assert response.is_streamed
    assert "attachment" in response.headers["Content-Disposition"]
    rows = read_csv(response)
    assert [r["payment_id"] for r in rows] == [dataset["eur-ok"]]
    row = rows[0]
    assert row["amount"] == "10.50"
    assert row["amount_minor"] == "1050"
    assert row["currency"] == "EUR"
    assert row["merchant_reference"] == "eur-ok"
    assert row["customer_email"] == "ann@example.com"
    assert row["psp_session_id"] == "cs_test_aaa111"
    assert row["status"] == "SUCCESS"
    # No zone set: UTC, and the cell says so (to the second, as spreadsheets read it).
    assert row["created_at"] == "2026-11-19 12:00:00+00:00"


def test_csv_export_of_everything_matches_the_table(client_a, dataset):
    rows = read_csv(client_a.get("/dashboard/payments/export.csv"))
    assert [r["payment_id"] for r in rows] == [dataset[r] for r in ALL_A]
    amounts = {r["merchant_reference"]: r["amount"] for r in rows}
    assert amounts["jpy-ok"] == "1050"
    assert amounts["kwd-ok"] == "10.500"


def test_csv_export_streams_many_rows_in_batches(app, client_a, tenants):
    with app.app_context():
        add_many_payments(tenants.a_id, 2500, start=NOW)
        db.session.commit()
    response = client_a.get("/dashboard/payments/export.csv?status=FAILED", buffered=False)
    chunks = list(response.response)
    response.close()
    # header + 1000 + 1000 + 500 rows arrive as separate chunks, not one big string
    assert len([c for c in chunks if c]) >= 3
    rows = list(
        csv.DictReader(
            io.StringIO(
                b"".join(c if isinstance(c, bytes) else c.encode() for c in chunks).decode()
            )
        )
    )
    assert len(rows) == 2500
    assert rows[0]["merchant_reference"] == "many-00000"
    assert rows[-1]["merchant_reference"] == "many-02499"


def test_csv_cells_cannot_become_spreadsheet_formulas(app, client_a, tenants):
    with app.app_context():
        add_payment(tenants.a_id, reference='=HYPERLINK("http://x")', email="+1@x.org")
        db.session.commit()
    (row,) = read_csv(client_a.get("/dashboard/payments/export.csv"))
    assert row["merchant_reference"] == '\'=HYPERLINK("http://x")'
    assert row["customer_email"] == "'+1@x.org"


def test_invalid_filters_refuse_the_export(client_a, dataset):
    assert client_a.get("/dashboard/payments/export.csv?amount_min=abc").status_code == 400


@pytest.mark.parametrize(
    ("query", "spec_of"),
    [
        # The reference branch and the email branch of one search, interleaved in time.
        ("q=ann", lambda i: {"reference": f"ann-{i:03d}"} if i % 2 else {"email": f"ann{i}@x.org"}),
        # The partial and the full branch of "any refund", one timestamp shared by 40 of them.
        ("refund_state=any", lambda i: {"refund": "partial" if i % 3 else "full"}),
    ],
)
def test_pages_of_a_merged_search_cover_every_row_once_both_ways(
    app, client_a, tenants, query, spec_of
):
    with app.app_context():
        expected = []
        for i in range(120):
            spec = spec_of(i)
            refund = spec.pop("refund", None)
            created = NOW - timedelta(hours=1) if i < 40 else NOW - timedelta(minutes=i)
            payment = add_payment(tenants.a_id, amount=3000, created_at=created, **spec)
            if refund:
                db.session.flush()
                payment.count_refunded(1000 if refund == "partial" else 3000)
            expected.append(payment)
        add_payment(tenants.a_id, reference="other", email="bob@x.org")  # matches neither
        db.session.commit()
        newest_first = [
            p.public_id for p in sorted(expected, key=lambda p: (p.created_at, p.id), reverse=True)
        ]
    pages, url = [], f"/dashboard/payments?{query}"
    while url:
        response = client_a.get(url)
        pages.append((url, ids_on_page(response)))
        match = re.search(r'href="([^"]+)" rel="next"', response.get_data(as_text=True))
        url = match.group(1).replace("&amp;", "&") if match else None
    assert [len(ids) for _, ids in pages] == [50, 50, 20]
    assert [pid for _, ids in pages for pid in ids] == newest_first
    # "Newer" from the last page leads back to the middle one, exactly.
    last = client_a.get(pages[2][0]).get_data(as_text=True)
    back = re.search(r'href="([^"]+)" rel="prev"', last).group(1).replace("&amp;", "&")
    assert ids_on_page(client_a.get(back)) == pages[1][1]


def test_the_filter_panel_stays_folded_and_the_filters_in_use_show_as_chips(client_a, dataset):
    plain = client_a.get("/dashboard/payments").get_data(as_text=True)
    assert '<details class="filter-panel" id="filter-panel">' in plain  # folded
    assert 'aria-label="Active filters"' not in plain
    searched = client_a.get("/dashboard/payments?q=ann").get_data(as_text=True)
    assert '<details class="filter-panel" id="filter-panel">' in searched  # the box is outside
    filtered = client_a.get("/dashboard/payments?q=ann&status=SUCCESS&currency=eur")
    html = filtered.get_data(as_text=True)
    assert '<details class="filter-panel" id="filter-panel">' in html  # the rows stay on top
    assert '<span class="count" aria-label="2 in use">2</span>' in html
    chips = dict(
        re.findall(
            r'<a href="([^"]+)" aria-label="Remove filter ([^"]+)"', html.replace("&amp;", "&")
        )
    )
    # Each chip's link is the list without that one filter, the others as they were typed.
    assert {label: link for link, label in chips.items()} == {
        "Search: ann": "/dashboard/payments?status=SUCCESS&currency=eur",
        "Status: Success": "/dashboard/payments?q=ann&currency=eur",
        "Currency: EUR": "/dashboard/payments?q=ann&status=SUCCESS",
    }
    # A wrong filter opens the panel where its message is.
    wrong = client_a.get("/dashboard/payments?currency=E1R").get_data(as_text=True)
    assert '<details class="filter-panel" id="filter-panel" open>' in wrong


def test_days_and_times_are_the_merchants_once_it_sets_its_time_zone(
    app, tenants, client_a, dataset
):
    """eur-ok was created 2026-11-19 12:00 UTC: 20 Nov, 02:00 at UTC+14. The filter's days and
    the list's times are the merchant's, as the overview's are."""
    from app.models import Merchant

    with app.app_context():
        db.session.get(Merchant, tenants.a_id).time_zone = "Pacific/Kiritimati"
        db.session.commit()
    assert ids_on_page(client_a.get("/dashboard/payments?date_from=2026-11-20")) == [
        dataset["eur-ok"]
    ]
    assert dataset["eur-ok"] not in ids_on_page(
        client_a.get("/dashboard/payments?date_to=2026-11-19")
    )
    page = client_a.get("/dashboard/payments?q=eur-ok").get_data(as_text=True)
    assert "Created (Pacific/Kiritimati)" in page and "2026-11-20 02:00" in page
    # The export of the same local day: the same row, its time as the list shows it, with
    # the offset that makes it one instant.
    (row,) = read_csv(client_a.get("/dashboard/payments/export.csv?date_from=2026-11-20"))
    assert row["payment_id"] == dataset["eur-ok"]
    assert row["created_at"] == "2026-11-20 02:00:00+14:00"
