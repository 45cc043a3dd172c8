"""Model and user text to HTML that can never become markup or script.

CommonMark through markdown-it-py with raw HTML off (a `<script>` in the text is shown as
text), images off (an image would load from outside the app: a tracking pixel, and the page
must work offline), and links kept only when they are `http:`, `https:` or `mailto:`
(markdown-it's own check already refuses `javascript:`, `vbscript:`, `file:` and most
`data:`; this one refuses everything else too, relative links included, since a model has
no business linking inside this app). A kept link opens with `rel="nofollow noopener
noreferrer"`. Fenced code is highlighted on the server with Pygments (its classes are
styled by `/web/static/code.css`, served by the app); a language Pygments does not know is
shown as plain escaped text.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
CODE_CLASS = "hl"  # the CSS scope of highlighted code


def render(text: str) -> str:
    """`text` (Markdown, as a model wrote it) as safe HTML."""
    return str(_parser().render(text))


def render_inline(text: str) -> str:
    """One line of Markdown (a title, a reason) as safe inline HTML, with no paragraph."""
    return str(_parser().renderInline(text))


def code_css() -> str:
    """The stylesheet for highlighted code, light and dark."""
    light = HtmlFormatter(style="default").get_style_defs(f".{CODE_CLASS}")
    dark = HtmlFormatter(style="monokai").get_style_defs(f".{CODE_CLASS}")
    return f"{light}\n@media (prefers-color-scheme: dark) {{\n{dark}\n}}\n"


def safe_link(url: str) -> bool:
    """Only absolute http(s) and mailto links survive."""
    scheme = urlsplit(url.strip()).scheme.lower()
    return scheme in SAFE_SCHEMES


def _highlight(code: str, lang: str, _attrs: str) -> str:
    try:
        lexer = get_lexer_by_name(lang.strip().split()[0]) if lang.strip() else None
    except ClassNotFound:
        lexer = None
    if lexer is None:
        return ""  # markdown-it escapes the code itself
    body = highlight(code, lexer, HtmlFormatter(nowrap=True))
    return f'<pre class="{CODE_CLASS}"><code>{body}</code></pre>\n'


def _link_open(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    tokens[idx].attrSet("rel", "nofollow noopener noreferrer")
    return self.renderToken(tokens, idx, options, env)


@cache
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "highlight": _highlight})
    md.disable("image")
    md.validateLink = safe_link  # type: ignore[method-assign]
    md.add_render_rule("link_open", _link_open)
    return md
