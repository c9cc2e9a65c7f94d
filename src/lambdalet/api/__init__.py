"""The HTTP front door: the Lambda REST API."""
