"""Contract: the Claude stand-in's model catalogue, read through the real `anthropic` SDK.

`GET /v1/models/{id}` is how the bot checks its key and models at start-up, so the stand-in
answers it as the API does: authenticated (401 for a wrong key), 404 for an id it does not
have, a `ModelInfo` the SDK parses, and a cursor-paged list."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anthropic
import pytest

from bot.sandbox.claude.server import ClaudeSandbox


@pytest.fixture
async def claude() -> AsyncIterator[ClaudeSandbox]:
    async with ClaudeSandbox() as sandbox:
        yield sandbox


def client(sandbox: ClaudeSandbox, key: str | None = None) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        api_key=key or sandbox.api_key, base_url=sandbox.base_url, max_retries=0
    )


async def test_a_model_is_looked_up_by_id(claude: ClaudeSandbox) -> None:
    async with client(claude) as sdk:
        info = await sdk.models.retrieve("claude-opus-5-5")
    assert (info.id, info.type, info.lifecycle) == ("claude-opus-5-5", "model", "active")
    assert info.display_name == "Claude Opus 5.5"
    assert claude.model_lookups == ["claude-opus-5-5"]
    assert claude.requests == []  # a lookup costs nothing and is not a messages call


async def test_an_unknown_model_is_a_404(claude: ClaudeSandbox) -> None:
    async with client(claude) as sdk:
        with pytest.raises(anthropic.NotFoundError) as error:
            await sdk.models.retrieve("claude-opus-9-9")
    assert error.value.request_id is not None


async def test_a_wrong_key_is_a_401_for_lookups_and_lists(claude: ClaudeSandbox) -> None:
    async with client(claude, "sk-ant-wrong") as sdk:
        with pytest.raises(anthropic.AuthenticationError):
            await sdk.models.retrieve("claude-opus-5-5")
        with pytest.raises(anthropic.AuthenticationError):
            await sdk.models.list()


async def test_the_list_pages_newest_first_with_cursors(claude: ClaudeSandbox) -> None:
    async with client(claude) as sdk:
        first = await sdk.models.list(limit=3)
        everything = [m.id async for m in sdk.models.list(limit=2)]
        after = await sdk.models.list(after_id=first.data[-1].id, limit=3)
    assert len(first.data) == 3 and first.has_more is True
    assert first.first_id == first.data[0].id and first.last_id == first.data[-1].id
    assert everything[:3] == [m.id for m in first.data]
    assert everything[3:6] == [m.id for m in after.data]
    assert len(everything) == len(set(everything)) == 7
    assert [m.created_at for m in first.data] == sorted(
        (m.created_at for m in first.data), reverse=True
    )


async def test_a_limit_out_of_range_is_a_400(claude: ClaudeSandbox) -> None:
    async with client(claude) as sdk:
        with pytest.raises(anthropic.BadRequestError):
            await sdk.models.list(limit=1001)
