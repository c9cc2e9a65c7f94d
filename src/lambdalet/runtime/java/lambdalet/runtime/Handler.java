package lambdalet.runtime;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.reflect.Constructor;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.Type;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;

/**
 * The user's handler: {@code pkg.Class::method}, or {@code pkg.Class} for {@code handleRequest}.
 *
 * <p>The method is chosen among the class's public methods of that name as AWS's Java runtime
 * chooses it, without needing aws-lambda-java-core: the supported shapes are {@code ()},
 * {@code (T)}, {@code (T, Context)}, {@code (Context)}, and the stream forms
 * {@code (InputStream[, OutputStream][, Context])} and {@code (OutputStream, Context)}; longer
 * signatures win (one ending in a Context counts one more), non-bridge methods beat bridge ones.
 * {@code Context} is lambdalet's {@link Context} or AWS's interface when it is on the classpath.
 * A non-static method's class is instantiated once, so its state lives as long as the sandbox.
 *
 * <p>{@code T} is read from the payload's JSON by {@link Marshal#toJava}, except {@code byte[]},
 * which gets the payload's raw bytes. The result is written as JSON ({@code null} for void);
 * a handler with an OutputStream answers with what it wrote there.
 */
final class Handler {
    private static final int VALUE = 0;
    private static final int INPUT_STREAM = 1;
    private static final int OUTPUT_STREAM = 2;
    private static final int CONTEXT = 3;
    private static final int AWS_CONTEXT = 4;

    /** AWS's preference among overloads: non-bridge first, then longer (Context counts double). */
    private static final Comparator<Method> PRIORITY = new Comparator<Method>() {
        @Override
        public int compare(Method left, Method right) {
            if (left.isBridge() != right.isBridge()) {
                return left.isBridge() ? 1 : -1;
            }
            return Integer.compare(weight(right), weight(left));
        }

        private int weight(Method method) {
            Class<?>[] parameters = method.getParameterTypes();
            int length = parameters.length;
            return length > 0 && isContext(kindOf(parameters[length - 1])) ? length + 1 : length;
        }
    };

    private final Object instance;
    private final Method method;
    private final Class<?>[] parameterTypes;
    private final int[] kinds;
    private final Type valueType;
    private final boolean returnsVoid;

    private Handler(Object instance, Method method, int[] kinds) {
        this.instance = instance;
        this.method = method;
        this.parameterTypes = method.getParameterTypes();
        this.kinds = kinds;
        Type value = null;
        Type[] generic = method.getGenericParameterTypes();
        for (int i = 0; i < kinds.length; i++) {
            if (kinds[i] == VALUE) {
                value = generic[i];
            }
        }
        this.valueType = value;
        Class<?> returns = method.getReturnType();
        this.returnsVoid = returns == void.class || returns == Void.class;
    }

    /** Load the class, pick the method and make the instance; HandlerError says what went wrong. */
    static Handler load(String spec, ClassLoader loader) throws HandlerError {
        int separator = spec.indexOf("::");
        String className = (separator < 0 ? spec : spec.substring(0, separator)).trim();
        String methodName = separator < 0 ? "handleRequest" : spec.substring(separator + 2).trim();
        if (className.isEmpty() || methodName.isEmpty() || methodName.contains("::")) {
            throw new HandlerError(
                    "Runtime.MalformedHandlerName", "Invalid handler: `" + spec + "'", null);
        }
        Class<?> type;
        try {
            type = Class.forName(className, true, loader);
        } catch (ClassNotFoundException error) {
            throw new HandlerError(
                    error.getClass().getName(), "Class not found: " + className, error);
        } catch (LinkageError error) {
            // NoClassDefFoundError, UnsupportedClassVersionError, or an exception in a static
            // initializer (ExceptionInInitializerError, whose message is empty: show the cause).
            String detail = error.getMessage();
            if (error instanceof ExceptionInInitializerError && error.getCause() != null) {
                detail = error.getCause().toString();
            }
            throw new HandlerError(
                    error.getClass().getName(),
                    "Error loading class " + className + (detail == null ? "" : ": " + detail),
                    error);
        }
        Method method = null;
        int[] kinds = null;
        try {
            List<Method> candidates = new ArrayList<>();
            for (Method candidate : type.getMethods()) {
                if (candidate.getName().equals(methodName)) {
                    candidates.add(candidate);
                }
            }
            candidates.sort(PRIORITY);
            for (Method candidate : candidates) {
                kinds = classify(candidate);
                if (kinds != null) {
                    method = candidate;
                    break;
                }
            }
        } catch (LinkageError error) {
            throw new HandlerError(
                    error.getClass().getName(),
                    "Error loading method " + methodName + " on class " + className + ": "
                            + error.getMessage(),
                    error);
        }
        if (method == null) {
            throw new HandlerError(
                    "java.lang.NoSuchMethodException",
                    "No public method named " + methodName
                            + " with appropriate method signature found on class " + className,
                    null);
        }
        // Public methods of a class that is not public still need this to be called.
        method.trySetAccessible();
        Object instance = Modifier.isStatic(method.getModifiers()) ? null : instantiate(type);
        return new Handler(instance, method, kinds);
    }

