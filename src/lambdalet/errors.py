"""The error tree. Each API error knows its AWS error code, HTTP status and message key.

botocore reads the code from the ``x-amzn-ErrorType`` header and the message from the body's
``Message`` or ``message`` field; each class names the one AWS itself uses for that error.
"""

from __future__ import annotations

from typing import Any, ClassVar


class LambdaletError(Exception):
    """Raised when anything in lambdalet fails; the root of the tree."""


class AwsError(LambdaletError):
    """Raised when a request must be answered with an AWS-shaped error."""

    code: ClassVar[str] = "ServiceException"
    status: ClassVar[int] = 500
    error_type: ClassVar[str] = "User"
    message_key: ClassVar[str] = "Message"
    query_code: ClassVar[str | None] = None  # its code in the query protocol, where it differs

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The JSON body AWS sends for this error."""
        return {"Type": self.error_type, self.message_key: self.message, **self.extra}

    def query_protocol_code(self) -> str:
        """The code the query protocol (SNS, and SQS's legacy header) answers it with."""
        return self.query_code or self.code

    def headers(self, request_id: str) -> dict[str, str]:
        """The headers AWS sends with this error (a throttle says when to retry)."""
        headers = {"x-amzn-ErrorType": self.code, "x-amzn-RequestId": request_id}
        if self.code == "TooManyRequestsException":
            headers["Retry-After"] = "1"
        return headers


class ResourceNotFoundException(AwsError):
    """Raised when a function, version or other resource does not exist."""

    code = "ResourceNotFoundException"
    status = 404


class ResourceConflictException(AwsError):
    """Raised when a resource already exists or is being changed."""

    code = "ResourceConflictException"
    status = 409


class PreconditionFailedException(AwsError):
    """Raised when a RevisionId given by the caller is no longer current."""

    code = "PreconditionFailedException"
    status = 412

    @classmethod
    def stale_revision(cls, read_with: str) -> PreconditionFailedException:
        """The error for a stale RevisionId, naming the call that reads the current one."""
        return cls(
            "The Revision Id provided does not match the latest Revision Id."
            f" Call the {read_with} API to retrieve the latest Revision Id"
        )


class InvalidParameterValueException(AwsError):
    """Raised when a parameter is well-formed but its value cannot be used."""

    code = "InvalidParameterValueException"
    status = 400


class ValidationException(AwsError):
    """Raised when a parameter breaks a constraint of the API's model (pattern, range)."""

    code = "ValidationException"
    status = 400
    message_key = "message"


class InvalidRequestContentException(AwsError):
    """Raised when a request body cannot be parsed (an Invoke payload that is not JSON)."""

    code = "InvalidRequestContentException"
    status = 400
    message_key = "message"


class RequestTooLargeException(AwsError):
    """Raised when a request body is over the operation's size limit."""

    code = "RequestTooLargeException"
    status = 413
    message_key = "message"


class UnsupportedMediaTypeException(AwsError):
    """Raised when a request body's Content-Type is not one the operation accepts."""

    code = "UnsupportedMediaTypeException"
    status = 415
    message_key = "message"


class TooManyRequestsException(AwsError):
    """Raised when an invocation would go over a concurrency limit."""

    code = "TooManyRequestsException"
    status = 429
    message_key = "message"


class ServiceException(AwsError):
    """Raised for a bug in lambdalet itself; never for a caller's mistake."""

    code = "ServiceException"
    status = 500
    error_type = "Service"


class UnknownOperationException(AwsError):
    """Raised when no operation matches the request's method and path."""

    code = "UnknownOperationException"
    status = 404
    message_key = "message"


class AuthenticationError(AwsError):
    """Raised when a request's SigV4 signature is missing or does not check out (403); the query
    protocol names these errors as IAM does."""

    status = 403
    message_key = "message"
    query_code = "SignatureDoesNotMatch"


class MissingAuthenticationTokenException(AuthenticationError):
    """Raised when a request that must be signed (SigV4) is not."""

    code = "MissingAuthenticationTokenException"
    query_code = "MissingAuthenticationToken"


class UnrecognizedClientException(AuthenticationError):
    """Raised when a request is signed with an access key this node does not have."""

    code = "UnrecognizedClientException"
    query_code = "InvalidClientTokenId"


class InvalidSignatureException(AuthenticationError):
    """Raised when a request's SigV4 signature does not check out (wrong secret, stale time)."""

    code = "InvalidSignatureException"


class ConflictException(AwsError):
    """Raised when a schedule (EventBridge Scheduler API) already exists."""

    code = "ConflictException"
    status = 409


class ApiGatewayError(AwsError):
    """Raised when an API Gateway (apigatewayv2) request must be refused: ``{"message": ...}``."""

    code = "BadRequestException"
    status = 400
    message_key = "message"

    def body(self) -> dict[str, Any]:
        return {"message": self.message}


class BadRequestException(ApiGatewayError):
    """Raised when an apigatewayv2 request has a missing or invalid parameter."""


class NotFoundException(ApiGatewayError):
    """Raised when an HTTP API or one of its routes, integrations, stages or authorizers is
    not there."""

    code = "NotFoundException"
    status = 404


class ApiConflictException(ApiGatewayError):
    """Raised when an apigatewayv2 resource (a route key, a stage name) already exists."""

    code = "ConflictException"
    status = 409


class ScheduleExpressionError(LambdaletError):
    """Raised when a schedule expression or time zone cannot be used; the message says why."""


class SandboxError(LambdaletError):
    """Raised when a sandbox cannot be started or has died."""


class CodeError(LambdaletError):
    """Raised when a function's code package cannot be used."""


class ProvisionedConcurrencyConfigNotFoundException(AwsError):
    """Raised when a version or alias has no provisioned concurrency configured."""

    code = "ProvisionedConcurrencyConfigNotFoundException"
    status = 404


class ResourceInUseException(AwsError):
    """Raised when a resource (an event source mapping being deleted) cannot change now."""

    code = "ResourceInUseException"
    status = 400


class QueueError(AwsError):
    """Raised when an SQS request must be refused; answered in SQS's JSON error shape.

    ``shape`` is the error's name in SQS's service model, sent as ``__type`` (boto3 picks its
    exception class by it); ``code`` is the legacy query code AWS sends in the
    ``x-amzn-query-error`` header, which boto3 reports as ``Error.Code``.
    """

    code = "InvalidParameterValue"
    status = 400
    message_key = "message"
    shape: ClassVar[str] = "InvalidParameterValueException"

    def body(self) -> dict[str, Any]:
        return {"__type": f"com.amazonaws.sqs#{self.shape}", "message": self.message}

    @property
    def query_error(self) -> str:
        """The ``x-amzn-query-error`` header value: the query code and who is at fault."""
        return f"{self.code};Sender"


class QueueDoesNotExist(QueueError):
    """Raised when a queue named by a request does not exist."""

    code = "AWS.SimpleQueueService.NonExistentQueue"
    shape = "QueueDoesNotExist"

    @classmethod
    def missing(cls) -> QueueDoesNotExist:
        """The error for a queue that is not there, in AWS's words (which name no queue)."""
        return cls("The specified queue does not exist.")


class QueueNameExists(QueueError):
    """Raised when CreateQueue names an existing queue with different attributes."""

    code = "QueueAlreadyExists"
    shape = "QueueNameExists"


class QueueInvalidParameterValue(QueueError):
    """Raised when an SQS request parameter has a value SQS does not accept."""


class QueueMissingParameter(QueueError):
    """Raised when an SQS request lacks a required parameter."""

    code = "MissingParameter"
    shape = "MissingParameter"


class InvalidAttributeName(QueueError):
    """Raised when a queue attribute name is unknown or cannot be set."""

    code = shape = "InvalidAttributeName"


class InvalidAttributeValue(QueueError):
    """Raised when a queue attribute's value is out of range or malformed."""

    code = shape = "InvalidAttributeValue"


class InvalidMessageContents(QueueError):
    """Raised when a message body holds characters SQS does not allow."""

    code = shape = "InvalidMessageContents"


class ReceiptHandleIsInvalid(QueueError):
    """Raised when a receipt handle was not made by this queue."""

    code = shape = "ReceiptHandleIsInvalid"


class MessageNotInflight(QueueError):
    """Raised when a message's visibility is changed while it is not being processed."""

    code = "AWS.SimpleQueueService.MessageNotInflight"
    shape = "MessageNotInflight"


class EmptyBatchRequest(QueueError):
    """Raised when a batch request has no entries."""

    code = "AWS.SimpleQueueService.EmptyBatchRequest"
    shape = "EmptyBatchRequest"


class TooManyEntriesInBatchRequest(QueueError):
    """Raised when a batch request has more than 10 entries."""

    code = "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"
    shape = "TooManyEntriesInBatchRequest"


class BatchEntryIdsNotDistinct(QueueError):
    """Raised when two entries of a batch request have the same Id."""

    code = "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"
    shape = "BatchEntryIdsNotDistinct"


class InvalidBatchEntryId(QueueError):
    """Raised when a batch entry's Id has characters or a length SQS does not allow."""

    code = "AWS.SimpleQueueService.InvalidBatchEntryId"
    shape = "InvalidBatchEntryId"


class BatchRequestTooLong(QueueError):
    """Raised when the messages of a SendMessageBatch add up to more than 256 KiB."""

    code = "AWS.SimpleQueueService.BatchRequestTooLong"
    shape = "BatchRequestTooLong"


class UnsupportedOperation(QueueError):
    """Raised for an SQS operation or feature (FIFO queues) lambdalet does not implement."""

    code = "AWS.SimpleQueueService.UnsupportedOperation"
    shape = "UnsupportedOperation"


class TopicError(AwsError):
    """Raised when an SNS request must be refused; answered in SNS's XML error shape.

    ``code`` is the error code of SNS's query protocol (``<Error><Code>``), which boto3
    reports as ``Error.Code`` and maps to its exception classes.
    """

    code = "InvalidParameter"
    status = 400


class TopicInvalidParameter(TopicError):
    """Raised when an SNS request parameter is missing or has a value SNS does not accept."""


class TopicInvalidParameterValue(TopicError):
    """Raised when a published message or its attributes cannot be accepted."""

    code = "ParameterValueInvalid"


class TopicNotFound(TopicError):
    """Raised when a topic or subscription named by a request does not exist."""

    code = "NotFound"
    status = 404


class TopicInvalidAction(TopicError):
    """Raised for an SNS action lambdalet does not implement."""

    code = "InvalidAction"


class TopicEmptyBatchRequest(TopicError):
    """Raised when PublishBatch has no entries."""

    code = "EmptyBatchRequest"


class TopicTooManyEntriesInBatchRequest(TopicError):
    """Raised when PublishBatch has more than 10 entries."""

    code = "TooManyEntriesInBatchRequest"


class TopicBatchEntryIdsNotDistinct(TopicError):
    """Raised when two entries of a PublishBatch have the same Id."""

    code = "BatchEntryIdsNotDistinct"


class TopicInvalidBatchEntryId(TopicError):
    """Raised when a PublishBatch entry's Id has characters or a length SNS does not allow."""

    code = "InvalidBatchEntryId"


class TopicBatchRequestTooLong(TopicError):
    """Raised when the messages of a PublishBatch add up to more than 256 KiB."""

    code = "BatchRequestTooLong"
