package lambdalet.runtime;

import java.lang.reflect.Array;
import java.lang.reflect.Constructor;
import java.lang.reflect.Field;
import java.lang.reflect.GenericArrayType;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.RecordComponent;
import java.lang.reflect.Type;
import java.lang.reflect.TypeVariable;
import java.lang.reflect.WildcardType;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.Date;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.SortedSet;
import java.util.TreeSet;

/**
 * Converts between parsed JSON values and the Java types a handler declares.
 *
 * <p>Input: a JSON value becomes the handler's parameter type: {@code Object} and raw maps and
 * lists as parsed; {@code String}, boxed and primitive numbers, {@code Boolean}, enums (by name),
 * typed collections, maps and arrays, records (by component name) and beans (a public or
 * private no-argument constructor, then public setters or public fields; unknown keys are
 * ignored, as AWS's serializer does). Output: arrays, enums, records and beans become JSON through
 * {@link #describe}, which reads public getters ({@code getX}, {@code isX}) and public fields.
 */
final class Marshal {
    private Marshal() {}

    /** The JSON value {@code json} as an instance of {@code type}. */
    static Object toJava(Object json, Type type) {
        Class<?> raw = rawClass(type);
        if (json == null) {
            if (raw.isPrimitive()) {
                throw new IllegalArgumentException("null cannot be a " + raw.getName());
            }
            return raw == Optional.class ? Optional.empty() : null;
        }
        if (raw == Object.class || (raw.isInstance(json) && isUntyped(type))) {
            return json;
        }
        if (raw == String.class || raw == CharSequence.class) {
            if (json instanceof String || json instanceof Number || json instanceof Boolean) {
                return json.toString();
            }
            throw mismatch(json, raw);
        }
        if (raw == boolean.class || raw == Boolean.class) {
            if (json instanceof Boolean) {
                return json;
            }
            if ("true".equals(json) || "false".equals(json)) {
                return Boolean.valueOf((String) json);
            }
            throw mismatch(json, raw);
        }
        if (raw == char.class || raw == Character.class) {
            if (json instanceof String text && text.length() == 1) {
                return text.charAt(0);
            }
            throw mismatch(json, raw);
        }
        if (raw.isPrimitive() || Number.class.isAssignableFrom(raw)) {
            return number(json, raw);
        }
        if (raw.isEnum()) {
            if (json instanceof String name) {
                for (Object constant : raw.getEnumConstants()) {
                    if (((Enum<?>) constant).name().equals(name)) {
                        return constant;
                    }
                }
                throw new IllegalArgumentException(
                        "\"" + name + "\" is not one of the constants of " + raw.getName());
            }
            throw mismatch(json, raw);
        }
        if (raw == byte[].class) {
            if (json instanceof String text) {
                return Base64.getDecoder().decode(text);
            }
            throw mismatch(json, raw);
        }
        if (raw == Optional.class) {
            return Optional.ofNullable(toJava(json, typeArgument(type, 0)));
        }
        if (Map.class.isAssignableFrom(raw)) {
            if (!(json instanceof Map<?, ?> map)) {
                throw mismatch(json, raw);
            }
            Type valueType = typeArgument(type, 1);
            @SuppressWarnings("unchecked")
            Map<Object, Object> result =
                    (Map<Object, Object>) newContainer(raw, LinkedHashMap.class);
            for (Map.Entry<?, ?> entry : map.entrySet()) {
                result.put(entry.getKey(), toJava(entry.getValue(), valueType));
            }
            return result;
        }
        if (Iterable.class.isAssignableFrom(raw)) {
            if (!(json instanceof List<?> list)) {
                throw mismatch(json, raw);
            }
            Type itemType = typeArgument(type, 0);
            Class<?> fallback = SortedSet.class.isAssignableFrom(raw)
                    ? TreeSet.class
                    : Set.class.isAssignableFrom(raw) ? LinkedHashSet.class : ArrayList.class;
            @SuppressWarnings("unchecked")
            Collection<Object> result = (Collection<Object>) newContainer(raw, fallback);
            for (Object item : list) {
                result.add(toJava(item, itemType));
            }
            return result;
        }
        if (raw.isArray()) {
            if (!(json instanceof List<?> list)) {
                throw mismatch(json, raw);
            }
            Type itemType = type instanceof GenericArrayType generic
                    ? generic.getGenericComponentType()
                    : raw.getComponentType();
            Object array = Array.newInstance(raw.getComponentType(), list.size());
            for (int i = 0; i < list.size(); i++) {
                Array.set(array, i, toJava(list.get(i), itemType));
            }
            return array;
        }
        if (!(json instanceof Map<?, ?> map)) {
            throw mismatch(json, raw);
        }
        return raw.isRecord() ? record(map, raw) : bean(map, raw);
    }

