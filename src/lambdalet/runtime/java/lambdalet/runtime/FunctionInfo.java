package lambdalet.runtime;

import java.util.Map;

/** What the standard environment says about the function; the same for every invocation. */
final class FunctionInfo {
    final String name;
    final String version;
    final int memoryMb;
    final String logGroupName;
    final String logStreamName;

    FunctionInfo(
            String name, String version, int memoryMb, String logGroupName, String logStreamName) {
        this.name = name;
        this.version = version;
        this.memoryMb = memoryMb;
        this.logGroupName = logGroupName;
        this.logStreamName = logStreamName;
    }

    /** From {@code AWS_LAMBDA_FUNCTION_NAME}, {@code _VERSION}, {@code _MEMORY_SIZE}, log names. */
    static FunctionInfo fromEnvironment(Map<String, String> env) {
        int memoryMb;
        try {
            memoryMb = Integer.parseInt(
                    env.getOrDefault("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128").trim());
        } catch (NumberFormatException error) {
            memoryMb = 128;
        }
        return new FunctionInfo(
                env.getOrDefault("AWS_LAMBDA_FUNCTION_NAME", ""),
                env.getOrDefault("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
                memoryMb,
                env.getOrDefault("AWS_LAMBDA_LOG_GROUP_NAME", ""),
                env.getOrDefault("AWS_LAMBDA_LOG_STREAM_NAME", ""));
    }
}
