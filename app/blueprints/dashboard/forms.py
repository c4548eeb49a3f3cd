"""Forms of the dashboard: they parse and check what a request sends, so the views do not.

Every POST form carries a CSRF token (Flask-WTF); the filter forms are GET forms (they only
read), so they have none.
"""

from __future__ import annotations

import secrets
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from flask import current_app
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    DateTimeLocalField,
    EmailField,
    HiddenField,
    IntegerField,
    PasswordField,
    RadioField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    EqualTo,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)
from wtforms.widgets import CheckboxInput, ListWidget

from app.common.money import (
    format_minor,
    format_money,
    hundredths_problem,
    parse_amount,
    parse_major,
)
from app.common.payment_methods import METHOD_TYPES
from app.common.timezones import checked_zone_name, minute_range
from app.disputes.service import MAX_EVIDENCE_TEXT
from app.errors import PayBridgeError
from app.models import DisputeState, PaymentStatus, PaymentType, RefundState, RefundStatus
from app.models.endpoint import ALL_EVENT_TYPES
from app.notifications.endpoints import DESCRIPTION_MAX, URL_MAX, validate_url
from app.notifications.event_types import EVENT_TYPES
from app.notifications.test_events import DEFAULT_TYPE as DEFAULT_TEST_TYPE
from app.payments.failure_reasons import FAILURE_REASONS
from app.psp import configured_modes
from app.reporting.deliveries import STATUSES as DELIVERY_STATUSES
from app.reporting.deliveries import DeliveryFilter
from app.reporting.refunds import RefundFilter
from app.reporting.transactions import ANY_DISPUTE, ANY_REFUND, TransactionFilter


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])
    next = HiddenField()
    submit = SubmitField("Log in")


