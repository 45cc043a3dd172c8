"""Local stand-ins for the services orchestrate talks to: Slack (`slack.py`) and the Claude
Messages API (`claude.py`). Both speak the real wire protocols on loopback, so the demo and
the tests drive the real SDK clients and the real Bolt app against them.
"""
