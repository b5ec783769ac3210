"""The limits the use cases enforce, for the adapters that declare them up front.

Slash-command options declare their maximum lengths to Discord (`app_commands.Range`); they
take them from here so Discord and the use case refuse the same input.
"""

from timeline.usecases._common import MAX_NOTE, MAX_QUERY, MAX_TITLE, MAX_URL

__all__ = ["MAX_NOTE", "MAX_QUERY", "MAX_TITLE", "MAX_URL"]
