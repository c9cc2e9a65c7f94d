package lambdalet.runtime;

/** One event from {@code /invocation/next}: its payload and {@code Lambda-Runtime-*} headers. */
final class Invocation {
    final String requestId;
    final long deadlineUnixMs;
    final String invokedFunctionArn;
    final String traceId;
    final String clientContext;
    final String cognitoIdentity;
    final byte[] payload;

    Invocation(
            String requestId,
            long deadlineUnixMs,
            String invokedFunctionArn,
            String traceId,
            String clientContext,
            String cognitoIdentity,
            byte[] payload) {
        this.requestId = requestId;
        this.deadlineUnixMs = deadlineUnixMs;
        this.invokedFunctionArn = invokedFunctionArn;
        this.traceId = traceId;
        this.clientContext = clientContext;
        this.cognitoIdentity = cognitoIdentity;
        this.payload = payload;
    }
}
