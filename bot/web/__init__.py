"""The web view: a page per run (three panes, live while it works) behind Sign in with
Slack, and the admins' spend dashboard. It reads the ledger and Slack and renders; it never
writes a run and never imports the sandbox. Modules: `routes` (the paths, mounted on the
app's own server), `auth` (OpenID Connect and the session cookie), `access` (who may see
a run), `view` (events folded into panes, drawn as HTML), `markdown` (model text to safe
HTML), `dashboard` and `charts` (the admin page, server-side SVG). See docs/web.md.
"""

from bot.web.auth import Sessions
from bot.web.deps import WebDeps
from bot.web.routes import WebView, mount

__all__ = ["Sessions", "WebDeps", "WebView", "mount"]
