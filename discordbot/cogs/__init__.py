"""The slash-command cogs: each module with `async def setup(bot)` is loaded by TimelineBot."""
