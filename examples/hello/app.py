"""The example function: greets whoever the event names."""

import os

GREETING = os.environ.get("GREETING", "Hello")


def handler(event, context):
    name = event.get("name", "world") if isinstance(event, dict) else "world"
    print(f"greeting {name} from {context.function_name}")
    return {"message": f"{GREETING}, {name}!", "request_id": context.aws_request_id}
