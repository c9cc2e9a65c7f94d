package lambdalet.runtime;

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A training run for Class Data Sharing: the runtime's whole path, against a scripted Runtime API.
 *
 * <p>{@code java -XX:ArchiveClassesAtExit=bootstrap.jsa ... lambdalet.runtime.Bootstrap
 * --train-cds} loads the handler, parses and writes JSON, calls handlers of both shapes, reports
 * an error and an init error over HTTP, then exits; the JVM then archives every class that was
 * loaded, so a real sandbox maps them instead of loading and verifying them again.
 */
public final class Training {
    private static final String[] EVENTS = {
        "{\"train\": [1, 2.5, -3e2, 12345678901, \"caf\\u00e9\\n\", true, false, null],"
                + " \"n\": {\"a\": []}}",
        "{\"fail\": true}",
        "{\"stream\": true}",
    };

    private final Deque<String> events = new ArrayDeque<>();
    private ServerSocket server;
    private volatile Socket connection;
    private int calls;

    /** A value of the shape handlers return: read through its getters. */
    public static final class Sample {
        private final String name;
        private final int count;

        Sample(String name, int count) {
            this.name = name;
            this.count = count;
        }

        public String getName() {
            return name;
        }

        public int getCount() {
            return count;
        }

        public boolean isTrained() {
            return true;
        }
    }

    /** A record, the other way handlers shape values. */
    public record Pair(String key, List<Integer> values) {}

    /** The training handler: a POJO-style handler with lambdalet's Context. */
    public Map<String, Object> handleRequest(Map<String, Object> event, Context context) {
        calls++;
        if (Boolean.TRUE.equals(event.get("fail"))) {
            throw new IllegalStateException("a training failure");
        }
        context.getLogger().log("training call " + calls);
        System.out.println("training " + context.getAwsRequestId());
        Map<String, Object> result = new LinkedHashMap<>();
        result.put("event", event);
        result.put("remaining", context.getRemainingTimeInMillis());
        result.put("client", context.getClientContext());
        result.put("identity", context.getIdentity());
        result.put("sample", new Sample(context.getFunctionName(), calls));
        Object pair = Json.parse("{\"key\": \"k\", \"values\": [1, 2]}");
        result.put("pair", Marshal.toJava(pair, Pair.class));
        result.put("bytes", new byte[] {1, 2, 3});
        result.put("array", new int[] {1, 2});
        return result;
    }

    /** The training stream handler. */
    public static void stream(InputStream input, OutputStream output, Context context)
            throws IOException {
        output.write(input.readAllBytes());
    }

    /** Serve the scripted invocations, then return (the JVM writes its archive as it exits). */
    @SuppressWarnings("try") // the server closes early, on purpose, before the thread is joined
    static void run() throws Exception {
        Bootstrap.useUtf8Output();
        Training api = new Training();
        for (String event : EVENTS) {
            api.events.add(event);
        }
        try (ServerSocket server = new ServerSocket(0, 8, InetAddress.getLoopbackAddress())) {
            api.server = server;
            Thread thread = new Thread(new Runnable() {
                @Override
                public void run() {
                    api.serve();
                }
            }, "lambdalet-training-api");
            thread.setDaemon(true);
            thread.start();
            String address = server.getInetAddress().getHostAddress() + ":" + server.getLocalPort();
            FunctionInfo function =
                    new FunctionInfo("training", "$LATEST", 128, "/aws/lambda/training", "x");
            Bootstrap bootstrap = new Bootstrap(new RuntimeApi(address), function);
            bootstrap.load("lambdalet.runtime.NoSuchHandler");
            bootstrap.load("lambdalet.runtime.Training::nothing");
            bootstrap.serve(bootstrap.load("lambdalet.runtime.Training::handleRequest"), 2);
            bootstrap.serve(bootstrap.load("lambdalet.runtime.Training::stream"), 1);
            // A thread blocked in a socket call would hold the JVM's exit up for 300 ms.
            server.close();
            Socket connection = api.connection;
            if (connection != null) {
                connection.close();
            }
            thread.join(5_000);
        }
        Bootstrap.flushOutput();
    }

    private void serve() {
        int served = 0;
        while (!server.isClosed()) {
            try (Socket socket = server.accept()) {
                connection = socket;
                InputStream in = new BufferedInputStream(socket.getInputStream());
                OutputStream out = socket.getOutputStream();
                String requestLine;
                while ((requestLine = readLine(in)) != null && !requestLine.isEmpty()) {
                    int length = 0;
                    String line;
                    while ((line = readLine(in)) != null && !line.isEmpty()) {
                        if (line.regionMatches(true, 0, "Content-Length:", 0, 15)) {
                            length = Integer.parseInt(line.substring(15).trim());
                        }
                    }
                    in.readNBytes(length);
                    String event = requestLine.startsWith("GET ") ? events.poll() : null;
                    StringBuilder head = new StringBuilder();
                    byte[] body;
                    if (event != null) {
                        served++;
                        body = event.getBytes(StandardCharsets.UTF_8);
                        head.append("HTTP/1.1 200 OK\r\n")
                                .append("Lambda-Runtime-Aws-Request-Id: training-")
                                .append(served).append("\r\n")
                                .append("Lambda-Runtime-Deadline-Ms: ")
                                .append(System.currentTimeMillis() + 60_000).append("\r\n")
                                .append("Lambda-Runtime-Invoked-Function-Arn: ")
                                .append("arn:aws:lambda:us-east-1:000000000000:function:training")
                                .append("\r\nLambda-Runtime-Trace-Id: ")
                                .append("Root=1-00000000-000000000000000000000000\r\n")
                                .append("Lambda-Runtime-Client-Context: {\"custom\": {}}\r\n")
                                .append("Lambda-Runtime-Cognito-Identity: {\"a\": 1}\r\n");
                    } else {
                        body = "{\"status\":\"OK\"}".getBytes(StandardCharsets.UTF_8);
                        head.append("HTTP/1.1 202 Accepted\r\n");
                    }
                    head.append("Content-Type: application/json\r\nContent-Length: ")
                            .append(body.length).append("\r\n\r\n");
                    ByteArrayOutputStream response = new ByteArrayOutputStream();
                    response.write(head.toString().getBytes(StandardCharsets.ISO_8859_1));
                    response.write(body);
                    response.writeTo(out); // one write: no wait on Nagle's algorithm
                    out.flush();
                }
            } catch (IOException closed) {
                return;
            }
        }
    }

    private static String readLine(InputStream in) throws IOException {
        ByteArrayOutputStream line = new ByteArrayOutputStream();
        int b;
        while ((b = in.read()) != -1 && b != '\n') {
            if (b != '\r') {
                line.write(b);
            }
        }
        return b == -1 && line.size() == 0 ? null : line.toString(StandardCharsets.ISO_8859_1);
    }
}
