"""What the Slack stand-in answers a refused Web API call with, as the SDK raises it."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError


async def error_of(call: Awaitable[Any]) -> str:
    """The `error` code of the `SlackApiError` that `call` raises (fails if it succeeds)."""
    with pytest.raises(SlackApiError) as caught:
        await call
    return str(caught.value.response["error"])
