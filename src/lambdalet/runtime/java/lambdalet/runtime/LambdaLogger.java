package lambdalet.runtime;

/** Writes lines to the function's log, as AWS's {@code LambdaLogger} does. */
public interface LambdaLogger {
    /** Log a message; a line break is added when it has none at its end. */
    void log(String message);

    /** Log UTF-8 bytes; a line break is added when they have none at their end. */
    void log(byte[] message);
}
