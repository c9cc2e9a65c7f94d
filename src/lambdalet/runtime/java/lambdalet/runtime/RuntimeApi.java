package lambdalet.runtime;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;

/**
 * A client of the Lambda Runtime API ({@code AWS_LAMBDA_RUNTIME_API}): HTTP/1.1 over one
 * kept-alive socket.
 *
 * <p>Written on {@link Socket} rather than {@code HttpURLConnection} or {@code HttpClient}: their
 * set-up (URL handler providers, net.properties, proxies, lambdas and method handles) cost about
 * 25 ms of every cold start, and neither sets {@code TCP_NODELAY}, so a request written in two
 * parts could wait 40 ms for a delayed ACK. Requests carry {@code Content-Length}; responses may
 * use {@code Content-Length} or chunked encoding, or end with the connection.
 */
final class RuntimeApi {
    private static final String PREFIX = "/2018-06-01/runtime";
    private static final int BUFFER_BYTES = 64 * 1024;

    private final String address;
    private final String host;
    private final int port;
    private Socket socket;
    private InputStream in;
    private OutputStream out;

    RuntimeApi(String address) {
        int colon = address.lastIndexOf(':');
        if (colon < 0) {
            throw new IllegalArgumentException(
                    "AWS_LAMBDA_RUNTIME_API must be host:port, not " + address);
        }
        this.address = address;
        this.host = address.substring(0, colon);
        this.port = Integer.parseInt(address.substring(colon + 1));
    }

    /** Wait (as long as it takes) for the next invocation. */
    Invocation next() throws IOException {
        Response response = exchange("GET", PREFIX + "/invocation/next", null, null);
        if (response.status != 200) {
            throw new IOException("GET /invocation/next answered " + response.status + ": "
                    + new String(response.body, StandardCharsets.UTF_8));
        }
        String deadline = response.header("lambda-runtime-deadline-ms");
        long deadlineUnixMs = 0L;
        if (deadline != null) {
            try {
                deadlineUnixMs = Long.parseLong(deadline);
            } catch (NumberFormatException malformed) {
                deadlineUnixMs = 0L;
            }
        }
        String requestId = response.header("lambda-runtime-aws-request-id");
        String arn = response.header("lambda-runtime-invoked-function-arn");
        return new Invocation(
                requestId == null ? "" : requestId,
                deadlineUnixMs,
                arn == null ? "" : arn,
                response.header("lambda-runtime-trace-id"),
                response.header("lambda-runtime-client-context"),
                response.header("lambda-runtime-cognito-identity"),
                response.body);
    }

    /** Post a handler's result. */
    void respond(String requestId, byte[] body) throws IOException {
        post(PREFIX + "/invocation/" + requestId + "/response", body, null);
    }

    /** Post an invocation's error ({@code errorMessage}, {@code errorType}, {@code stackTrace}). */
    void fail(String requestId, String errorType, byte[] body) throws IOException {
        post(PREFIX + "/invocation/" + requestId + "/error", body, errorType);
    }

    /** Post the error that stopped the runtime from loading the handler. */
    void failInit(String errorType, byte[] body) throws IOException {
        post(PREFIX + "/init/error", body, errorType);
    }

    private void post(String path, byte[] body, String errorType) throws IOException {
        Response response = exchange("POST", path, body, errorType);
        if (response.status >= 300) {
            // The host has already settled the invocation (a response over 6 MB, say): say so and
            // go on to the next one, as AWS's runtimes do.
            System.err.println("lambdalet runtime: POST " + path + " answered " + response.status
                    + ": " + new String(response.body, StandardCharsets.UTF_8));
        }
    }

    private Response exchange(String method, String path, byte[] body, String errorType)
            throws IOException {
        StringBuilder head = new StringBuilder(256)
                .append(method).append(' ').append(path).append(" HTTP/1.1\r\n")
                .append("Host: ").append(address).append("\r\n")
                .append("User-Agent: lambdalet-java-runtime\r\n");
        if (body != null) {
            head.append("Content-Type: application/json\r\n")
                    .append("Content-Length: ").append(body.length).append("\r\n");
        }
        if (errorType != null) {
            head.append("Lambda-Runtime-Function-Error-Type: ").append(errorType).append("\r\n");
        }
        byte[] request = head.append("\r\n").toString().getBytes(StandardCharsets.ISO_8859_1);
        boolean reused = socket != null;
        try {
            return send(request, body);
        } catch (StaleConnection stale) {
            // The host closed the kept-alive connection before reading this request: nothing was
            // processed, so it is safe to send it again on a new one.
            close();
            if (!reused) {
                throw stale;
            }
            return send(request, body);
        } catch (IOException error) {
            close();
            throw error;
        }
    }