    /** A JSON-ready form (Map, List, String, Number...) of an object the writer does not know. */
    static Object describe(Object value) {
        Class<?> type = value.getClass();
        if (value instanceof byte[] bytes) {
            return Base64.getEncoder().encodeToString(bytes);
        }
        if (type.isArray()) {
            int length = Array.getLength(value);
            List<Object> items = new ArrayList<>(length);
            for (int i = 0; i < length; i++) {
                items.add(Array.get(value, i));
            }
            return items;
        }
        if (value instanceof Iterable<?> iterable) {
            List<Object> items = new ArrayList<>();
            for (Object item : iterable) {
                items.add(item);
            }
            return items;
        }
        if (value instanceof Enum<?> constant) {
            return constant.name();
        }
        if (value instanceof Optional<?> optional) {
            return optional.orElse(null);
        }
        if (value instanceof Date date) {
            return date.getTime();
        }
        if (value instanceof CharSequence
                || value instanceof Character
                || type.getName().startsWith("java.")) {
            // UUID, URI, java.time values and the like read best as their text.
            return value.toString();
        }
        if (type.isRecord()) {
            Map<String, Object> fields = new LinkedHashMap<>();
            for (RecordComponent component : type.getRecordComponents()) {
                fields.put(component.getName(), invoke(component.getAccessor(), value));
            }
            return fields;
        }
        return beanProperties(value, type);
    }

    private static Map<String, Object> beanProperties(Object value, Class<?> type) {
        Map<String, Method> getters = new LinkedHashMap<>();
        for (Method method : type.getMethods()) {
            String property = getterProperty(method);
            if (property != null) {
                getters.putIfAbsent(property, method);
            }
        }
        Map<String, Object> properties = new LinkedHashMap<>();
        // Declared fields give a stable order: superclass fields first, in source order.
        List<Class<?>> lineage = new ArrayList<>();
        for (Class<?> c = type; c != null && c != Object.class; c = c.getSuperclass()) {
            lineage.add(0, c);
        }
        for (Class<?> c : lineage) {
            for (Field field : c.getDeclaredFields()) {
                int modifiers = field.getModifiers();
                if (Modifier.isStatic(modifiers) || Modifier.isTransient(modifiers)) {
                    continue;
                }
                String name = propertyName(field.getName());
                Method getter = getters.remove(name);
                if (getter != null) {
                    properties.put(name, invoke(getter, value));
                } else if (Modifier.isPublic(modifiers) && !properties.containsKey(name)) {
                    try {
                        properties.put(name, field.get(value));
                    } catch (IllegalAccessException error) {
                        throw new IllegalArgumentException("Cannot read field " + field, error);
                    }
                }
            }
        }
        for (String name : new TreeSet<>(getters.keySet())) {
            properties.put(name, invoke(getters.get(name), value));
        }
        return properties;
    }

    private static String getterProperty(Method method) {
        if (Modifier.isStatic(method.getModifiers())
                || method.getParameterCount() != 0
                || method.getDeclaringClass() == Object.class
                || method.getReturnType() == void.class) {
            return null;
        }
        String name = method.getName();
        if (name.startsWith("get") && name.length() > 3) {
            return propertyName(name.substring(3));
        }
        if (name.startsWith("is")
                && name.length() > 2
                && (method.getReturnType() == boolean.class
                        || method.getReturnType() == Boolean.class)) {
            return propertyName(name.substring(2));
        }
        return null;
    }

