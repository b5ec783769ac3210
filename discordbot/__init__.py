"""The Discord layer: the bot, alert delivery, embeds, permission checks and error replies.

Never call this package `discord`: it would shadow the library.
"""
