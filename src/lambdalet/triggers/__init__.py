"""Event sources: schedules (and, later, queues, streams and the rest), each feeding the router."""