    /** Jackson's property names: the leading capitals go lower case ("URLPath" → "urlpath"). */
    private static String propertyName(String name) {
        int upper = 0;
        while (upper < name.length() && Character.isUpperCase(name.charAt(upper))) {
            upper++;
        }
        return name.substring(0, upper).toLowerCase(java.util.Locale.ROOT) + name.substring(upper);
    }

    private static Object invoke(Method method, Object target) {
        try {
            if (!method.canAccess(target)) {
                method.setAccessible(true);
            }
            return method.invoke(target);
        } catch (ReflectiveOperationException | RuntimeException error) {
            Throwable cause = error.getCause() != null ? error.getCause() : error;
            throw new IllegalArgumentException("Cannot read " + method + ": " + cause, cause);
        }
    }

    private static Object record(Map<?, ?> map, Class<?> type) {
        RecordComponent[] components = type.getRecordComponents();
        Class<?>[] types = new Class<?>[components.length];
        Object[] arguments = new Object[components.length];
        for (int i = 0; i < components.length; i++) {
            types[i] = components[i].getType();
            Object json = map.get(components[i].getName());
            arguments[i] = json == null && types[i].isPrimitive()
                    ? Array.get(Array.newInstance(types[i], 1), 0)
                    : toJava(json, components[i].getGenericType());
        }
        try {
            Constructor<?> constructor = type.getDeclaredConstructor(types);
            constructor.setAccessible(true);
            return constructor.newInstance(arguments);
        } catch (ReflectiveOperationException error) {
            Throwable cause = error.getCause() != null ? error.getCause() : error;
            throw new IllegalArgumentException(
                    "Cannot create " + type.getName() + ": " + cause, cause);
        }
    }

    private static Object bean(Map<?, ?> map, Class<?> type) {
        Object bean;
        try {
            Constructor<?> constructor = type.getDeclaredConstructor();
            constructor.setAccessible(true);
            bean = constructor.newInstance();
        } catch (ReflectiveOperationException error) {
            Throwable cause = error.getCause() != null ? error.getCause() : error;
            throw new IllegalArgumentException(
                    "Cannot create " + type.getName()
                            + " (it needs a no-argument constructor): " + cause,
                    cause);
        }
        Map<String, Method> setters = new LinkedHashMap<>();
        for (Method method : type.getMethods()) {
            String name = method.getName();
            if (name.startsWith("set")
                    && name.length() > 3
                    && method.getParameterCount() == 1
                    && !Modifier.isStatic(method.getModifiers())) {
                setters.putIfAbsent(propertyName(name.substring(3)), method);
            }
        }
        for (Map.Entry<?, ?> entry : map.entrySet()) {
            String key = String.valueOf(entry.getKey());
            String property = propertyName(key);
            try {
                Method setter = setters.get(property);
                if (setter != null) {
                    Type parameter = setter.getGenericParameterTypes()[0];
                    setter.invoke(bean, toJava(entry.getValue(), parameter));
                    continue;
                }
                Field field = publicField(type, key);
                if (field != null) {
                    field.set(bean, toJava(entry.getValue(), field.getGenericType()));
                }
            } catch (ReflectiveOperationException error) {
                Throwable cause = error.getCause() != null ? error.getCause() : error;
                throw new IllegalArgumentException(
                        "Cannot set " + key + " on " + type.getName() + ": " + cause, cause);
            }
        }
        return bean;
    }

    private static Field publicField(Class<?> type, String name) {
        try {
            Field field = type.getField(name);
            int modifiers = field.getModifiers();
            return Modifier.isStatic(modifiers) || Modifier.isFinal(modifiers) ? null : field;
        } catch (NoSuchFieldException missing) {
            return null;
        }
    }

