"""Event sources that feed functions: schedules (EventBridge-style) and event source mappings
from SQS-compatible queues."""