    private static Object instantiate(Class<?> type) throws HandlerError {
        Constructor<?> constructor;
        try {
            constructor = type.getConstructor();
        } catch (NoSuchMethodException error) {
            boolean inner =
                    type.getEnclosingClass() != null && !Modifier.isStatic(type.getModifiers());
            String message = "Class " + type.getName() + (inner
                    ? " cannot be instantiated because it is a non-static inner class"
                    : " has no public zero-argument constructor");
            throw new HandlerError("java.lang.Exception", message, error);
        }
        constructor.trySetAccessible();
        try {
            return constructor.newInstance();
        } catch (InvocationTargetException error) {
            Throwable cause = error.getCause() != null ? error.getCause() : error;
            throw new HandlerError(cause.getClass().getName(), Bootstrap.messageOf(cause), cause);
        } catch (ReflectiveOperationException error) {
            throw new HandlerError(error.getClass().getName(), Bootstrap.messageOf(error), error);
        }
    }

    /** The kind of each parameter, or null if AWS's Java runtime would not call this overload. */
    private static int[] classify(Method method) {
        Class<?>[] parameters = method.getParameterTypes();
        int[] kinds = new int[parameters.length];
        for (int i = 0; i < parameters.length; i++) {
            kinds[i] = kindOf(parameters[i]);
        }
        boolean valid = switch (kinds.length) {
            case 0, 1 -> true;
            case 2 -> switch (kinds[0]) {
                case OUTPUT_STREAM, VALUE -> isContext(kinds[1]);
                case INPUT_STREAM -> kinds[1] == OUTPUT_STREAM || isContext(kinds[1]);
                default -> false; // a Context first
            };
            case 3 -> kinds[0] == INPUT_STREAM && kinds[1] == OUTPUT_STREAM && isContext(kinds[2]);
            default -> false;
        };
        return valid ? kinds : null;
    }

    private static int kindOf(Class<?> parameter) {
        if (parameter == InputStream.class) {
            return INPUT_STREAM;
        }
        if (parameter == OutputStream.class) {
            return OUTPUT_STREAM;
        }
        if (parameter == Context.class) {
            return CONTEXT;
        }
        if (parameter.isInterface() && parameter.getName().equals(AwsContext.CONTEXT_CLASS)) {
            return AWS_CONTEXT;
        }
        return VALUE;
    }

    private static boolean isContext(int kind) {
        return kind == CONTEXT || kind == AWS_CONTEXT;
    }

    /** A short description, for logs: {@code example.Hello::handleRequest(Map, Context)}. */
    String describe() {
        StringBuilder text = new StringBuilder(method.getDeclaringClass().getName())
                .append("::").append(method.getName()).append('(');
        for (int i = 0; i < parameterTypes.length; i++) {
            text.append(i == 0 ? "" : ", ").append(parameterTypes[i].getSimpleName());
        }
        return text.append(')').toString();
    }

    /** Run the handler on one invocation; returns the response body or throws what it threw. */
    byte[] call(Invocation invocation, InvocationContext context) throws Throwable {
        Object[] arguments = new Object[kinds.length];
        ByteArrayOutputStream output = null;
        for (int i = 0; i < kinds.length; i++) {
            switch (kinds[i]) {
                case INPUT_STREAM -> arguments[i] = new ByteArrayInputStream(invocation.payload);
                case OUTPUT_STREAM -> {
                    output = new ByteArrayOutputStream();
                    arguments[i] = output;
                }
                case CONTEXT -> arguments[i] = context;
                case AWS_CONTEXT -> arguments[i] = AwsContext.wrap(parameterTypes[i], context);
                default -> arguments[i] = input(invocation.payload);
            }
        }
        Object result;
        try {
            result = method.invoke(instance, arguments);
        } catch (InvocationTargetException error) {
            throw error.getCause() != null ? error.getCause() : error;
        }
        if (output != null) {
            return output.toByteArray();
        }
        if (returnsVoid) {
            return new byte[] {'n', 'u', 'l', 'l'};
        }
        try {
            return Json.write(result).getBytes(StandardCharsets.UTF_8);
        } catch (RuntimeException | StackOverflowError error) {
            throw new RuntimeException(
                    "An error occurred during JSON serialization of response: "
                            + Bootstrap.messageOf(error),
                    error);
        }
    }

    private Object input(byte[] payload) {
        if (valueType == byte[].class) {
            return payload;
        }
        try {
            String text = new String(payload, StandardCharsets.UTF_8);
            // No payload at all is an empty event, as for every other runtime.
            Object json = text.isBlank() ? new LinkedHashMap<String, Object>() : Json.parse(text);
            return Marshal.toJava(json, valueType);
        } catch (RuntimeException error) {
            throw new RuntimeException(
                    "An error occurred during JSON parsing: " + Bootstrap.messageOf(error), error);
        }
    }
}
