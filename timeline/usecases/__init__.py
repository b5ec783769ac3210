"""Guild-scoped services the Discord commands and their CLI twins call.

Every function takes the caller's `AsyncSession` first (the caller owns the transaction), then
the `guild_id` whose rows plus the config-file (GLOBAL_SCOPE) rows it may see. Results are
plain frozen dataclasses; errors are `timeline.domain.errors` exceptions with a message to show.
"""
