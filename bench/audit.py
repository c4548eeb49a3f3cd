"""The auditor: after each scenario, the invariants that make PayBridge payment software.

1. one payment per (merchant, reference), and every reference answered 201 is stored and
   no longer CREATED;
2. at most one PSP checkout session per payment (the emulator's own session list), each one
   recorded on its payment;
3. every session the PSP says is paid belongs to a SUCCESS payment;
4. every final payment has exactly one outbox notification per final status, delivered, and the
   receiver got exactly one notification id per payment status;
5. nothing lost: no notification pending or failed, no event stored with an error outcome.
"""

from __future__ import annotations

import time
from collections import Counter

from bench import emulator
from bench.stack import STRIPE_KEY, Stack, in_batches


def wait_for_outbox(stack: Stack, merchant_ids: list[int], timeout: float) -> int:
    """Wait until no notification of these merchants is pending; return how many still are."""
    deadline = time.monotonic() + timeout
    ids = ",".join(str(int(m)) for m in merchant_ids)
    conn = stack.mysql()
    try:
        while True:
            with conn.cursor() as cur:
                cur.execute(
                    f"SELECT COUNT(*) FROM notifications WHERE status='pending' "
                    f"AND merchant_id IN ({ids})"
                )
                pending = cur.fetchone()[0]
            if pending == 0 or time.monotonic() > deadline:
                return pending
            time.sleep(0.5)
    finally:
        conn.close()


def audit(
    stack: Stack,
    *,
    merchant_ids: list[int],
    since: int,
    created_refs: list[str] | None = None,
    drain_timeout: float = 60.0,
    check_receiver: bool = True,
) -> dict:
    problems: list[str] = []
    facts: dict = {}
    pending = wait_for_outbox(stack, merchant_ids, drain_timeout)
    ids = ",".join(str(int(m)) for m in merchant_ids)
    conn = stack.mysql()
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM payments GROUP BY merchant_id, merchant_reference "
            "HAVING COUNT(*) > 1) d"
        )
        dups = cur.fetchone()[0]
        facts["duplicate_references"] = dups
        if dups:
            problems.append(f"{dups} references with more than one payment")

        if created_refs:
            found = 0
            still_created = 0
            for chunk, marks in in_batches(created_refs):
                cur.execute(
                    f"SELECT status, COUNT(*) FROM payments WHERE merchant_id IN ({ids}) "
                    f"AND merchant_reference IN ({marks}) GROUP BY status",
                    chunk,
                )
                for status, n in cur.fetchall():
                    found += n
                    still_created += n if status == "CREATED" else 0
            facts["created_201"] = len(created_refs)
            facts["created_found"] = found
            if found != len(created_refs):
                problems.append(f"{len(created_refs) - found} payments answered 201 are missing")
            if still_created:
                problems.append(f"{still_created} payments answered 201 are still CREATED")

        query = {"created[gte]": since}
        sessions = list(emulator.list_all(stack.emu_url, STRIPE_KEY, "checkout/sessions", **query))
        facts["psp_sessions"] = len(sessions)
        per_payment = Counter(s.get("client_reference_id") for s in sessions)
        multi = [p for p, n in per_payment.items() if p and n > 1]
        facts["payments_with_several_sessions"] = len(multi)
        if multi:
            problems.append(f"{len(multi)} payments have more than one PSP session: {multi[:3]}")
        by_session = {}
        session_ids = [s["id"] for s in sessions]
        for chunk, marks in in_batches(session_ids):
            cur.execute(
                f"SELECT psp_session_id, public_id, status FROM payments "
                f"WHERE psp_session_id IN ({marks})",
                chunk,
            )
            for sid, public, status in cur.fetchall():
                by_session[sid] = (public, status)
        unrecorded = [s["id"] for s in sessions if s["id"] not in by_session]
        facts["sessions_not_on_a_payment"] = len(unrecorded)
        if unrecorded:
            problems.append(f"{len(unrecorded)} PSP sessions are on no payment: {unrecorded[:3]}")
        paid = [s for s in sessions if s.get("payment_status") == "paid"]
        not_success = [
            s["id"] for s in paid if by_session.get(s["id"], (None, None))[1] != "SUCCESS"
        ]
        facts["paid_sessions"] = len(paid)
        facts["paid_sessions_not_success"] = len(not_success)
        if not_success:
            problems.append(f"{len(not_success)} paid sessions whose payment is not SUCCESS")

        cur.execute(
            f"SELECT p.status, COUNT(n.id) AS k FROM payments p LEFT JOIN notifications n "
            f"ON n.payment_id = p.id AND n.event_type IN ('payment.succeeded','payment.failed') "
            f"WHERE p.merchant_id IN ({ids}) AND p.status IN ('SUCCESS','FAILED') "
            f"GROUP BY p.id, p.status HAVING k <> 1"
        )
        wrong = cur.fetchall()
        facts["final_payments_without_exactly_one_notification"] = len(wrong)
        if wrong:
            problems.append(f"{len(wrong)} final payments without exactly one notification")
        cur.execute(
            f"SELECT status, COUNT(*) FROM notifications WHERE merchant_id IN ({ids}) "
            "GROUP BY status"
        )
        outbox = dict(cur.fetchall())
        facts["outbox"] = outbox
        if pending:
            problems.append(f"{pending} notifications still pending after {drain_timeout:g}s")
        if outbox.get("failed"):
            problems.append(f"{outbox['failed']} notifications failed")
        cur.execute("SELECT outcome, COUNT(*) FROM psp_events GROUP BY outcome")
        facts["psp_events"] = dict(cur.fetchall())
    conn.close()
    if check_receiver:
        stats = stack.receiver("GET", "/_stats")
        facts["receiver"] = {
            k: stats[k]
            for k in (
                "hits",
                "unique_ids",
                "redelivered_ids",
                "unique_payment_events",
                "duplicated_payment_events",
            )
        }
        delivered = outbox.get("delivered", 0)
        if stats["unique_payment_events"] != delivered:
            problems.append(
                f"receiver holds {stats['unique_payment_events']} payment statuses, "
                f"the outbox says {delivered} delivered"
            )
        if stats["duplicated_payment_events"]:
            problems.append(
                f"{stats['duplicated_payment_events']} payment statuses notified under two ids"
            )
        facts["receiver_vs_delivered"] = [stats["unique_payment_events"], delivered]
    return {"ok": not problems, "problems": problems, "facts": facts}
