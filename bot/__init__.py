"""orchestrate: a Slack app where Opus plans, Haiku illustrates in parallel and Sonnet reviews."""

__version__ = "0.1.0"
