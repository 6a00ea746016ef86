"""Time windows of analytics questions: relative (``days``) or absolute (``start``/``end``).

Windows are whole local days in the user's IANA time zone (or ``tz``): ``days=90`` is
today and the 89 days before it; ``start``/``end`` are inclusive dates. Day boundaries
are converted to UTC per day, so a window across a DST change is still exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, ClassVar, Self
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BaseModel, Field, model_validator

from playlog.errors import ValidationFailed
from playlog.users import validate_timezone
from playlog_api.tools.registry import ToolArgs

MAX_DAYS = 36_500
DEFAULT_DAYS = 90
# Before any streaming service existed: "from the beginning" for an open start.
EPOCH = date(2000, 1, 1)


def days_description(default_days: int) -> str:
    """What the ``days`` field tells a client, naming the default of its model."""
    default = "all time" if default_days >= MAX_DAYS else f"{default_days}"
    return (
        f"Relative window: today and the days before it (1-{MAX_DAYS}; {MAX_DAYS} means "
        f"all time). Default {default} when no start/end is given."
    )


def _days(default_days: int) -> Any:
    return Field(ge=1, le=MAX_DAYS, description=days_description(default_days))


Days = Annotated[int | None, _days(DEFAULT_DAYS)]
# For windows that cover all history when none is given (``default_days = MAX_DAYS``).
AllTimeDays = Annotated[int | None, _days(MAX_DAYS)]
Start = Annotated[
    date | None,
    Field(description="Absolute window: first day, inclusive (YYYY-MM-DD, local time)."),
]
End = Annotated[
    date | None,
    Field(
        description="Absolute window: last day, inclusive (YYYY-MM-DD). Default: today "
        "(start, if that is later)."
    ),
]


def zone(name: str) -> ZoneInfo:
    """The IANA zone, or ValueError (a 422 where arguments are validated)."""
    try:
        return ZoneInfo(validate_timezone(name))
    except ValidationFailed as exc:
        raise ValueError(exc.message) from None


def _known_zone(name: str | None) -> str | None:
    if name is not None:
        zone(name)
    return name


Tz = Annotated[
    str | None,
    Field(
        max_length=64,
        description="IANA time zone for day/hour buckets, e.g. Europe/Berlin. "
        "Default: the user's own zone.",
    ),
    AfterValidator(_known_zone),
]
# The last day any window may reach.
LAST_DAY = date(2100, 12, 31)


def check_days(days: dict[str, date | None]) -> None:
    """ValueError (a 422) naming the first given day outside EPOCH…LAST_DAY."""
    for name, day in days.items():
        if day is not None and not EPOCH <= day <= LAST_DAY:
            raise ValueError(f"{name} must be between {EPOCH} and {LAST_DAY}")


class WindowArgs(ToolArgs):
    """A window: either ``days`` or ``start``/``end``, never both."""

    # The days covered when neither is given. A model that changes it redeclares ``days``
    # to match (``AllTimeDays``); __pydantic_init_subclass__ refuses one whose schema would
    # tell clients another default than resolve() applies. (A comment, not the docstring:
    # that is published as the schema's description.)
    default_days: ClassVar[int] = DEFAULT_DAYS

    days: Days = None
    start: Start = None
    end: End = None
    tz: Tz = None

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        described = cls.model_fields["days"].description
        if described != days_description(cls.default_days):
            raise TypeError(
                f"{cls.__name__}.days must describe its default of {cls.default_days} days"
            )

    @model_validator(mode="after")
    def _one_kind_of_window(self) -> Self:
        if self.days is not None and (self.start is not None or self.end is not None):
            raise ValueError("give either days or start/end, not both")
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError(f"start ({self.start}) is after end ({self.end})")
        check_days({"start": self.start, "end": self.end})
        return self


class WindowView(BaseModel):
    """The window a result covers, as local dates (inclusive)."""

    start: date
    end: date
    days: int
    tz: str


@dataclass(frozen=True)
class Window:
    """A resolved window: UTC instants [start, end) and the local days they span."""

    start: datetime
    end: datetime
    first_day: date
    last_day: date
    tz: ZoneInfo

    @property
    def view(self) -> WindowView:
        days = (self.last_day - self.first_day).days + 1
        return WindowView(start=self.first_day, end=self.last_day, days=days, tz=self.tz.key)

    @property
    def params(self) -> dict[str, object]:
        """Bind parameters of the window for the analytics SQL."""
        return {"start": self.start, "end": self.end, "tz": self.tz.key}


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The instant the local day starts, in UTC."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def days_window(first_day: date, last_day: date, tz: ZoneInfo) -> Window:
    return Window(
        start=local_midnight(first_day, tz),
        end=local_midnight(last_day + timedelta(days=1), tz),
        first_day=first_day,
        last_day=last_day,
        tz=tz,
    )


def resolve(args: WindowArgs, user_tz: str, *, now: datetime) -> Window:
    """The window ``args`` describe, in ``args.tz`` or else the user's zone."""
    tz = zone(args.tz or user_tz)
    today = now.astimezone(tz).date()
    if args.start is None and args.end is None:
        days = args.days or args.default_days
        return days_window(max(EPOCH, today - timedelta(days=days - 1)), today, tz)
    first_day = args.start or EPOCH
    last_day = args.end or max(today, first_day)
    return days_window(first_day, last_day, tz)
