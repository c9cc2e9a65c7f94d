package lambdalet.runtime;

import java.nio.charset.StandardCharsets;
import java.util.Map;

/** The {@link Context} of one invocation. */
final class InvocationContext implements Context {
    /** Writes each message as a line of its own on standard output. */
    static final LambdaLogger LOGGER = new LambdaLogger() {
        @Override
        public void log(String message) {
            String text = String.valueOf(message);
            System.out.print(text.endsWith("\n") ? text : text + "\n");
            System.out.flush();
        }

        @Override
        public void log(byte[] message) {
            log(new String(message, StandardCharsets.UTF_8));
        }
    };

    private final FunctionInfo function;
    private final Invocation invocation;
    private Map<String, Object> clientContext;
    private Map<String, Object> identity;
    private boolean headersRead;

    InvocationContext(FunctionInfo function, Invocation invocation) {
        this.function = function;
        this.invocation = invocation;
    }

    @Override
    public String getAwsRequestId() {
        return invocation.requestId;
    }

    @Override
    public String getLogGroupName() {
        return function.logGroupName;
    }

    @Override
    public String getLogStreamName() {
        return function.logStreamName;
    }

    @Override
    public String getFunctionName() {
        return function.name;
    }

    @Override
    public String getFunctionVersion() {
        return function.version;
    }

    @Override
    public String getInvokedFunctionArn() {
        return invocation.invokedFunctionArn;
    }

    @Override
    public int getRemainingTimeInMillis() {
        long left = invocation.deadlineUnixMs - System.currentTimeMillis();
        return (int) Math.max(0L, Math.min(left, Integer.MAX_VALUE));
    }

    @Override
    public int getMemoryLimitInMB() {
        return function.memoryMb;
    }

    @Override
    public LambdaLogger getLogger() {
        return LOGGER;
    }

    @Override
    public Map<String, Object> getClientContext() {
        readHeaders();
        return clientContext;
    }

    @Override
    public Map<String, Object> getIdentity() {
        readHeaders();
        return identity;
    }

    /** The X-Ray trace header of the invocation, or null. */
    String getXrayTraceId() {
        return invocation.traceId;
    }

    @Override
    public String toString() {
        return "LambdaContext[awsRequestId=" + getAwsRequestId()
                + ", functionName=" + getFunctionName()
                + ", functionVersion=" + getFunctionVersion() + ", invokedFunctionArn="
                + getInvokedFunctionArn() + "]";
    }

    private void readHeaders() {
        if (!headersRead) {
            clientContext = jsonObject(invocation.clientContext);
            identity = jsonObject(invocation.cognitoIdentity);
            headersRead = true;
        }
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> jsonObject(String header) {
        if (header == null || header.isEmpty()) {
            return null;
        }
        try {
            Object parsed = Json.parse(header);
            return parsed instanceof Map ? (Map<String, Object>) parsed : null;
        } catch (IllegalArgumentException malformed) {
            return null; // the host checked it already; a bad header is no reason to fail the call
        }
    }
}
