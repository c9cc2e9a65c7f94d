"""The HTTP front door: function URLs and HTTP API routes, the payload-format-2.0 mapping they
share, and their authentication (SigV4, JWT, Lambda authorizers), CORS and throttling."""
