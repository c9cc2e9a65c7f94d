"""lambdalet's usage and cost report: ``GET /_lambdalet/usage?month=YYYY-MM`` (default: this
month, UTC), as ``metering/usage.py`` computes it; what ``lambdalet usage`` prints."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lambdalet.api.requests import node_of
from lambdalet.errors import InvalidParameterValueException
from lambdalet.metering import usage
from lambdalet.models import now_ms


async def usage_report(request: Request) -> Response:
    """The month's usage per function, and its cost after the free tier."""
    node = node_of(request)
    month = request.query_params.get("month") or usage.current_month(now_ms())
    try:
        since, until = usage.month_bounds(month)
    except ValueError as error:
        raise InvalidParameterValueException(str(error)) from None
    await node.recorder.flush()  # what ran up to now, not up to the last batch
    settings = node.settings
    pricing = usage.Pricing(
        per_gb_second=settings.price_per_gb_second,
        per_million_requests=settings.price_per_million_requests,
        free_gb_seconds=settings.free_tier_gb_seconds,
        free_requests=settings.free_tier_requests,
    )
    return JSONResponse(usage.report(month, await node.store.usage(since, until), pricing))
