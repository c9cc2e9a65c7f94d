package lambdalet.runtime;

import java.io.BufferedOutputStream;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * lambdalet's Java runtime: a Lambda Runtime API client that runs inside the sandbox.
 *
 * <p>It loads {@code _HANDLER} once from the classpath (the zip's classes and {@code lib/*.jar}),
 * then serves invocations until the sandbox is stopped, as AWS's java17/java21 runtimes do.
 * Errors are reported in AWS's shape: {@code errorMessage}, {@code errorType} (the exception's
 * class name) and {@code stackTrace} (frames as text, without this runtime's own). A handler that
 * cannot be loaded is an init error: {@code java.lang.ClassNotFoundException} ("Class not
 * found: ..."), {@code java.lang.NoSuchMethodException} ("No public method named ..."),
 * {@code Runtime.MalformedHandlerName}, or the type of what its constructor or static
 * initializer threw ({@code java.lang.ExceptionInInitializerError} for the latter, as on AWS).
 *
 * <p>Started with {@code --train-cds} it serves a few scripted invocations from an in-process
 * Runtime API and exits, so a JVM run with {@code -XX:ArchiveClassesAtExit} archives every class
 * a real start needs (see {@link Training}).
 */
public final class Bootstrap {
    /** The system property AWS's runtime sets to the invocation's X-Ray trace header. */
    static final String TRACE_PROPERTY = "com.amazonaws.xray.traceHeader";
    static final String TRAIN_FLAG = "--train-cds";

    private final RuntimeApi api;
    private final FunctionInfo function;

    Bootstrap(RuntimeApi api, FunctionInfo function) {
        this.api = api;
        this.function = function;
    }

    /** {@code java -cp <bootstrap>:<task root>:<task root>/lib/* lambdalet.runtime.Bootstrap}. */
    public static void main(String[] args) throws Exception {
        if (args.length == 1 && args[0].equals(TRAIN_FLAG)) {
            Training.run();
            return;
        }
        useUtf8Output();
        Map<String, String> env = System.getenv();
        String address = env.get("AWS_LAMBDA_RUNTIME_API");
        if (address == null || address.isEmpty()) {
            System.err.println("lambdalet runtime: AWS_LAMBDA_RUNTIME_API is not set");
            System.exit(1);
        }
        Bootstrap bootstrap =
                new Bootstrap(new RuntimeApi(address), FunctionInfo.fromEnvironment(env));
        Handler handler = bootstrap.load(env.getOrDefault("_HANDLER", ""));
        if (handler == null) {
            System.exit(1);
        }
        try {
            bootstrap.serve(handler, Long.MAX_VALUE);
        } catch (IOException error) {
            System.err.println("lambdalet runtime: lost the Runtime API: " + error);
            System.exit(1);
        }
    }

    /** Standard output and error in UTF-8 whatever the locale, flushed at each line. */
    static void useUtf8Output() {
        System.setOut(new PrintStream(
                new BufferedOutputStream(new FileOutputStream(FileDescriptor.out), 8192),
                true,
                StandardCharsets.UTF_8));
        System.setErr(new PrintStream(
                new BufferedOutputStream(new FileOutputStream(FileDescriptor.err), 8192),
                true,
                StandardCharsets.UTF_8));
    }

    /** Load the handler, or report why it cannot be loaded to /init/error and return null. */
    Handler load(String spec) throws IOException {
        try {
            return Handler.load(spec, ClassLoader.getSystemClassLoader());
        } catch (HandlerError error) {
            Throwable cause = error.getCause();
            if (cause != null) {
                filterStackTrace(cause);
            }
            log(error.getMessage(), error.errorType, cause);
            api.failInit(error.errorType, errorBody(error.getMessage(), error.errorType, cause));
            return null;
        }
    }

    /** Serve invocations with the handler, at most {@code limit} of them. */
    void serve(Handler handler, long limit) throws IOException {
        for (long served = 0; served < limit; served++) {
            Invocation invocation = api.next();
            if (invocation.traceId != null && !invocation.traceId.isEmpty()) {
                System.setProperty(TRACE_PROPERTY, invocation.traceId);
            } else {
                System.clearProperty(TRACE_PROPERTY);
            }
            byte[] response;
            try {
                response = handler.call(invocation, new InvocationContext(function, invocation));
            } catch (Throwable error) {
                filterStackTrace(error);
                String type = error.getClass().getName();
                String message = messageOf(error);
                log(message, type, error);
                flushOutput();
                api.fail(invocation.requestId, type, errorBody(message, type, error));
                if (error instanceof VirtualMachineError) {
                    // Out of memory or stack: this JVM cannot be trusted with another event.
                    System.exit(1);
                }
                continue;
            } finally {
                Thread.interrupted(); // a flag the handler left set must not break the next poll
            }
            flushOutput();
            api.respond(invocation.requestId, response);
        }
    }

    /** Everything the handler printed must be in the pipe before the host sees its reply. */
    static void flushOutput() {
        System.out.flush();
        System.err.flush();
    }

    /** The message AWS reports for a throwable: its own, or its class name when it has none. */
    static String messageOf(Throwable error) {
        String message = error.getLocalizedMessage();
        return message == null ? error.getClass().getName() : message;
    }

    /** The JSON AWS's Java runtime posts for an error. */
    static byte[] errorBody(String message, String type, Throwable error) {
        List<String> frames = new ArrayList<>();
        if (error != null) {
            for (StackTraceElement frame : error.getStackTrace()) {
                frames.add(frame.toString());
            }
        }
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("errorMessage", message);
        body.put("errorType", type);
        body.put("stackTrace", frames);
        return Json.write(body).getBytes(StandardCharsets.UTF_8);
    }

    /** Log an error as AWS's runtime does: "message: type", then the stack trace. */
    private static void log(String message, String type, Throwable error) {
        StringBuilder text = new StringBuilder(message).append(": ").append(type).append('\n');
        if (error != null) {
            StringWriter trace = new StringWriter();
            error.printStackTrace(new PrintWriter(trace));
            text.append(trace);
        }
        System.err.print(text);
        System.err.flush();
    }

    /**
     * Cut this runtime's frames (and the reflection that called the handler) from a stack trace,
     * for the error and its causes, so the user sees only their code, as AWS's runtime does.
     */
    static void filterStackTrace(Throwable error) {
        Set<Throwable> seen = new HashSet<>();
        for (Throwable current = error;
                current != null && seen.add(current);
                current = current.getCause()) {
            StackTraceElement[] frames = current.getStackTrace();
            int end = frames.length;
            for (int i = 0; i < frames.length; i++) {
                if (frames[i].getClassName().startsWith("lambdalet.runtime.")) {
                    end = i;
                    break;
                }
            }
            if (end == frames.length) {
                continue;
            }
            while (end > 0 && isReflection(frames[end - 1].getClassName())) {
                end--;
            }
            StackTraceElement[] kept = new StackTraceElement[end];
            System.arraycopy(frames, 0, kept, 0, end);
            current.setStackTrace(kept);
        }
    }

    private static boolean isReflection(String className) {
        return className.startsWith("jdk.internal.reflect.")
                || className.startsWith("java.lang.reflect.")
                || className.startsWith("java.lang.invoke.");
    }
}
