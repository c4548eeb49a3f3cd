"""`python -m demo_shop init|run|merchant-id|routes …`: Flask's CLI for the shop's app."""

import sys

from flask.cli import FlaskGroup

from demo_shop import create_app


def create_shop():
    # Serving catches up with what PayBridge notified while the shop was stopped; the other
    # commands (init, catch-up, …) do not pull events on the side.
    return create_app({"CATCH_UP_ON_START": True} if sys.argv[1:2] == ["run"] else None)


cli = FlaskGroup(create_app=create_shop, help="PayBridge Demo Shop, a client app of PayBridge.")

if __name__ == "__main__":
    cli(prog_name="python -m demo_shop")
