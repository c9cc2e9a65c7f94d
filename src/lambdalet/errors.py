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

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The JSON body AWS sends for this error."""
        return {"Type": self.error_type, self.message_key: self.message, **self.extra}


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


class SandboxError(LambdaletError):
    """Raised when a sandbox cannot be started or has died."""


class CodeError(LambdaletError):
    """Raised when a function's code package cannot be used."""


class ProvisionedConcurrencyConfigNotFoundException(AwsError):
    """Raised when a version or alias has no provisioned concurrency configured."""

    code = "ProvisionedConcurrencyConfigNotFoundException"
    status = 404