class PasswordChangeForm(FlaskForm):
    current = PasswordField("Current password", validators=[DataRequired(), Length(max=200)])
    new = PasswordField(
        "New password",
        validators=[
            DataRequired(),
            Length(min=10, max=200, message="Passwords have at least 10 characters."),
        ],
    )
    repeat = PasswordField(
        "Repeat the new password",
        validators=[DataRequired(), EqualTo("new", message="The new passwords differ.")],
    )
    submit = SubmitField("Change password")


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

    def __init__(self, *args, currency: str, remaining: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.currency, self.remaining = currency, remaining
        self.amount_minor: int | None = None  # the amount in minor units, once it validates

    def start(self) -> None:
        """The first step: the whole remaining amount, and the token of this one refund."""
        self.amount.data = format_minor(self.remaining, self.currency)
        self.token.data = secrets.token_urlsafe(24)

    def validate_amount(self, field) -> None:
        if field.errors:  # too long already; say only that
            return
        try:
            amount = parse_amount(field.data, self.currency)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        problem = hundredths_problem(amount, self.currency)
        if problem:
            raise ValidationError(problem)
        if amount > self.remaining:
            remains = format_money(self.remaining, self.currency)
            raise ValidationError(f"At most {remains} remains to refund.")
        self.amount_minor = amount


class CancelSubscriptionForm(FlaskForm):
    when = RadioField(
        "When should it end?",
        choices=[
            SelectChoice("period_end", "At the end of the paid period: no more charges"),
            SelectChoice("now", "Now"),
        ],
        default="period_end",
        validators=[InputRequired()],
    )


class DisputeEvidenceForm(FlaskForm):
    """Text evidence for a dispute: step one writes it, step two (`confirmed`) submits it."""

    text = TextAreaField(
        "Your evidence (sent to the cardholder's bank as written)",
        validators=[DataRequired(), Length(max=MAX_EVIDENCE_TEXT)],
    )
    confirmed = HiddenField()


# Stripe's two modes as the dashboard's forms send them.
MODES = {"test": False, "live": True}


def mode_name(livemode: bool) -> str:
    return "live" if livemode else "test"


class ModeForm(FlaskForm):
    """The test-data switch: which mode the dashboard shows, and the page to go back to."""

    mode = SelectField(
        "Mode",
        choices=[SelectChoice("test", "Test data"), SelectChoice("live", "Live data")],
        validators=[InputRequired()],
    )
    next = HiddenField()

    @property
    def livemode(self) -> bool:
        return MODES[self.mode.data]


class ApiKeyForm(FlaskForm):
    name = StringField("Key name", validators=[Optional(), Length(max=100)])
    mode = RadioField(
        "Mode",
        choices=[
            SelectChoice("test", "Test key (pbk_test_…): test payments, no real money"),
            SelectChoice("live", "Live key (pbk_live_…): real payments"),
        ],
        validators=[InputRequired(message="Choose test or live.")],
    )
    submit = SubmitField("Create key")

    def validate_mode(self, field) -> None:
        if MODES.get(field.data) not in configured_modes():
            raise ValidationError(
                f"This PayBridge does not run {field.data} mode (STRIPE_{field.data.upper()}"
                "_SECRET_KEY is not set): a key of that mode could make no payment."
            )

    @property
    def livemode(self) -> bool:
        return MODES[self.mode.data]


class TestEventForm(FlaskForm):
    """The event type of a test event to send to an endpoint now."""

    type = SelectField(
        "Type of test event",
        choices=[SelectChoice(name, name) for name in EVENT_TYPES],
        default=DEFAULT_TEST_TYPE,
        validate_choice=True,
    )
    submit = SubmitField("Send test event")


class EndpointForm(FlaskForm):
    """A notification endpoint's URL, description and the event types it receives."""

    url = StringField(
        "URL", validators=[DataRequired(), Length(max=URL_MAX)], render_kw={"inputmode": "url"}
    )
    description = StringField("Description", validators=[Optional(), Length(max=DESCRIPTION_MAX)])
    all_events = BooleanField("Every event type (also those added later)")
    events = SelectMultipleField(
        "Event types",
        choices=[(t.name, f"{t.name} — {t.description}") for t in EVENT_TYPES.values()],
        option_widget=CheckboxInput(),
        widget=ListWidget(prefix_label=False),
        validate_choice=True,
    )
    submit = SubmitField("Save endpoint")

    def validate_url(self, field) -> None:
        if field.errors:
            return
        try:
            field.data = validate_url(
                field.data, allowed_networks=current_app.config["NOTIFY_ALLOWED_NETWORKS"]
            )
        except PayBridgeError as exc:
            raise ValidationError(exc.message) from None

    def validate_events(self, field) -> None:
        if not self.all_events.data and not field.data:
            raise ValidationError("Choose at least one event type, or every event type.")

    @property
    def event_types(self) -> list[str]:
        return [ALL_EVENT_TYPES] if self.all_events.data else list(self.events.data)

    @classmethod
    def of(cls, endpoint) -> EndpointForm:
        everything = ALL_EVENT_TYPES in endpoint.event_types
        return cls(
            formdata=None,
            url=endpoint.url,
            description=endpoint.description or "",
            all_events=everything,
            events=[] if everything else list(endpoint.event_types),
        )


class TimeZoneForm(FlaskForm):
    time_zone = StringField(
        "Time zone",
        validators=[DataRequired(message="Choose a time zone."), Length(max=64)],
        render_kw={"list": "time-zones", "autocomplete": "off", "spellcheck": "false"},
    )
    submit = SubmitField("Save time zone")

    def validate_time_zone(self, field) -> None:
        if field.errors:
            return
        try:
            field.data = checked_zone_name(field.data)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


def _amount(form, field) -> None:
    if field.data in (None, ""):
        field.data = None
        return
    try:
        field.data = parse_major(str(field.data))
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


# The days a filter may name: any the database can compare, with a day to spare at the end
# (the "to" day runs until the next midnight).
EARLIEST_DAY, LATEST_DAY = date(1970, 1, 1), date(9999, 12, 30)
# Row ids are signed 64-bit.
MAX_ROW_ID = 2**63 - 1


def _day_in_range(form, field) -> None:
    if field.data and not EARLIEST_DAY <= field.data <= LATEST_DAY:
        raise ValidationError("Choose a day from 1970-01-01 to 9999-12-30.")


class ListFilterForm(FlaskForm):
    """A list's filters read from the query string: the search box (`q`, always in view), the
    fold-away panel of every other field, and the active ones as removable chips. A new filter
    is one more field: the panel and the chips show it."""

    class Meta:
        csrf = False

    # Not in the panel: the search box has its own place, the operator's merchant filter is
    # drawn with the merchants' names.
    OUTSIDE_PANEL = ("q", "merchant_id")

    def panel_fields(self) -> list:
        return [f for f in self if f.name not in self.OUTSIDE_PANEL]

    def active(self) -> list[tuple[str, str, str]]:
        """The filters in use: (field name, label, value as shown), in the form's order."""
        shown = []
        for f in self:
            if f.data in (None, "") or f.errors:
                continue
            value = f.data
            if isinstance(f, SelectField):
                labels = {str(choice[0]): choice[1] for choice in f.iter_choices()}
                value = labels.get(str(f.data), f.data)
            elif f.name == "merchant_id":
                value = f"#{f.data}"
            shown.append((f.name, f.label.text, str(value)))
        return shown

    def panel_needs_attention(self) -> bool:
        """Open the panel only where a field is wrong: the filters in use show as chips (and a
        count on the panel), so the rows stay at the top of the screen."""
        return any(f.errors for f in self.panel_fields())


class RangesInOrder:
    """The created-from/to days and the amount-from/to of a list's filters, each pair in
    order: an empty range is a mistake, said so rather than answered with nothing."""

    date_from: DateField
    amount_min: StringField

    def validate_date_to(self, field) -> None:
        _not_before(self.date_from.data, field.data, "The end date is before the start date.")

    def validate_amount_max(self, field) -> None:
        lower = _decimal_or_none(self.amount_min.data)
        _not_before(lower, _decimal_or_none(field.data), "The upper amount is below the lower one.")


def _not_before(lower, upper, message: str) -> None:
    if lower is not None and upper is not None and upper < lower:
        raise ValidationError(message)


class TransactionFilterForm(RangesInOrder, ListFilterForm):
    """Filters of the transactions table, read from the query string."""

    q = StringField(
        "Search",
        validators=[Optional(), Length(max=200)],
        description="Payment id (pay_…), your reference, PSP session id (cs_…) or the "
        "customer's email: the whole or its beginning (emails in any case); a card's or "
        "IBAN's last 4, a card brand (visa) or a method (sepa_debit).",
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
    refund_state = SelectField(
        "Refunds",
        choices=[
            SelectChoice("", "Refunded or not"),
            SelectChoice(ANY_REFUND, "Any refund"),
            SelectChoice(RefundState.PARTIAL.value, "Partially refunded"),
            SelectChoice(RefundState.FULL.value, "Refunded"),
        ],
        validators=[Optional()],
    )
    dispute_state = SelectField(
        "Disputes",
        choices=[SelectChoice("", "Disputed or not"), SelectChoice(ANY_DISPUTE, "Any dispute")]
        + [SelectChoice(state.value, state.label) for state in DisputeState],
        validators=[Optional()],
    )
    method_type = SelectField(
        "Payment method",
        choices=[SelectChoice("", "Any method")]
        + [SelectChoice(code, words) for code, words in METHOD_TYPES.items()],
        validators=[Optional()],
    )
    failure_reason = SelectField(
        "Failure reason",
        choices=[SelectChoice("", "Any reason")]
        + [SelectChoice(code, words) for code, words in FAILURE_REASONS.items()],
        validators=[Optional()],
    )
    date_from = DateField("Created from", validators=[Optional(), _day_in_range])
    date_to = DateField(
        "Created to",
        validators=[Optional(), _day_in_range],
        description="Both days included, in the time zone times are shown in.",
    )
    amount_min = StringField(
        "Amount from",
        validators=[Optional(), _amount],
        render_kw={"inputmode": "decimal"},
        description="In the payment's currency, e.g. 12.50",
    )
    amount_max = StringField(
        "Amount to", validators=[Optional(), _amount], render_kw={"inputmode": "decimal"}
    )
    merchant_id = IntegerField(
        "Merchant", validators=[Optional(), NumberRange(min=1, max=MAX_ROW_ID)]
    )

    def validate_currency(self, field) -> None:
        if field.data:
            if not field.data.strip().isalpha():
                raise ValidationError("Use a three-letter ISO code like EUR.")
            field.data = field.data.strip().upper()

    def to_filter(
        self, merchant_id: int | None, livemode: bool, zone: ZoneInfo | None = None
    ) -> TransactionFilter:
        """The validated filters, inside the tenancy scope `merchant_id` (None: every merchant)
        and one mode; the days are `zone`'s (the viewer's)."""
        return TransactionFilter(
            merchant_id=merchant_id,
            livemode=livemode,
            zone=zone,
            status=self.status.data or None,
            date_from=self.date_from.data,
            date_to=self.date_to.data,
            amount_min=_decimal_or_none(self.amount_min.data),
            amount_max=_decimal_or_none(self.amount_max.data),
            currency=self.currency.data or None,
            payment_type=self.payment_type.data or None,
            refund_state=self.refund_state.data or None,
            dispute_state=self.dispute_state.data or None,
            method_type=self.method_type.data or None,
            failure_reason=self.failure_reason.data or None,
            q=self.q.data or None,
        )


class CustomerSearchForm(ListFilterForm):
    """The customers list's search: the beginning of an email, in any case."""

    q = StringField(
        "Search customers",
        validators=[Optional(), Length(max=254)],
        description="The customer's email, or its beginning (any case).",
    )


class RefundFilterForm(RangesInOrder, ListFilterForm):
    """Filters of the refunds list, read from the query string."""

    status = SelectField(
        "Status",
        choices=[SelectChoice("", "Any status")]
        + [SelectChoice(s.value, s.value.title()) for s in RefundStatus],
        validators=[Optional()],
    )
    date_from = DateField(
        "Refunded from", validators=[Optional(), _day_in_range], description="A local day."
    )
    date_to = DateField(
        "Refunded to (inclusive)",
        validators=[Optional(), _day_in_range],
        description="A local day.",
    )
    amount_min = StringField(
        "Amount from",
        validators=[Optional(), _amount],
        render_kw={"inputmode": "decimal"},
        description="In the refund's currency, e.g. 12.50",
    )
    amount_max = StringField(
        "Amount to", validators=[Optional(), _amount], render_kw={"inputmode": "decimal"}
    )
    merchant_id = IntegerField(
        "Merchant", validators=[Optional(), NumberRange(min=1, max=MAX_ROW_ID)]
    )

    def to_filter(
        self, merchant_id: int | None, livemode: bool, zone: ZoneInfo | None = None
    ) -> RefundFilter:
        """The validated filters, inside the tenancy scope and one mode; the days are `zone`'s."""
        return RefundFilter(
            merchant_id=merchant_id,
            livemode=livemode,
            zone=zone,
            status=self.status.data or None,
            date_from=self.date_from.data,
            date_to=self.date_to.data,
            amount_min=_decimal_or_none(self.amount_min.data),
            amount_max=_decimal_or_none(self.amount_max.data),
        )


def _decimal_or_none(value) -> Decimal | None:
    return value if isinstance(value, Decimal) else None


class EventFilterForm(FlaskForm):
    """Filters of the PSP events list; the choices are the outcomes and the types seen so far."""

    class Meta:
        csrf = False

    outcome = SelectField("Outcome", validators=[Optional()])
    event_type = SelectField("Event type", validators=[Optional()])

    def __init__(self, *args, outcomes: list[str], event_types: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.outcome.choices = [SelectChoice("", "Any outcome")] + [
            SelectChoice(o, o.replace("_", " ")) for o in outcomes
        ]
        self.event_type.choices = [SelectChoice("", "Any type")] + [
            SelectChoice(t) for t in event_types
        ]

    def filters(self) -> dict:
        """The chosen filters after validate(); none at all when any is not valid."""
        valid = not self.errors
        return {
            "outcome": self.outcome.data if valid and self.outcome.data else None,
            "event_type": self.event_type.data if valid and self.event_type.data else None,
        }


# A moment in a form: minutes on the wall clock of the zone the dashboard shows times in (the
# merchant's, UTC until it sets one), turned into UTC by timezones.minute_range.
MINUTE_FORMAT = "%Y-%m-%dT%H:%M"


def _minute_in_range(form, field) -> None:
    # The days the lists take, so that any zone's offset keeps the UTC instant a datetime.
    if field.data and not EARLIEST_DAY <= field.data.date() <= LATEST_DAY:
        raise ValidationError("Choose a time from 1970-01-01 to 9999-12-30.")


def _moment(label: str, *validators) -> DateTimeLocalField:
    return DateTimeLocalField(
        label, format=MINUTE_FORMAT, validators=[Optional(), _minute_in_range, *validators]
    )


def _moments_in_order(form, field) -> None:
    if field.data and form.created_gte.data and field.data < form.created_gte.data:
        raise ValidationError("The end is before the start.")


class LocalWindowForm(FlaskForm):
    """A window of events' creation times, `created_gte` to `created_lte` (to the end of its
    minute), typed in `zone`: the fields say which, the window reads them in it."""

    created_gte = _moment("Event created from")
    created_lte = _moment("Event created to (inclusive)", _moments_in_order)

    def __init__(self, *args, zone: ZoneInfo, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.zone = zone
        for moment in (self.created_gte, self.created_lte):
            moment.label.text = f"{moment.label.text} ({zone.key})"
            moment.description = "To the minute, on that zone's clocks."

    def utc_window(self) -> tuple[datetime | None, datetime | None]:
        """The window as naive UTC bounds, both included."""
        return minute_range(self.created_gte.data, self.created_lte.data, self.zone)


class DeliveryFilterForm(LocalWindowForm):
    """Filters of the delivery log, read from the query string; the endpoints are the view's."""

    class Meta:
        csrf = False

    # Not `endpoint`: url_for() takes that name for itself.
    endpoint_id = SelectField("Endpoint", validators=[Optional()])
    event_type = SelectField(
        "Event type",
        choices=[SelectChoice("", "Any type")] + [SelectChoice(t) for t in EVENT_TYPES],
        validators=[Optional()],
    )
    status = SelectField(
        "Status",
        choices=[SelectChoice("", "Any status")]
        + [SelectChoice(s, s.title()) for s in DELIVERY_STATUSES],
        validators=[Optional()],
    )
    event = StringField(
        "Event id", validators=[Optional(), Length(max=40)], render_kw={"placeholder": "msg_…"}
    )
    merchant_id = IntegerField(
        "Merchant", validators=[Optional(), NumberRange(min=1, max=MAX_ROW_ID)]
    )

    def __init__(self, *args, endpoints: list, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._endpoints = {e.public_id: e for e in endpoints}
        self.endpoint_id.choices = [SelectChoice("", "Any endpoint")] + [
            SelectChoice(e.public_id, e.url + (" (deleted)" if e.deleted_at else ""))
            for e in endpoints
        ]

    def to_filter(self, merchant_id: int | None, livemode: bool) -> DeliveryFilter:
        """The validated filters, inside the tenancy scope and one mode."""
        endpoint = self._endpoints.get(self.endpoint_id.data or "")
        created_gte, created_lte = self.utc_window()
        return DeliveryFilter(
            merchant_id=merchant_id,
            livemode=livemode,
            endpoint_id=endpoint.id if endpoint else None,
            event_type=self.event_type.data or None,
            status=self.status.data or None,
            event_public_id=(self.event.data or "").strip() or None,
            created_gte=created_gte,
            created_lte=created_lte,
        )


class RedeliverWindowForm(LocalWindowForm):
    """Bulk redelivery: the time window, then (confirmed) `upto`, the newest delivery the
    confirmation counted, so exactly what it counted is sent."""

    created_gte = _moment("Events created from")
    created_lte = _moment("Events created to (inclusive)", _moments_in_order)
    upto = HiddenField(validators=[Optional()])

    def window(self, endpoint_id: int):
        created_gte, created_lte = self.utc_window()
        return dict(endpoint_id=endpoint_id, created_gte=created_gte, created_lte=created_lte)

    def upto_id(self) -> int | None:
        value = (self.upto.data or "").strip()
        return int(value) if value.isdigit() and int(value) <= MAX_ROW_ID else None


def one_of(value: str | None, allowed) -> str | None:
    """A list filter read from the query string: a value it does not know means "any"."""
    return value if value and value in tuple(allowed) else None
