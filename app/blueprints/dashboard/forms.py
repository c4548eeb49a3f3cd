"""Forms of the dashboard. Every POST form carries a CSRF token (Flask-WTF); the filter form is
a GET form (it only reads), so it has none."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    EmailField,
    HiddenField,
    IntegerField,
    PasswordField,
    SelectChoice,
    SelectField,
    StringField,
    SubmitField,
)
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from app.common.money import parse_major
from app.models import PaymentStatus, PaymentType


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])
    next = HiddenField()
    submit = SubmitField("Log in")


class ConfirmForm(FlaskForm):
    """A bare POST with its CSRF token: the button of a confirmation step or a one-click action."""

    submit = SubmitField("Confirm")


class ExpireForm(FlaskForm):
    reason = StringField(
        "Reason (kept in the status history)",
        validators=[DataRequired(), Length(max=200)],
        default="Expired from the dashboard",
    )
    submit = SubmitField("Expire payment")


class ResolveConflictForm(FlaskForm):
    note = StringField(
        "How was it settled? (kept with the conflict)",
        validators=[DataRequired(), Length(max=400)],
    )
    submit = SubmitField("Mark resolved")


class RefundForm(FlaskForm):
    """Refund a SUCCESS payment: step one asks, step two (`confirmed`) does it.

    `token` is made when the form is first shown and becomes the refund's Idempotency-Key, so
    submitting the confirmation twice (double click, reload) makes one refund.
    """

    amount = StringField(
        "Amount to refund",
        validators=[DataRequired(), Length(max=30)],
        render_kw={"inputmode": "decimal", "autocomplete": "off"},
    )
    reason = SelectField(
        "Reason",
        choices=[
            SelectChoice("requested_by_customer", "Requested by the customer"),
            SelectChoice("duplicate", "Duplicate payment"),
            SelectChoice("fraudulent", "Fraudulent"),
        ],
        default="requested_by_customer",
    )
    token = HiddenField(validators=[DataRequired(), Length(min=16, max=64)])
    confirmed = HiddenField()
    submit = SubmitField("Review refund")


class ApiKeyForm(FlaskForm):
    name = StringField("Key name", validators=[Optional(), Length(max=100)])
    submit = SubmitField("Create key")


class NotifyUrlForm(FlaskForm):
    notify_url = StringField(
        "Notify URL", validators=[DataRequired(), Length(max=2000)], render_kw={"inputmode": "url"}
    )
    submit = SubmitField("Save notify URL")


def _amount(form, field) -> None:
    if field.data in (None, ""):
        field.data = None
        return
    try:
        field.data = parse_major(str(field.data))
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


class TransactionFilterForm(FlaskForm):
    """Filters of the transactions table, read from the query string."""

    class Meta:
        csrf = False

    q = StringField(
        "Search",
        validators=[Optional(), Length(max=200)],
        description="Payment id (pay_…), your reference, PSP session id (cs_…) or customer "
        "email — exact or the beginning of it.",
    )
    status = SelectField(
        "Status",
        choices=[SelectChoice("", "Any status")]
        + [SelectChoice(s.value, s.value.title()) for s in PaymentStatus],
        validators=[Optional()],
    )
    currency = StringField(
        "Currency", validators=[Optional(), Length(min=3, max=3)], render_kw={"placeholder": "EUR"}
    )
    payment_type = SelectField(
        "Payment type",
        choices=[
            SelectChoice("", "Any type"),
            SelectChoice(PaymentType.SALE.value, "Sale (one-time)"),
            SelectChoice(PaymentType.RECC.value, "Recurring"),
        ],
        validators=[Optional()],
    )
    date_from = DateField("Created from", validators=[Optional()], description="A UTC day.")
    date_to = DateField("Created to (inclusive)", validators=[Optional()], description="A UTC day.")
    amount_min = StringField(
        "Amount from", validators=[Optional(), _amount], render_kw={"inputmode": "decimal"}
    )
    amount_max = StringField(
        "Amount to", validators=[Optional(), _amount], render_kw={"inputmode": "decimal"}
    )
    merchant_id = IntegerField("Merchant", validators=[Optional()])

    def validate_currency(self, field) -> None:
        if field.data:
            if not field.data.strip().isalpha():
                raise ValidationError("Use a three-letter ISO code like EUR.")
            field.data = field.data.strip().upper()

    def validate_date_to(self, field) -> None:
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError("The end date is before the start date.")


class EventFilterForm(FlaskForm):
    class Meta:
        csrf = False

    outcome = SelectField("Outcome", validators=[Optional()])
    event_type = SelectField("Event type", validators=[Optional()])
