"""Turning timeline data into what people read: Markdown escaping, alert templates, chart PNGs."""
