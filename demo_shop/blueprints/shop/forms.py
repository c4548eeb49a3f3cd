"""The shop's forms: every one carries a CSRF token (Flask-WTF)."""

from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, IntegerField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, NumberRange, Regexp

from demo_shop.cart import MAX_QUANTITY


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class SignupForm(FlaskForm):
    name = StringField("Your name", filters=[_strip], validators=[DataRequired(), Length(max=120)])
    email = EmailField(
        "Email",
        filters=[_strip],
        validators=[
            DataRequired(),
            Length(max=254),
            # A shape check only (email_validator is not installed): something@domain.tld.
            Regexp(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", message="Enter a valid email address."),
        ],
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired(), Length(min=8, max=200, message="Use at least 8 characters.")],
    )
    confirm = PasswordField(
        "Repeat the password",
        validators=[DataRequired(), EqualTo("password", message="The passwords differ.")],
    )


class LoginForm(FlaskForm):
    email = EmailField("Email", filters=[_strip], validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])
    next = HiddenField()


class AddToCartForm(FlaskForm):
    product_id = HiddenField(validators=[DataRequired()])
    quantity = IntegerField(
        "Quantity", default=1, validators=[DataRequired(), NumberRange(min=1, max=MAX_QUANTITY)]
    )


class UpdateCartForm(FlaskForm):
    product_id = HiddenField(validators=[DataRequired()])
    quantity = IntegerField("Quantity", validators=[NumberRange(min=0, max=MAX_QUANTITY)])


class RemoveFromCartForm(FlaskForm):
    product_id = HiddenField(validators=[DataRequired()])


class CheckoutForm(FlaskForm):
    token = HiddenField(validators=[DataRequired()])


class ActionForm(FlaskForm):
    """A button that only needs CSRF protection (log out, pay again, cancel, reorder)."""