    private Response send(byte[] request, byte[] body) throws IOException {
        if (socket == null) {
            Socket fresh = new Socket();
            fresh.setTcpNoDelay(true);
            fresh.connect(new InetSocketAddress(host, port));
            socket = fresh;
            in = new BufferedInputStream(fresh.getInputStream(), BUFFER_BYTES);
            out = new BufferedOutputStream(fresh.getOutputStream(), BUFFER_BYTES);
        }
        try {
            out.write(request);
            if (body != null) {
                out.write(body);
            }
            out.flush();
        } catch (IOException closed) {
            throw new StaleConnection(closed.toString());
        }
        Response response = read();
        if (response.endedWithConnection
                || "close".equalsIgnoreCase(response.header("connection"))) {
            close();
        }
        return response;
    }

    private Response read() throws IOException {
        String statusLine = readLine();
        if (statusLine == null) {
            throw new StaleConnection("the Runtime API closed the connection");
        }
        // HTTP/1.1 202 Accepted
        int space = statusLine.indexOf(' ');
        int status;
        try {
            int end = statusLine.indexOf(' ', space + 1);
            String code = statusLine.substring(space + 1, end < 0 ? statusLine.length() : end);
            status = Integer.parseInt(code);
        } catch (RuntimeException malformed) {
            throw new IOException("Malformed status line from the Runtime API: " + statusLine);
        }
        Map<String, String> headers = new HashMap<>();
        String line;
        while ((line = readLine()) != null && !line.isEmpty()) {
            int colon = line.indexOf(':');
            if (colon > 0) {
                String name = line.substring(0, colon).trim().toLowerCase(Locale.ROOT);
                headers.put(name, line.substring(colon + 1).trim());
            }
        }
        if (line == null) {
            throw new EOFException("The Runtime API closed the connection in the headers");
        }
        String length = headers.get("content-length");
        String encoding = headers.get("transfer-encoding");
        byte[] body;
        boolean endedWithConnection = false;
        if (encoding != null && encoding.toLowerCase(Locale.ROOT).contains("chunked")) {
            body = readChunked();
        } else if (length != null) {
            body = readExactly(Integer.parseInt(length));
        } else if (status == 204 || status == 304 || status / 100 == 1) {
            body = new byte[0];
        } else {
            body = in.readAllBytes();
            endedWithConnection = true;
        }
        return new Response(status, headers, body, endedWithConnection);
    }

    private byte[] readChunked() throws IOException {
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        while (true) {
            String sizeLine = readLine();
            if (sizeLine == null) {
                throw new EOFException("The Runtime API closed the connection in a chunked body");
            }
            int semicolon = sizeLine.indexOf(';');
            String hex = semicolon < 0 ? sizeLine : sizeLine.substring(0, semicolon);
            int size = Integer.parseInt(hex.trim(), 16);
            if (size == 0) {
                String trailer;
                while ((trailer = readLine()) != null && !trailer.isEmpty()) {
                    // trailers are not used by the Runtime API
                }
                return body.toByteArray();
            }
            body.write(readExactly(size));
            readLine(); // the CRLF after the chunk
        }
    }

    private byte[] readExactly(int length) throws IOException {
        byte[] bytes = in.readNBytes(length);
        if (bytes.length != length) {
            throw new EOFException("The Runtime API closed the connection in a body");
        }
        return bytes;
    }

    /** A CRLF- (or LF-) terminated line; null at the end of the stream before any byte. */
    private String readLine() throws IOException {
        ByteArrayOutputStream line = new ByteArrayOutputStream(128);
        int b;
        while ((b = in.read()) != -1) {
            if (b == '\n') {
                return line.toString(StandardCharsets.ISO_8859_1);
            }
            if (b != '\r') {
                line.write(b);
            }
        }
        if (line.size() == 0) {
            return null;
        }
        throw new EOFException("The Runtime API closed the connection in the middle of a line");
    }

    private void close() {
        Socket current = socket;
        socket = null;
        in = null;
        out = null;
        if (current != null) {
            try {
                current.close();
            } catch (IOException ignored) {
                // closing a broken connection: nothing left to do
            }
        }
    }

    /** The connection was closed before any of the response arrived. */
    private static final class StaleConnection extends IOException {
        private static final long serialVersionUID = 1L;

        StaleConnection(String message) {
            super(message);
        }
    }

    /** One HTTP response, its header names in lower case. */
    private static final class Response {
        final int status;
        final Map<String, String> headers;
        final byte[] body;
        final boolean endedWithConnection;

        Response(
                int status, Map<String, String> headers, byte[] body, boolean endedWithConnection) {
            this.status = status;
            this.headers = headers;
            this.body = body;
            this.endedWithConnection = endedWithConnection;
        }

        String header(String name) {
            return headers.get(name);
        }
    }
}
