// The Java example function: greets whoever the event names.
package example;

import java.util.Map;

public class Hello {
    private static final String GREETING = System.getenv().getOrDefault("GREETING", "Hello");

    public Map<String, Object> handleRequest(Map<String, Object> event) {
        Object name = event.getOrDefault("name", "world");
        System.out.println("greeting " + name + " from " + System.getenv("AWS_LAMBDA_FUNCTION_NAME"));
        return Map.of("message", GREETING + ", " + name + "!");
    }
}
