package lambdalet.runtime;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A small JSON reader and writer, so the runtime needs nothing beyond the JDK.
 *
 * <p>Reading gives {@link LinkedHashMap} for objects, {@link ArrayList} for arrays, and for
 * numbers an {@link Integer}, {@link Long} or {@link BigInteger} when integral (the smallest that
 * fits) and a {@link Double} otherwise, as Jackson does for {@code Object}. Writing takes those
 * plus any {@link Number}, {@link Collection} or {@link Map}; other objects (arrays, enums,
 * records, beans) are first described by {@link Marshal#describe}.
 */
final class Json {
    /** Deeper nesting than this is refused rather than risking a stack overflow. */
    static final int MAX_DEPTH = 512;

    private static final char[] HEX = "0123456789abcdef".toCharArray();

    private Json() {}

    /** Parse one JSON value; throws IllegalArgumentException saying where the text is wrong. */
    static Object parse(String text) {
        Reader reader = new Reader(text);
        Object value = reader.value(0);
        reader.skipWhitespace();
        if (reader.position < text.length()) {
            throw reader.error("Unexpected character after the JSON value");
        }
        return value;
    }

    /** The JSON text of a value; throws IllegalArgumentException for what JSON cannot hold. */
    static String write(Object value) {
        StringBuilder out = new StringBuilder();
        write(out, value, 0);
        return out.toString();
    }

    private static void write(StringBuilder out, Object value, int depth) {
        if (depth > MAX_DEPTH) {
            throw new IllegalArgumentException(
                    "Value nested more than " + MAX_DEPTH
                            + " levels deep (does it refer to itself?)");
        }
        if (value == null) {
            out.append("null");
        } else if (value instanceof String string) {
            quote(out, string);
        } else if (value instanceof Boolean) {
            out.append(value);
        } else if (value instanceof Double || value instanceof Float) {
            double number = ((Number) value).doubleValue();
            if (Double.isNaN(number) || Double.isInfinite(number)) {
                throw new IllegalArgumentException(value + " is not a JSON number");
            }
            out.append(value);
        } else if (value instanceof BigDecimal decimal) {
            out.append(decimal.toString());
        } else if (value instanceof Number) {
            // Integer, Long, Short, Byte, BigInteger, AtomicLong...: their text is a JSON integer.
            out.append(value);
        } else if (value instanceof Map<?, ?> map) {
            out.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> entry : map.entrySet()) {
                if (!first) {
                    out.append(',');
                }
                first = false;
                quote(out, String.valueOf(entry.getKey()));
                out.append(':');
                write(out, entry.getValue(), depth + 1);
            }
            out.append('}');
        } else if (value instanceof Collection<?> items) {
            out.append('[');
            boolean first = true;
            for (Object item : items) {
                if (!first) {
                    out.append(',');
                }
                first = false;
                write(out, item, depth + 1);
            }
            out.append(']');
        } else {
            write(out, Marshal.describe(value), depth + 1);
        }
    }

    /** Append a JSON string literal; characters beyond ASCII are kept as they are. */
    static void quote(StringBuilder out, String text) {
        out.append('"');
        int start = 0;
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c >= 0x20 && c != '"' && c != '\\') {
                continue;
            }
            out.append(text, start, i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                case '\b' -> out.append("\\b");
                case '\f' -> out.append("\\f");
                default -> out.append("\\u00").append(HEX[c >> 4]).append(HEX[c & 0xf]);
            }
            start = i + 1;
        }
        out.append(text, start, text.length()).append('"');
    }

    /** A recursive-descent reader over the whole text. */
    private static final class Reader {
        private final String text;
        private int position;

        Reader(String text) {
            this.text = text;
        }

        IllegalArgumentException error(String message) {
            return new IllegalArgumentException(message + " at position " + position);
        }

        void skipWhitespace() {
            while (position < text.length()) {
                char c = text.charAt(position);
                if (c != ' ' && c != '\n' && c != '\r' && c != '\t') {
                    return;
                }
                position++;
            }
        }

        Object value(int depth) {
            if (depth > MAX_DEPTH) {
                throw error("JSON nested more than " + MAX_DEPTH + " levels deep");
            }
            skipWhitespace();
            if (position >= text.length()) {
                throw error("Unexpected end of JSON input");
            }
            char c = text.charAt(position);
            return switch (c) {
                case '{' -> object(depth);
                case '[' -> array(depth);
                case '"' -> string();
                case 't' -> word("true", Boolean.TRUE);
                case 'f' -> word("false", Boolean.FALSE);
                case 'n' -> word("null", null);
                default -> {
                    if (c == '-' || (c >= '0' && c <= '9')) {
                        yield number();
                    }
                    throw error("Unexpected character '" + c + "'");
                }
            };
        }

        private Object word(String word, Object value) {
            if (!text.startsWith(word, position)) {
                throw error("Unexpected character '" + text.charAt(position) + "'");
            }
            position += word.length();
            return value;
        }

        private Map<String, Object> object(int depth) {
            Map<String, Object> map = new LinkedHashMap<>();
            position++; // {
            skipWhitespace();
            if (peek() == '}') {
                position++;
                return map;
            }
            while (true) {
                skipWhitespace();
                if (peek() != '"') {
                    throw error("Expected a string as the object key");
                }
                String key = string();
                skipWhitespace();
                if (peek() != ':') {
                    throw error("Expected ':' after an object key");
                }
                position++;
                map.put(key, value(depth + 1));
                skipWhitespace();
                char c = peek();
                position++;
                if (c == '}') {
                    return map;
                }
                if (c != ',') {
                    position--;
                    throw error("Expected ',' or '}' in an object");
                }
            }
        }

        private List<Object> array(int depth) {
            List<Object> list = new ArrayList<>();
            position++; // [
            skipWhitespace();
            if (peek() == ']') {
                position++;
                return list;
            }
            while (true) {
                list.add(value(depth + 1));
                skipWhitespace();
                char c = peek();
                position++;
                if (c == ']') {
                    return list;
                }
                if (c != ',') {
                    position--;
                    throw error("Expected ',' or ']' in an array");
                }
            }
        }

        private char peek() {
            if (position >= text.length()) {
                throw error("Unexpected end of JSON input");
            }
            return text.charAt(position);
        }

        private String string() {
            position++; // opening quote
            int start = position;
            StringBuilder out = null;
            while (true) {
                if (position >= text.length()) {
                    throw error("Unterminated string");
                }
                char c = text.charAt(position);
                if (c == '"') {
                    String tail = text.substring(start, position++);
                    return out == null ? tail : out.append(tail).toString();
                }
                if (c < 0x20) {
                    throw error("Unescaped control character in a string");
                }
                if (c != '\\') {
                    position++;
                    continue;
                }
                if (out == null) {
                    out = new StringBuilder();
                }
                out.append(text, start, position);
                position++;
                if (position >= text.length()) {
                    throw error("Unterminated string");
                }
                char escaped = text.charAt(position++);
                switch (escaped) {
                    case '"', '\\', '/' -> out.append(escaped);
                    case 'n' -> out.append('\n');
                    case 'r' -> out.append('\r');
                    case 't' -> out.append('\t');
                    case 'b' -> out.append('\b');
                    case 'f' -> out.append('\f');
                    case 'u' -> out.append(hexCharacter());
                    default -> {
                        position--;
                        throw error("Invalid escape '\\" + escaped + "'");
                    }
                }
                start = position;
            }
        }

        private char hexCharacter() {
            if (position + 4 > text.length()) {
                throw error("Truncated \\u escape");
            }
            int code = 0;
            for (int i = 0; i < 4; i++) {
                int digit = Character.digit(text.charAt(position), 16);
                if (digit < 0) {
                    throw error("Invalid hex digit in a \\u escape");
                }
                code = code * 16 + digit;
                position++;
            }
            // Surrogate pairs arrive as two escapes and join up in the StringBuilder.
            return (char) code;
        }

        private Number number() {
            int start = position;
            boolean integral = true;
            if (text.charAt(position) == '-') {
                position++;
            }
            if (position < text.length() && text.charAt(position) == '0') {
                position++;
            } else if (!digits()) {
                throw error("Invalid number");
            }
            if (position < text.length() && text.charAt(position) == '.') {
                integral = false;
                position++;
                if (!digits()) {
                    throw error("Invalid number: digits must follow '.'");
                }
            }
            if (position < text.length() && (text.charAt(position) | 0x20) == 'e') {
                integral = false;
                position++;
                if (position < text.length()
                        && (text.charAt(position) == '+' || text.charAt(position) == '-')) {
                    position++;
                }
                if (!digits()) {
                    throw error("Invalid number: digits must follow the exponent");
                }
            }
            String literal = text.substring(start, position);
            if (!integral) {
                return Double.parseDouble(literal);
            }
            if (literal.length() <= 18) {
                long value = Long.parseLong(literal);
                return value == (int) value ? (Number) (int) value : (Number) value;
            }
            BigInteger big = new BigInteger(literal);
            return big.bitLength() < 64 ? (Number) big.longValue() : (Number) big;
        }

        private boolean digits() {
            int start = position;
            while (position < text.length()) {
                char c = text.charAt(position);
                if (c < '0' || c > '9') {
                    break;
                }
                position++;
            }
            return position > start;
        }
    }
}
