"""Pure Block Kit builders for orchestrate's messages: data in, blocks out. Never imports `bot`."""
