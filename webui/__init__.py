"""The read-only web timeline a member opens from Discord (`/web`): aiohttp.web + Jinja2."""
