"""Markdown from the models, rendered as Slack mrkdwn with every character of model text escaped.

markdown-it-py parses (CommonMark plus tables and strikethrough); this module walks its syntax
tree and writes mrkdwn: headings become bold lines, `**b**` → `*b*`, `*e*` → `_e_`, `~~s~~` →
`~s~`, lists become `•` / `1.` lines indented by depth, block quotes `>` lines, tables and code
blocks ``` blocks. Code keeps its characters (only `&`, `<`, `>` are encoded, since Slack decodes
entities in code too) and loses the language tag Slack cannot show; code lines are never indented
or quoted, so a fence inside a list still copies out intact. Everything else goes through
`escape`, so HTML, `<!channel>` or `@here` in model text arrive as inert text.

Links are never turned into Slack links: `[text](url)` is written `text (url)`, both escaped, so
the reader always sees where a link goes and a text that looks like a URL cannot hide another.
When the text *is* the URL (autolinks, `[https://a](https://a)`) it is written once. Images become
their alt text and URL. Slack may still make a shown URL clickable; it can only be the one shown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

from blocks.escape import escape, escape_code, neutralise_broadcasts

_PARSER = MarkdownIt("commonmark").enable(["table", "strikethrough"])
_INDENT = "    "
_RULE = "———"


@dataclass(frozen=True, slots=True)
class _Line:
    """A rendered line; `code` lines belong to a fence and are never indented or quoted."""

    text: str
    code: bool = False


@dataclass(frozen=True, slots=True)
class _Style:
    """Emphasis already open: Slack cannot nest `*` in `*`, so inner markers are dropped."""

    bold: bool = False
    italic: bool = False
    strike: bool = False


_BLANK = _Line("")


def markdown_to_mrkdwn(md: str) -> str:
    """Render model Markdown as escaped Slack mrkdwn (see the module docstring for the rules)."""
    lines = _blocks(SyntaxTreeNode(_PARSER.parse(md)).children, loose=True)
    return "\n".join(line.text for line in lines).strip("\n")


def _blocks(nodes: Iterable[SyntaxTreeNode], *, loose: bool) -> list[_Line]:
    """Render sibling blocks, separated by a blank line unless they sit in a tight list item."""
    out: list[_Line] = []
    for node in nodes:
        rendered = _block(node)
        if not rendered:
            continue
        if out and loose:
            out.append(_BLANK)
        out.extend(rendered)
    return out


def _block(node: SyntaxTreeNode) -> list[_Line]:
    render = _BLOCK_RENDERERS.get(node.type)
    if render is not None:
        return render(node)
    return _blocks(node.children, loose=True)


def _paragraph(node: SyntaxTreeNode) -> list[_Line]:
    return _text_lines(_inline(node.children, _Style()))


def _heading(node: SyntaxTreeNode) -> list[_Line]:
    text = _inline(node.children, _Style(bold=True))
    return [_Line(f"*{line}*" if line.strip() else line) for line in text.split("\n")]


def _code(node: SyntaxTreeNode) -> list[_Line]:
    body = escape_code(node.content).removesuffix("\n")
    inner = [_Line(line, code=True) for line in body.split("\n")] if body else []
    return [_Line("```", code=True), *inner, _Line("```", code=True)]


def _html(node: SyntaxTreeNode) -> list[_Line]:
    return _text_lines(escape(node.content.removesuffix("\n")))


def _rule(node: SyntaxTreeNode) -> list[_Line]:
    return [_Line(_RULE)]


def _blockquote(node: SyntaxTreeNode) -> list[_Line]:
    quoted = _blocks(node.children, loose=True)
    return [line if line.code else _Line(f"> {line.text}".rstrip()) for line in quoted]


def _list(node: SyntaxTreeNode) -> list[_Line]:
    out: list[_Line] = []
    for position, item in enumerate(node.children):
        marker = f"{item.info or position + 1}." if node.type == "ordered_list" else "•"
        out.extend(_list_item(item, marker))
    return out


def _list_item(item: SyntaxTreeNode, marker: str) -> list[_Line]:
    tight = any(child.type == "paragraph" and child.hidden for child in item.children)
    body = _blocks(item.children, loose=not tight)
    if not body or body[0].code:
        body = [_BLANK, *body]  # the marker needs a line of its own before a fence
    head = _Line(f"{marker} {body[0].text}".rstrip())
    rest = [line if line.code or not line.text else _Line(_INDENT + line.text) for line in body[1:]]
    return [head, *rest]


def _table(node: SyntaxTreeNode) -> list[_Line]:
    """A table as aligned monospace columns in a code block: Slack has no tables."""
    rows = [[_plain(cell.children) for cell in row.children] for row in _rows(node)]
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(len(rows[0]))]
    lines = [_table_row(row, widths) for row in rows]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return [_Line(line, code=True) for line in ("```", *lines, "```")]


def _rows(node: SyntaxTreeNode) -> list[SyntaxTreeNode]:
    return [row for section in node.children for row in section.children]


def _table_row(cells: list[str], widths: list[int]) -> str:
    # Pad before escaping: `&amp;` shows as one character and the word joiner as none.
    padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=False)]
    return escape(" | ".join(padded).rstrip())


def _text_lines(text: str) -> list[_Line]:
    return [_Line(line) for line in text.split("\n")]


_BLOCK_RENDERERS: dict[str, Callable[[SyntaxTreeNode], list[_Line]]] = {
    "paragraph": _paragraph,
    "heading": _heading,
    "fence": _code,
    "code_block": _code,
    "html_block": _html,
    "hr": _rule,
    "blockquote": _blockquote,
    "bullet_list": _list,
    "ordered_list": _list,
    "table": _table,
}


def _inline(nodes: Iterable[SyntaxTreeNode], style: _Style) -> str:
    """Render inline nodes; broadcasts split across nodes (`@` + `*here*`) are caught at the end."""
    return neutralise_broadcasts("".join(_inline_node(node, style) for node in nodes))


def _inline_node(node: SyntaxTreeNode, style: _Style) -> str:
    match node.type:
        case "inline":
            return _inline(node.children, style)
        case "text" | "html_inline":
            return escape(node.content)
        case "softbreak" | "hardbreak":
            return "\n"
        case "code_inline":
            return f"`{escape(node.content)}`"
        case "strong":
            return _wrap(node, style, "*", replace(style, bold=True), already=style.bold)
        case "em":
            return _wrap(node, style, "_", replace(style, italic=True), already=style.italic)
        case "s":
            return _wrap(node, style, "~", replace(style, strike=True), already=style.strike)
        case "link":
            return _link(node, style)
        case "image":
            return _shown_with_url(_plain(node.children), str(node.attrs.get("src", "")))
        case _:
            return _inline(node.children, style)


def _wrap(node: SyntaxTreeNode, style: _Style, mark: str, inner: _Style, *, already: bool) -> str:
    text = _inline(node.children, inner)
    return text if already or not text.strip() else f"{mark}{text}{mark}"


def _link(node: SyntaxTreeNode, style: _Style) -> str:
    href = str(node.attrs.get("href", ""))
    shown = _plain(node.children)
    if node.markup == "autolink" or shown == href:
        return _inline(node.children, style)
    return f"{_inline(node.children, style)} ({escape(href)})"


def _shown_with_url(alt: str, url: str) -> str:
    return f"{escape(alt)} ({escape(url)})" if alt else escape(url)


def _plain(nodes: Iterable[SyntaxTreeNode]) -> str:
    """The unescaped visible text of inline nodes, for comparisons, alt text and table cells."""
    parts: list[str] = []
    for node in nodes:
        if node.type in ("text", "code_inline", "html_inline"):
            parts.append(node.content)
        elif node.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        else:
            parts.append(_plain(node.children))
    return "".join(parts)
