"""Queues: an SQS-compatible subset served by lambdalet itself, so no broker is needed.

``models`` holds the records the store keeps, ``attributes`` and ``messages`` the rules SQS
applies to them, ``service`` the queue logic (``Node.queues``) and ``sqs_api`` the AWS JSON
protocol boto3 speaks. This module imports nothing, so the store can use ``models`` freely.
"""