    private static Object number(Object json, Class<?> raw) {
        Number number;
        if (json instanceof Number given) {
            number = given;
        } else if (json instanceof String text) {
            try {
                number = new BigDecimal(text.trim());
            } catch (NumberFormatException error) {
                throw mismatch(json, raw);
            }
        } else {
            throw mismatch(json, raw);
        }
        if (raw == int.class || raw == Integer.class) {
            return (int) integral(number, Integer.MIN_VALUE, Integer.MAX_VALUE, raw);
        }
        if (raw == long.class || raw == Long.class) {
            return integral(number, Long.MIN_VALUE, Long.MAX_VALUE, raw);
        }
        if (raw == short.class || raw == Short.class) {
            return (short) integral(number, Short.MIN_VALUE, Short.MAX_VALUE, raw);
        }
        if (raw == byte.class || raw == Byte.class) {
            return (byte) integral(number, Byte.MIN_VALUE, Byte.MAX_VALUE, raw);
        }
        if (raw == double.class || raw == Double.class) {
            return number.doubleValue();
        }
        if (raw == float.class || raw == Float.class) {
            return number.floatValue();
        }
        if (raw == BigDecimal.class) {
            return decimal(number);
        }
        if (raw == BigInteger.class) {
            return number instanceof BigInteger big ? big : decimal(number).toBigInteger();
        }
        if (raw.isInstance(number)) {
            return number; // Number itself
        }
        throw mismatch(json, raw);
    }

    private static long integral(Number number, long min, long max, Class<?> raw) {
        BigInteger whole = decimal(number).toBigInteger(); // fractions are cut, as Jackson does
        if (whole.compareTo(BigInteger.valueOf(min)) < 0
                || whole.compareTo(BigInteger.valueOf(max)) > 0) {
            throw new IllegalArgumentException(number + " is out of range for " + raw.getName());
        }
        return whole.longValue();
    }

    private static Object newContainer(Class<?> raw, Class<?> fallback) {
        boolean abstractType = raw.isInterface() || Modifier.isAbstract(raw.getModifiers());
        Class<?> chosen = abstractType ? fallback : raw;
        if (!raw.isAssignableFrom(chosen)) {
            throw new IllegalArgumentException("Cannot create a " + raw.getName());
        }
        try {
            return chosen.getDeclaredConstructor().newInstance();
        } catch (ReflectiveOperationException error) {
            throw new IllegalArgumentException(
                    "Cannot create a " + raw.getName() + ": " + error, error);
        }
    }

    private static BigDecimal decimal(Number number) {
        return number instanceof BigDecimal decimal ? decimal : new BigDecimal(number.toString());
    }

    private static IllegalArgumentException mismatch(Object json, Class<?> raw) {
        return new IllegalArgumentException(
                "Cannot read a JSON " + jsonKind(json) + " as " + raw.getTypeName());
    }

    private static String jsonKind(Object json) {
        if (json instanceof Map) {
            return "object";
        }
        if (json instanceof List) {
            return "array";
        }
        if (json instanceof String) {
            return "string";
        }
        if (json instanceof Boolean) {
            return "boolean";
        }
        return "number";
    }

    /** Whether a type says nothing about its contents (Map, Map<String, Object>, List<?>...). */
    private static boolean isUntyped(Type type) {
        if (type instanceof Class<?> c) {
            return !c.isArray();
        }
        if (type instanceof ParameterizedType parameterized) {
            Type[] arguments = parameterized.getActualTypeArguments();
            boolean isMap = Map.class.isAssignableFrom(rawClass(type));
            for (int i = 0; i < arguments.length; i++) {
                boolean stringKey = isMap && i == 0 && arguments[i] == String.class;
                if (!stringKey && rawClass(arguments[i]) != Object.class) {
                    return false;
                }
            }
            return true;
        }
        return false;
    }

    /** The class a (possibly generic) type erases to. */
    static Class<?> rawClass(Type type) {
        if (type instanceof Class<?> c) {
            return c;
        }
        if (type instanceof ParameterizedType parameterized) {
            return rawClass(parameterized.getRawType());
        }
        if (type instanceof GenericArrayType array) {
            return Array.newInstance(rawClass(array.getGenericComponentType()), 0).getClass();
        }
        if (type instanceof WildcardType wildcard) {
            return rawClass(wildcard.getUpperBounds()[0]);
        }
        if (type instanceof TypeVariable<?> variable) {
            return rawClass(variable.getBounds()[0]);
        }
        return Object.class;
    }

    private static Type typeArgument(Type type, int index) {
        if (type instanceof ParameterizedType parameterized) {
            Type[] arguments = parameterized.getActualTypeArguments();
            if (index < arguments.length) {
                return arguments[index];
            }
        }
        return Object.class;
    }
}
