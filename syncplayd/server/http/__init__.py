"""The HTTP side: the Quart app, the REST and admin routes, the watch page."""
