"""Web dashboards: the emulator's (devices, telemetry charts, twins, commands, enrollments,
faults) and the factory line's (one tile per port). See docs/dashboard.md.

Both are aiohttp applications serving plain HTML, CSS and JavaScript from `static/` (package
data, no CDN: they work offline) and JSON plus server-sent events for live updates. Nothing
secret is ever served: no key, token or password reaches a page or a stream.
"""
