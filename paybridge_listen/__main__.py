"""`python -m paybridge_listen --api-key pbk_test_… --forward-to http://localhost:8000/hook`"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from paybridge_listen import default_secret_path, listen, parse_since, signing_secret


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m paybridge_listen",
        description="Forward a PayBridge merchant's events to a local URL, signed as PayBridge "
        "signs its notifications (Standard Webhooks).",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("PAYBRIDGE_API_KEY"),
        help="The merchant's API key (pbk_test_… or pbk_live_…); default $PAYBRIDGE_API_KEY.",
    )
    parser.add_argument("--forward-to", help="The local URL to POST each event to.")
    parser.add_argument(
        "--api-base",
        default=os.environ.get("PAYBRIDGE_URL", "http://127.0.0.1:5000"),
        help="Where PayBridge is; default $PAYBRIDGE_URL or http://127.0.0.1:5000.",
    )
    parser.add_argument(
        "--types",
        help="Only these event types: payment.succeeded, a family (payment.*), or several "
        "comma-separated.",
    )
    parser.add_argument(
        "--since",
        help="Also forward the events since then: an ISO 8601 time or a span back (15m, 2h, "
        "3d). Default: from now on.",
    )
    parser.add_argument(
        "--secret",
        help="Sign with this whsec_… secret instead of this machine's own.",
    )
    parser.add_argument(
        "--secret-file",
        type=Path,
        default=default_secret_path(),
        help="Where this machine's secret is kept (made on the first run); default %(default)s.",
    )
    parser.add_argument(
        "--print-secret", action="store_true", help="Print the signing secret and exit."
    )
    parser.add_argument(
        "--retries", type=int, default=3, help="Tries after a failed forward (default 3)."
    )
    parser.add_argument(
        "--interval", type=float, default=2.0, help="Seconds between polls (default 2)."
    )
    return parser


def _say(line: str) -> None:
    print(line, flush=True)  # at once, also when piped into a log


def main(argv: list[str] | None = None, *, say=_say) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        secret = signing_secret(args.secret, args.secret_file)
    except (ValueError, OSError) as error:
        parser.error(str(error))
    if args.print_secret:
        say(secret)
        return 0
    if not args.api_key or not args.forward_to:
        parser.error("--api-key (or $PAYBRIDGE_API_KEY) and --forward-to are required")
    if args.retries < 0 or args.interval <= 0:
        parser.error("--retries must be 0 or more and --interval more than 0")
    try:
        since = parse_since(args.since) if args.since else None
    except ValueError as error:
        parser.error(str(error))
    return listen(
        api_key=args.api_key,
        forward_to=args.forward_to,
        api_base=args.api_base,
        types=args.types,
        since=since,
        secret=secret,
        secret_origin="--secret" if args.secret else str(args.secret_file),
        retries=args.retries,
        interval=args.interval,
        say=say,
    )


if __name__ == "__main__":
    sys.exit(main())
