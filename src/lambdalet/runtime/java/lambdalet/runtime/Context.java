package lambdalet.runtime;

import java.util.Map;

/**
 * What lambdalet's Java runtime tells a handler about the invocation that runs it.
 *
 * <p>The same methods as {@code com.amazonaws.services.lambda.runtime.Context}, for handlers that
 * do not depend on aws-lambda-java-core. A handler that is compiled against AWS's interface gets
 * an implementation of that one instead.
 */
public interface Context {
    /** The id of this invocation, as the caller sees it in {@code x-amzn-RequestId}. */
    String getAwsRequestId();

    /** The log group of the function: {@code /aws/lambda/<function name>}. */
    String getLogGroupName();

    /** The log stream of this sandbox. */
    String getLogStreamName();

    /** The function's name. */
    String getFunctionName();

    /** The version that runs: {@code $LATEST} or a published number. */
    String getFunctionVersion();

    /** The ARN the caller invoked, with its version or alias qualifier when it had one. */
    String getInvokedFunctionArn();

    /** Milliseconds left before the invocation times out. */
    int getRemainingTimeInMillis();

    /** The function's memory size in MB. */
    int getMemoryLimitInMB();

    /** A logger whose lines go to the function's log. */
    LambdaLogger getLogger();

    /** The caller's ClientContext ({@code client}, {@code custom}, {@code env}), or null. */
    Map<String, Object> getClientContext();

    /** The Cognito identity of a mobile caller, or null. */
    Map<String, Object> getIdentity();
}
