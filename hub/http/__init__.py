"""What the pages (hub.web) and the JSON API (hub.api) share to serve a request: its database session and
unit of work, the access rules every endpoint states, CSRF, form reading, downloads and the error pages.

Nothing here knows a page or an API resource; hub.web and hub.api import this package, never each other."""
