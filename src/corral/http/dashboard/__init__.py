"""The web dashboard: static HTML/CSS/JS served under ``/``, fed only by the JSON admin API.

``routes.py`` serves the page and the session endpoints (``/dashboard/login``, ``/session``,
``/logout``, ``/config``); ``session.py`` holds the server-side sessions that let the browser
call ``/api/admin/...`` with an HttpOnly cookie instead of the bearer token.
"""
