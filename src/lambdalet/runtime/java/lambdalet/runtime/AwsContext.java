package lambdalet.runtime;

import java.lang.reflect.InvocationHandler;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * AWS's {@code com.amazonaws.services.lambda.runtime.Context} for handlers compiled against
 * aws-lambda-java-core, built as a {@link Proxy} so this runtime does not depend on that jar.
 *
 * <p>Each method answers from the invocation's {@link InvocationContext}: same-named getters
 * directly; {@code getLogger()}, {@code getIdentity()} and {@code getClientContext()} as proxies
 * of the interfaces they return ({@code LambdaLogger}, {@code CognitoIdentity},
 * {@code ClientContext} and its {@code Client}), filled from the {@code Lambda-Runtime-*} headers.
 */
final class AwsContext {
    static final String CONTEXT_CLASS = "com.amazonaws.services.lambda.runtime.Context";

    // AWS's getter names for the JSON keys of the Lambda-Runtime-Cognito-Identity header and of
    // the client part of Lambda-Runtime-Client-Context.
    private static final String[][] IDENTITY_KEYS = {
        {"getIdentityId", "cognitoIdentityId"},
        {"getIdentityPoolId", "cognitoIdentityPoolId"},
    };
    private static final String[][] CLIENT_KEYS = {
        {"getInstallationId", "installation_id"},
        {"getAppTitle", "app_title"},
        {"getAppVersionName", "app_version_name"},
        {"getAppVersionCode", "app_version_code"},
        {"getAppPackageName", "app_package_name"},
    };

    private AwsContext() {}

    /** An instance of AWS's Context interface {@code contextInterface} for this invocation. */
    static Object wrap(Class<?> contextInterface, InvocationContext context) {
        return proxy(contextInterface, new ContextHandler(context));
    }

    private static Object proxy(Class<?> type, InvocationHandler handler) {
        return Proxy.newProxyInstance(type.getClassLoader(), new Class<?>[] {type}, handler);
    }

    /** Object's own methods, answered for every proxy here; null if the method is another one. */
    private static Object objectMethod(
            Object proxy, Method method, Object[] args, String description) {
        return switch (method.getName()) {
            case "toString" -> method.getParameterCount() == 0 ? description : null;
            case "hashCode" ->
                    method.getParameterCount() == 0 ? System.identityHashCode(proxy) : null;
            case "equals" -> method.getParameterCount() == 1 ? proxy == args[0] : null;
            default -> null;
        };
    }

    private static Object unknown(Object proxy, Method method, Object[] args) throws Throwable {
        if (method.isDefault()) {
            return InvocationHandler.invokeDefault(proxy, method, args);
        }
        throw new UnsupportedOperationException(
                method.getDeclaringClass().getName() + "." + method.getName()
                        + " is not provided by lambdalet's Java runtime");
    }

    private static final class ContextHandler implements InvocationHandler {
        private final InvocationContext context;

        ContextHandler(InvocationContext context) {
            this.context = context;
        }

        @Override
        public Object invoke(Object proxy, Method method, Object[] args) throws Throwable {
            Object own = objectMethod(proxy, method, args, context.toString());
            if (own != null) {
                return own;
            }
            Class<?> returns = method.getReturnType();
            switch (method.getName()) {
                case "getLogger":
                    return returns.isInterface() ? proxy(returns, new LoggerHandler()) : null;
                case "getIdentity": {
                    Map<String, Object> identity = context.getIdentity();
                    return identity == null || !returns.isInterface()
                            ? null
                            : proxy(returns, new MapHandler(renamed(identity, IDENTITY_KEYS)));
                }
                case "getClientContext": {
                    Map<String, Object> raw = context.getClientContext();
                    return raw == null || !returns.isInterface()
                            ? null
                            : proxy(returns, clientContext(raw));
                }
                case "getXrayTraceId":
                    return context.getXrayTraceId();
                case "getTenantId":
                    return null;
                default:
                    break;
            }
            if (method.getParameterCount() == 0) {
                try {
                    Method ours = Context.class.getMethod(method.getName());
                    if (returns.isAssignableFrom(ours.getReturnType()) || returns.isPrimitive()) {
                        return ours.invoke(context);
                    }
                } catch (NoSuchMethodException notOurs) {
                    // fall through to the interface's default method, if it has one
                }
            }
            return unknown(proxy, method, args);
        }
    }

    private static MapHandler clientContext(Map<String, Object> raw) {
        Map<String, Object> values = new LinkedHashMap<>();
        Object client = raw.get("client");
        if (client instanceof Map<?, ?> clientMap) {
            @SuppressWarnings("unchecked")
            Map<String, Object> fields = (Map<String, Object>) clientMap;
            values.put("getClient", new MapHandler(renamed(fields, CLIENT_KEYS)));
        } else {
            values.put("getClient", null);
        }
        values.put("getCustom", strings(raw.get("custom")));
        values.put("getEnvironment", strings(raw.get("env")));
        return new MapHandler(values);
    }

    private static Map<String, Object> renamed(Map<String, Object> raw, String[][] keys) {
        Map<String, Object> values = new LinkedHashMap<>();
        for (String[] pair : keys) {
            Object value = raw.get(pair[1]);
            values.put(pair[0], value == null ? null : value.toString());
        }
        return values;
    }

    /** AWS types custom and env as Map&lt;String, String&gt;: other values become their JSON. */
    private static Map<String, String> strings(Object raw) {
        if (!(raw instanceof Map<?, ?> map)) {
            return null;
        }
        Map<String, String> values = new LinkedHashMap<>();
        for (Map.Entry<?, ?> entry : map.entrySet()) {
            Object value = entry.getValue();
            values.put(
                    String.valueOf(entry.getKey()),
                    value == null || value instanceof String ? (String) value : Json.write(value));
        }
        return values;
    }

    /** Answers getters from a map of method name to value; a MapHandler value becomes a proxy. */
    private static final class MapHandler implements InvocationHandler {
        private final Map<String, ?> values;

        MapHandler(Map<String, ?> values) {
            this.values = values;
        }

        @Override
        public Object invoke(Object proxy, Method method, Object[] args) throws Throwable {
            Object own = objectMethod(proxy, method, args, String.valueOf(values));
            if (own != null) {
                return own;
            }
            if (method.getParameterCount() == 0 && values.containsKey(method.getName())) {
                Object value = values.get(method.getName());
                if (value instanceof MapHandler nested) {
                    Class<?> returns = method.getReturnType();
                    return returns.isInterface() ? proxy(returns, nested) : null;
                }
                return value;
            }
            return unknown(proxy, method, args);
        }
    }

    /** AWS's LambdaLogger: {@code log(String)}, {@code log(byte[])} and their LogLevel forms. */
    private static final class LoggerHandler implements InvocationHandler {
        @Override
        public Object invoke(Object proxy, Method method, Object[] args) throws Throwable {
            Object own = objectMethod(proxy, method, args, "LambdaLogger");
            if (own != null) {
                return own;
            }
            if (method.getName().equals("log") && args != null && args.length >= 1) {
                Object message = args[0];
                InvocationContext.LOGGER.log(
                        message instanceof byte[] bytes
                                ? new String(bytes, StandardCharsets.UTF_8)
                                : String.valueOf(message));
                return null;
            }
            return unknown(proxy, method, args);
        }
    }
}
