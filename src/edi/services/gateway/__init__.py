"""The HTTP gateway: NHN's EDI 2.0 API (v2 contract) and v3-style notifications over the Messaging seam.

`app.create_app` builds it; `messages` and `notifications` hold the routes, `access` the caller's HER-ids,
`errors` the ErrorMessage shape, `compat` the ASP.NET-compatible request handling, `settings` the configuration.
"""
