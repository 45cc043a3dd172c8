"""Model Markdown becomes Slack mrkdwn: formatting mapped, code intact, links honest, text inert."""

from __future__ import annotations

from blocks import markdown_to_mrkdwn
from blocks.escape import WORD_JOINER

WJ = WORD_JOINER


def test_headings_become_bold_lines_and_stay_escaped() -> None:
    assert markdown_to_mrkdwn("# Deploy @here <now>") == f"*Deploy @{WJ}here &lt;now&gt;*"
    assert markdown_to_mrkdwn("Title\n=====\n\ntext") == "*Title*\n\ntext"


def test_bold_inside_a_heading_does_not_nest_asterisks() -> None:
    assert markdown_to_mrkdwn("## The **real** plan") == "*The real plan*"


def test_emphasis_strong_and_strikethrough_map_to_slack_markers() -> None:
    md = "**bold** __also__ *em* _em2_ ~~gone~~"
    assert markdown_to_mrkdwn(md) == "*bold* *also* _em_ _em2_ ~gone~"


def test_nested_emphasis_keeps_one_marker_per_style() -> None:
    assert markdown_to_mrkdwn("***both*** and **a *b* c**") == "_*both*_ and *a _b_ c*"
    assert markdown_to_mrkdwn("**outer **inner** outer**") == "*outer inner outer*"


def test_inline_code_is_escaped_but_not_formatted() -> None:
    md = "run `a*b*c <!channel> & x_y_z`"
    assert markdown_to_mrkdwn(md) == "run `a*b*c &lt;!channel&gt; &amp; x_y_z`"


def test_fenced_code_keeps_every_character_and_drops_the_language() -> None:
    code = "def f(x):\n    return x * 2  # <!channel> & @here\n\n\n    *not bold*\n"
    md = f"Intro\n\n```python\n{code}```\n\nAfter"
    expected_code = code.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert markdown_to_mrkdwn(md) == f"Intro\n\n```\n{expected_code}```\n\nAfter"


def test_indented_code_becomes_a_fence() -> None:
    assert (
        markdown_to_mrkdwn("text\n\n    x = 1 < 2\n    y\n") == "text\n\n```\nx = 1 &lt; 2\ny\n```"
    )


def test_lists_use_bullets_numbers_and_indent_nesting() -> None:
    md = "- one\n- two\n  1. a\n  2. b\n     - deep\n\n7. seven\n8. eight\n"
    assert markdown_to_mrkdwn(md) == (
        "• one\n• two\n    1. a\n    2. b\n        • deep\n\n7. seven\n8. eight"
    )


def test_code_inside_a_list_item_is_not_indented() -> None:
    md = "- step:\n\n  ```\n  make build\n  ```\n"
    assert markdown_to_mrkdwn(md) == "• step:\n\n```\nmake build\n```"


def test_blockquotes_become_quote_lines() -> None:
    assert markdown_to_mrkdwn("> one\n> two\n>\n> three") == "> one\n> two\n>\n> three"


def test_link_is_shown_with_its_real_destination() -> None:
    assert markdown_to_mrkdwn("[docs](https://ex.com/a?b=1&c=2)") == (
        "docs (https://ex.com/a?b=1&amp;c=2)"
    )


def test_link_text_that_is_another_url_cannot_hide_the_destination() -> None:
    out = markdown_to_mrkdwn("[https://bank.example](https://evil.example)")
    assert out == "https://bank.example (https://evil.example)"
    assert "<" not in out and "|" not in out


def test_link_whose_text_is_its_url_is_written_once() -> None:
    assert markdown_to_mrkdwn("[https://a.example](https://a.example)") == "https://a.example"
    assert markdown_to_mrkdwn("<https://a.example/x>") == "https://a.example/x"


def test_slack_style_forged_link_stays_text() -> None:
    out = markdown_to_mrkdwn("see <https://evil.example|innocent>")
    assert "<" not in out and ">" not in out
    assert "innocent" in out and "evil.example" in out


def test_images_become_alt_text_and_url() -> None:
    assert markdown_to_mrkdwn("![diagram](https://i.example/d.png)") == (
        "diagram (https://i.example/d.png)"
    )


def test_tables_become_aligned_monospace_blocks() -> None:
    md = "| name | cost |\n|---|---:|\n| opus & co | `$1` |\n| haiku | 2 |\n"
    assert markdown_to_mrkdwn(md) == (
        "```\nname      | cost\n----------+-----\nopus &amp; co | $1\nhaiku     | 2\n```"
    )


def test_html_is_shown_as_escaped_text() -> None:
    assert markdown_to_mrkdwn("<div onclick=x>@channel</div>") == (
        f"&lt;div onclick=x&gt;@{WJ}channel&lt;/div&gt;"
    )
    assert markdown_to_mrkdwn("a <!channel> b <@U123>") == "a &lt;!channel&gt; b &lt;@U123&gt;"


def test_markdown_entities_are_decoded_then_escaped_again() -> None:
    assert markdown_to_mrkdwn("&lt;!channel&gt; &#64;here") == f"&lt;!channel&gt; @{WJ}here"


def test_broadcast_split_by_emphasis_is_still_neutralised() -> None:
    assert markdown_to_mrkdwn("@**here** @_channel_") == f"@{WJ}*here* @{WJ}_channel_"


def test_rule_and_line_breaks() -> None:
    assert markdown_to_mrkdwn("a\nb  \nc\n\n---\n\nd") == "a\nb\nc\n\n———\n\nd"
