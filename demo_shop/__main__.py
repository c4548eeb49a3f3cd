"""`python -m demo_shop init|run|merchant-id|routes …`: Flask's CLI for the shop's app."""

from flask.cli import FlaskGroup

from demo_shop import create_app

cli = FlaskGroup(create_app=create_app, help="PayBridge Demo Shop, a client app of PayBridge.")

if __name__ == "__main__":
    cli(prog_name="python -m demo_shop")
