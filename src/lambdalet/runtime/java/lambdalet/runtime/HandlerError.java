package lambdalet.runtime;

/** Raised when the handler cannot be loaded; carries the errorType AWS's Java runtime reports. */
final class HandlerError extends Exception {
    private static final long serialVersionUID = 1L;

    final String errorType;

    HandlerError(String errorType, String message, Throwable cause) {
        super(message, cause);
        this.errorType = errorType;
    }
}
