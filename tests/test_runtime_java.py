"""lambdalet's Java runtime (``runtime/java/``) through boto3 on a real node.

Handlers are compiled here with the machine's ``javac`` (classes at the zip root, or jars in
``lib/`` built with ``jar``) and run by both Java runtime ids; these tests check the runtime
behaves as AWS's java17/java21 runtimes do: handler shapes, JSON in and out, the context object
(lambdalet's own and AWS's interface, here a hand-written stand-in of aws-lambda-java-core),
logs, errors and their AWS names, init errors and timeouts.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from lambdalet.runtime import java
from lambdalet.testing import Deploy, invoke, make_zip, tail

pytestmark = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in ("java", "javac", "jar")),
    reason="the Java runtimes need a JDK (java, javac, jar) on PATH",
)

JAVA_RUNTIMES = ("java17", "java21")
REQUEST_ID = r"[0-9a-f-]{36}"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

HELLO = """
package example;

import java.io.BufferedOutputStream;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.util.LinkedHashMap;
import java.util.Map;
import lambdalet.runtime.Context;

public class Hello {
    private static int instances;
    private int calls;

    public Hello() {
        instances++;
    }

    public Map<String, Object> handleRequest(Map<String, Object> event, Context context) {
        calls++;
        System.out.println("event " + event);
        System.err.println("on stderr: caf\\u00e9");
        context.getLogger().log("logger line " + calls);
        Map<String, Object> result = new LinkedHashMap<>();
        result.put("calls", calls);
        result.put("instances", instances);
        result.put("event", event);
        result.put("functionName", context.getFunctionName());
        result.put("functionVersion", context.getFunctionVersion());
        result.put("invokedFunctionArn", context.getInvokedFunctionArn());
        result.put("memoryLimitInMB", context.getMemoryLimitInMB());
        result.put("awsRequestId", context.getAwsRequestId());
        result.put("logGroupName", context.getLogGroupName());
        result.put("logStreamName", context.getLogStreamName());
        result.put("remainingMs", context.getRemainingTimeInMillis());
        result.put("clientContext", context.getClientContext());
        result.put("identity", context.getIdentity());
        Map<String, String> env = new LinkedHashMap<>();
        for (String key : new String[] {
                "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "LAMBDA_TASK_ROOT",
                "AWS_REGION", "_HANDLER", "GREETING", "AWS_EXECUTION_ENV"}) {
            env.put(key, System.getenv(key));
        }
        result.put("env", env);
        result.put("cwd", System.getProperty("user.dir"));
        result.put("trace", System.getProperty("com.amazonaws.xray.traceHeader"));
        result.put("charset", java.nio.charset.Charset.defaultCharset().name());
        return result;
    }

    public String greet(String name) {
        System.out.println("greeting " + name);
        return "Hello, " + name + "!";
    }

    public static long square(int n) {
        return (long) n * n;
    }

    public String buffered(String text) {
        // A stream that only writes when flushed, as some logging set-ups install.
        System.setOut(new PrintStream(
                new BufferedOutputStream(new FileOutputStream(FileDescriptor.out), 65536), false));
        System.out.println("buffered " + text);
        return text;
    }

    public String big(int length) {
        return "x".repeat(length);
    }

    public void count(byte[] payload, Context context) {
        System.out.println("got " + payload.length + " bytes for " + context.getAwsRequestId());
    }
}
"""

ORDERS = """
package example;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

public class Orders {
    public enum Status { ACCEPTED, REJECTED }

    public static class Item {
        private String sku;
        private int quantity;

        public String getSku() { return sku; }
        public void setSku(String sku) { this.sku = sku; }
        public int getQuantity() { return quantity; }
        public void setQuantity(int quantity) { this.quantity = quantity; }
    }

    public static class Order {
        public String id;
        public Map<String, Double> prices;
        private List<Item> items = new ArrayList<>();
        private boolean rush;

        public List<Item> getItems() { return items; }
        public void setItems(List<Item> items) { this.items = items; }
        public boolean isRush() { return rush; }
        public void setRush(boolean rush) { this.rush = rush; }
    }

    public record Receipt(
            String orderId, int units, List<String> skus, double total, Status status) {}

    public static class Summary {
        public final String note = "public field";
        private final Receipt receipt;
        private final boolean rush;

        Summary(Receipt receipt, boolean rush) {
            this.receipt = receipt;
            this.rush = rush;
        }

        public Receipt getReceipt() { return receipt; }
        public boolean isRush() { return rush; }
        public String getURLPath() { return "/orders/" + receipt.orderId(); }
    }

    public Summary handleRequest(Order order) {
        int units = 0;
        double total = 0;
        List<String> skus = new ArrayList<>();
        for (Item item : order.getItems()) {
            units += item.getQuantity();
            total += item.getQuantity() * order.prices.get(item.getSku());
            skus.add(item.getSku());
        }
        Status status = units > 0 ? Status.ACCEPTED : Status.REJECTED;
        return new Summary(new Receipt(order.id, units, skus, total, status), order.isRush());
    }

    public long sum(List<Long> numbers) {
        long total = 0;
        for (long number : numbers) {
            total += number;
        }
        return total;
    }

    public List<Object> cyclic(Map<String, Object> event) {
        List<Object> list = new ArrayList<>();
        list.add(list);
        return list;
    }
}
"""

STREAMS = """
package example;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import lambdalet.runtime.Context;

public class Streams {
    public void handleRequest(InputStream input, OutputStream output, Context context)
            throws IOException {
        String text = new String(input.readAllBytes(), StandardCharsets.UTF_8);
        String answer = "{\\"upper\\": " + text.toUpperCase() + ", \\"id\\": \\""
                + context.getAwsRequestId() + "\\"}";
        output.write(answer.getBytes(StandardCharsets.UTF_8));
    }
}
"""

FAIL = """
package example;

import java.util.Map;

public class Fail {
    public static class OrderException extends RuntimeException {
        public OrderException(String message) {
            super(message);
        }
    }

    private int calls;

    public int handleRequest(Map<String, Object> event) {
        calls++;
        System.out.println("about to fail, call " + calls);
        if (event.containsKey("ok")) {
            return calls;
        }
        if (event.containsKey("npe")) {
            throw new NullPointerException();
        }
        throw new OrderException("order 42 is missing");
    }
}
"""

SLEEPY = """
package example;

import java.util.Map;

public class Sleepy {
    public long handleRequest(Map<String, Object> event) throws InterruptedException {
        if (event.containsKey("sleep")) {
            System.out.println("sleeping");
            Thread.sleep(30_000);
        }
        return ProcessHandle.current().pid();
    }
}
"""

BAD_CONSTRUCTOR = """
package example;

public class BadConstructor {
    public BadConstructor() {
        throw new IllegalStateException("bad config");
    }

    public String handleRequest(String input) {
        return input;
    }
}
"""

BAD_STATIC = """
package example;

public class BadStatic {
    static final int LIMIT = Integer.parseInt("not a number");

    public static int handleRequest(int n) {
        return n + LIMIT;
    }
}
"""

SHOUTER = """
package example.lib;

public final class Shouter {
    private Shouter() {}

    public static String shout(String text) {
        return text.toUpperCase() + "!";
    }
}
"""

JAR_HANDLER = """
package example;

import example.lib.Shouter;

public class JarHandler {
    public String handleRequest(String text) {
        return Shouter.shout(text);
    }
}
"""

# A hand-written stand-in for the interfaces of aws-lambda-java-core (same names and methods):
# a user compiles against the real jar and ships it in lib/, as these tests ship this one.
AWS_CORE = {
    "Context": """
import com.amazonaws.services.lambda.runtime.CognitoIdentity;

public interface Context {
    String getAwsRequestId();
    String getLogGroupName();
    String getLogStreamName();
    String getFunctionName();
    String getFunctionVersion();
    String getInvokedFunctionArn();
    CognitoIdentity getIdentity();
    ClientContext getClientContext();
    int getRemainingTimeInMillis();
    int getMemoryLimitInMB();
    LambdaLogger getLogger();
    default String getXrayTraceId() { return null; }
    default String getTenantId() { return null; }
}
""",
    "LambdaLogger": """
public interface LambdaLogger {
    void log(String message);
    void log(byte[] message);
}
""",
    "ClientContext": """
import java.util.Map;

public interface ClientContext {
    Client getClient();
    Map<String, String> getCustom();
    Map<String, String> getEnvironment();
}
""",
    "Client": """
public interface Client {
    String getInstallationId();
    String getAppTitle();
    String getAppVersionName();
    String getAppVersionCode();
    String getAppPackageName();
}
""",
    "CognitoIdentity": """
public interface CognitoIdentity {
    String getIdentityId();
    String getIdentityPoolId();
}
""",
    "RequestHandler": """
public interface RequestHandler<I, O> {
    O handleRequest(I input, Context context);
}
""",
}

AWS_STYLE = """
package example;

import com.amazonaws.services.lambda.runtime.ClientContext;
import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.LambdaLogger;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;

public class AwsStyle implements RequestHandler<Map<String, Object>, Map<String, Object>> {
    private int calls;

    @Override
    public Map<String, Object> handleRequest(Map<String, Object> event, Context context) {
        calls++;
        LambdaLogger logger = context.getLogger();
        logger.log("aws logger line");
        logger.log("aws bytes line".getBytes(StandardCharsets.UTF_8));
        ClientContext client = context.getClientContext();
        Map<String, Object> result = new LinkedHashMap<>();
        result.put("calls", calls);
        result.put("event", event);
        result.put("awsRequestId", context.getAwsRequestId());
        result.put("functionName", context.getFunctionName());
        result.put("functionVersion", context.getFunctionVersion());
        result.put("invokedFunctionArn", context.getInvokedFunctionArn());
        result.put("memoryLimitInMB", context.getMemoryLimitInMB());
        result.put("logGroupName", context.getLogGroupName());
        result.put("remainingMs", context.getRemainingTimeInMillis());
        result.put("identity", context.getIdentity());
        result.put("custom", client == null ? null : client.getCustom());
        result.put("environment", client == null ? null : client.getEnvironment());
        result.put("appTitle", client == null ? null : client.getClient().getAppTitle());
        result.put("trace", context.getXrayTraceId());
        return result;
    }
}
"""


def javac(
    out_dir: Path, sources: dict[str, str], classpath: Iterable[Path] = (), sourcepath: str = ""
) -> Path:
    """Compile ``sources`` (path under the source root → text) into ``out_dir``."""
    source_root = out_dir.with_name(out_dir.name + "-src")
    paths = []
    for relative, text in sources.items():
        path = source_root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        paths.append(str(path))
    argv = ["javac", "-d", str(out_dir)]
    if classpath:
        argv += ["-cp", ":".join(map(str, classpath))]
    if sourcepath:
        # Compile against lambdalet.runtime.Context without emitting its classes.
        argv += ["-sourcepath", sourcepath, "-implicit:none"]
    result = subprocess.run([*argv, *paths], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return out_dir


def jar(path: Path, classes: Path) -> bytes:
    """Build a jar of the ``classes`` directory with the JDK's ``jar`` tool."""
    result = subprocess.run(
        ["jar", "--create", "--file", str(path), "-C", str(classes), "."],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return path.read_bytes()


def tree(directory: Path) -> dict[str, str | bytes]:
    """The files under ``directory``, keyed by their path inside it, for a function zip."""
    return {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def plain_classes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str | bytes]:
    """The example handlers compiled against lambdalet's Context: classes at the zip root."""
    out = tmp_path_factory.mktemp("java") / "classes"
    sources = {
        "example/Hello.java": HELLO,
        "example/Orders.java": ORDERS,
        "example/Streams.java": STREAMS,
        "example/Fail.java": FAIL,
        "example/Sleepy.java": SLEEPY,
        "example/BadConstructor.java": BAD_CONSTRUCTOR,
        "example/BadStatic.java": BAD_STATIC,
    }
    return tree(javac(out, sources, sourcepath=str(java.SOURCE_DIR)))


def deploy_java(
    deploy: Deploy,
    files: dict[str, str | bytes],
    handler: str,
    runtime: str = "java17",
    **settings: Any,
) -> str:
    """Create a Java function from ``files``; return its name."""
    name: str = deploy(files=files, handler=handler, runtime=runtime, **settings)["FunctionName"]
    return name


@pytest.mark.parametrize("runtime", JAVA_RUNTIMES)
def test_map_handler_context_environment_logs_and_warm_state(
    deploy: Deploy, lambda_client: Any, plain_classes: dict[str, str | bytes], runtime: str
) -> None:
    name = deploy_java(
        deploy,
        plain_classes,
        "example.Hello::handleRequest",
        runtime=runtime,
        MemorySize=256,
        Timeout=7,
        Environment={"Variables": {"GREETING": "hi"}},
    )
    event = {"n": 1, "text": "café ☕ 😀", "nested": {"list": [1, 2.5, None, True]}}
    first, response = invoke(lambda_client, name, event, LogType="Tail")
    assert "FunctionError" not in response, first
    assert first["event"] == event
    assert first["calls"] == 1
    assert first["instances"] == 1
    assert first["functionName"] == name
    assert first["functionVersion"] == "$LATEST"
    assert first["invokedFunctionArn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
    assert first["memoryLimitInMB"] == 256  # an int, as AWS's Java Context has it
    assert re.fullmatch(REQUEST_ID, first["awsRequestId"])
    assert first["logGroupName"] == f"/aws/lambda/{name}"
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", first["logStreamName"])
    assert 0 < first["remainingMs"] <= 7000
    assert first["clientContext"] is None
    assert first["identity"] is None
    assert first["trace"].startswith("Root=1-")
    env = first["env"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_REGION"] == "us-east-1"
    assert env["_HANDLER"] == "example.Hello::handleRequest"
    assert env["GREETING"] == "hi"
    assert env["AWS_EXECUTION_ENV"] == f"AWS_Lambda_{runtime}"
    assert first["cwd"] == env["LAMBDA_TASK_ROOT"]
    assert first["charset"] == "UTF-8"
    log = tail(response)
    lines = log.splitlines()
    assert any(line.startswith("event {") and "café ☕ 😀" in line for line in lines), log
    assert "on stderr: café" in lines
    assert "logger line 1" in lines
    assert "Init Duration" in lines[-1]
    # The instance (and its static state) survives in the warm sandbox, as on Lambda.
    second, response = invoke(lambda_client, name, {"n": 2}, LogType="Tail")
    assert second["calls"] == 2
    assert second["instances"] == 1
    assert second["awsRequestId"] != first["awsRequestId"]
    assert "logger line 2" in tail(response).splitlines()
    assert "Init Duration" not in tail(response).splitlines()[-1]


def test_client_context_reaches_the_handler(
    deploy: Deploy, lambda_client: Any, plain_classes: dict[str, str | bytes]
) -> None:
    name = deploy_java(deploy, plain_classes, "example.Hello::handleRequest")
    context = {"custom": {"tenant": "acme"}, "env": {"platform": "Android"}}
    encoded = base64.b64encode(json.dumps(context).encode()).decode()
    result, _ = invoke(lambda_client, name, ClientContext=encoded)
    assert result["clientContext"] == context


@pytest.mark.parametrize(
    ("handler", "payload", "expected", "log_line"),
    [
        ("example.Hello::greet", "Ada", "Hello, Ada!", "greeting Ada"),
        ("example.Hello::square", 12345, 152399025, None),
        ("example.Orders::sum", [1, 2, 3, 9_000_000_000], 9_000_000_006, None),
        ("example.Hello::count", {"k": "vvvv"}, None, "got 13 bytes for "),
    ],
)
def test_value_handlers(
    deploy: Deploy,
    lambda_client: Any,
    plain_classes: dict[str, str | bytes],
    handler: str,
    payload: Any,
    expected: Any,
    log_line: str | None,
) -> None:
    name = deploy_java(deploy, plain_classes, handler)
    result, response = invoke(lambda_client, name, payload, LogType="Tail")
    assert "FunctionError" not in response, result
    assert result == expected
    if log_line is not None:
        assert log_line in tail(response)


def test_pojo_input_and_output(
    deploy: Deploy, lambda_client: Any, plain_classes: dict[str, str | bytes]
) -> None:
    name = deploy_java(deploy, plain_classes, "example.Orders")
    order = {
        "id": "o-7",
        "rush": True,
        "items": [{"sku": "apple", "quantity": 3}, {"sku": "pear", "quantity": 1}],
        "prices": {"apple": 0.5, "pear": 2},
        "ignored": {"unknown": "keys are skipped"},
    }
    result, response = invoke(lambda_client, name, order)
    assert "FunctionError" not in response, result
    assert result == {
        "note": "public field",
        "receipt": {
            "orderId": "o-7",
            "units": 4,
            "skus": ["apple", "pear"],
            "total": 3.5,
            "status": "ACCEPTED",
        },
        "rush": True,
        "urlpath": "/orders/o-7",
    }


def test_stream_handler(
    deploy: Deploy, lambda_client: Any, plain_classes: dict[str, str | bytes]
) -> None:
    name = deploy_java(deploy, plain_classes, "example.Streams")
    result, response = invoke(lambda_client, name, "hello")
    assert "FunctionError" not in response, result
    assert result["upper"] == "HELLO"
    assert result["id"] == response["ResponseMetadata"]["RequestId"]


def test_unhandled_exception(
    deploy: Deploy, lambda_client: Any, plain_classes: dict[str, str | bytes]
) -> None:
    name = deploy_java(deploy, plain_classes, "example.Fail::handleRequest")
    error, response = invoke(lambda_client, name, LogType="Tail")
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "example.Fail$OrderException"
    assert error["errorMessage"] == "order 42 is missing"
    assert error["stackTrace"][0].startswith("example.Fail.handleRequest(Fail.java:")
    assert not any("lambdalet.runtime" in frame for frame in error["stackTrace"])
    assert not any("reflect" in frame for frame in error["stackTrace"])
    log = tail(response)
    assert "about to fail, call 1" in log
    assert "order 42 is missing: example.Fail$OrderException" in log
    assert "\tat example.Fail.handleRequest(Fail.java:" in log
    # A message-less exception reports its class name, as AWS does.
    error, _ = invoke(lambda_client, name, {"npe": True})
    assert error["errorType"] == "java.lang.NullPointerException"
    assert error["errorMessage"] == "java.lang.NullPointerException"
    # The sandbox, and the handler's instance, are still good after a failure.
    result, response = invoke(lambda_client, name, {"ok": True})
    assert "FunctionError" not in response
    assert result == 3


@pytest.mark.parametrize(
    ("handler", "payload", "fragment"),
    [
        ("example.Hello::greet", {"not": "a string"}, "Cannot read a JSON object as java.lang"),
        ("example.Hello::square", "many", "Cannot read a JSON string as int"),
        ("example.Orders::sum", {"a": 1}, "Cannot read a JSON object as java.util.List"),
    ],
)
def test_payload_that_does_not_fit_the_parameter(
    deploy: Deploy,
    lambda_client: Any,
    plain_classes: dict[str, str | bytes],
    handler: str,
    payload: Any,
    fragment: str,
) -> None:
    name = deploy_java(deploy, plain_classes, handler)
    error, response = invoke(lambda_client, name, payload)
    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "java.lang.RuntimeException"
    assert error["errorMessage"].startswith("An error occurred during JSON parsing: ")
    assert fragment in error["errorMessage"]


def test_result_that_is_not_json(
    deploy: Deploy, lambda_client: Any, plain_classes: dict[str, str | bytes]
) -> None:
    name = deploy_java(deploy, plain_classes, "example.Orders::cyclic")
    error, response = invoke(lambda_client, name)
    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "java.lang.RuntimeException"
    assert error["errorMessage"].startswith(
        "An error occurred during JSON serialization of response: "
    )
    assert "does it refer to itself?" in error["errorMessage"]


@pytest.mark.parametrize(
    ("handler", "error_type", "message"),
    [
        (
            "example.Missing::handleRequest",
            "java.lang.ClassNotFoundException",
            "Class not found: example.Missing",
        ),
        (
            "example.Hello::nope",
            "java.lang.NoSuchMethodException",
            "No public method named nope with appropriate method signature found on class "
            "example.Hello",
        ),
        ("example.BadConstructor", "java.lang.IllegalStateException", "bad config"),
        (
            "example.BadStatic",
            "java.lang.ExceptionInInitializerError",
            "Error loading class example.BadStatic: java.lang.NumberFormatException: For input "
            'string: "not a number"',
        ),
        ("example.Hello::", "Runtime.MalformedHandlerName", "Invalid handler: `example.Hello::'"),
    ],
)
def test_init_errors(
    deploy: Deploy,
    lambda_client: Any,
    plain_classes: dict[str, str | bytes],
    handler: str,
    error_type: str,
    message: str,
) -> None:
    name = deploy_java(deploy, plain_classes, handler)
    error, response = invoke(lambda_client, name, LogType="Tail")
    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == error_type
    assert error["errorMessage"] == message
    log = tail(response)
    assert f"{message}: {error_type}" in log
    assert "Init Duration" in log


def test_timeout_kills_and_replaces_the_sandbox(
    deploy: Deploy, lambda_client: Any, plain_classes: dict[str, str | bytes]
) -> None:
    name = deploy_java(deploy, plain_classes, "example.Sleepy::handleRequest", Timeout=1)
    first_pid, _ = invoke(lambda_client, name)
    error, response = invoke(lambda_client, name, {"sleep": True}, LogType="Tail")
    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Sandbox.Timedout"
    assert error["errorMessage"].endswith("Task timed out after 1.00 seconds")
    log = tail(response)
    assert "sleeping" in log
    assert "Task timed out after 1.00 seconds" in log
    new_pid, response = invoke(lambda_client, name)
    assert "FunctionError" not in response
    assert new_pid != first_pid


def test_output_is_flushed_before_the_response(
    deploy: Deploy, lambda_client: Any, plain_classes: dict[str, str | bytes]
) -> None:
    name = deploy_java(deploy, plain_classes, "example.Hello::buffered")
    for text in ("one", "two"):
        result, response = invoke(lambda_client, name, text, LogType="Tail")
        assert result == text
        assert f"buffered {text}" in tail(response).splitlines()


def test_response_over_6_mb_fails_the_invocation(
    deploy: Deploy, lambda_client: Any, plain_classes: dict[str, str | bytes]
) -> None:
    name = deploy_java(deploy, plain_classes, "example.Hello::big")
    error, response = invoke(lambda_client, name, 7_000_000)
    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Function.ResponseSizeTooLarge"
    # The runtime read the host's refusal and serves the next event on the same sandbox.
    result, response = invoke(lambda_client, name, 3)
    assert "FunctionError" not in response, result
    assert result == "xxx"


def test_handler_in_a_jar_in_lib(deploy: Deploy, lambda_client: Any, tmp_path: Path) -> None:
    util = javac(tmp_path / "util", {"example/lib/Shouter.java": SHOUTER})
    app = javac(tmp_path / "app", {"example/JarHandler.java": JAR_HANDLER}, classpath=[util])
    files: dict[str, str | bytes] = {
        "lib/util.jar": jar(tmp_path / "util.jar", util),
        "lib/app.jar": jar(tmp_path / "app.jar", app),
    }
    name = deploy_java(deploy, files, "example.JarHandler", runtime="java21")
    result, response = invoke(lambda_client, name, "from a jar")
    assert "FunctionError" not in response, result
    assert result == "FROM A JAR!"


def test_library_from_a_layer(deploy: Deploy, lambda_client: Any, tmp_path: Path) -> None:
    util = javac(tmp_path / "util", {"example/lib/Shouter.java": SHOUTER})
    app = javac(tmp_path / "app", {"example/JarHandler.java": JAR_HANDLER}, classpath=[util])
    layer = lambda_client.publish_layer_version(
        LayerName=f"java-util-{tmp_path.name[-8:]}",
        Content={"ZipFile": make_zip({"java/lib/util.jar": jar(tmp_path / "util.jar", util)})},
    )
    try:
        name = deploy_java(
            deploy, tree(app), "example.JarHandler", Layers=[layer["LayerVersionArn"]]
        )
        result, response = invoke(lambda_client, name, "from a layer")
        assert "FunctionError" not in response, result
        assert result == "FROM A LAYER!"
    finally:
        lambda_client.delete_layer_version(
            LayerName=layer["LayerVersionArn"].split(":")[-2], VersionNumber=layer["Version"]
        )


def test_handler_compiled_against_aws_lambda_java_core(
    deploy: Deploy, lambda_client: Any, tmp_path: Path
) -> None:
    core_sources = {
        f"com/amazonaws/services/lambda/runtime/{name}.java": (
            "package com.amazonaws.services.lambda.runtime;\n" + text
        )
        for name, text in AWS_CORE.items()
    }
    core = javac(tmp_path / "core", core_sources)
    classes = javac(tmp_path / "classes", {"example/AwsStyle.java": AWS_STYLE}, classpath=[core])
    files = tree(classes)
    files["lib/aws-lambda-java-core.jar"] = jar(tmp_path / "core.jar", core)
    name = deploy_java(deploy, files, "example.AwsStyle", MemorySize=512)
    client_context = {
        "client": {"app_title": "shop", "installation_id": "i-1"},
        "custom": {"tenant": "acme", "tier": 2},
        "env": {"platform": "Android"},
    }
    encoded = base64.b64encode(json.dumps(client_context).encode()).decode()
    result, response = invoke(lambda_client, name, {"a": 1}, LogType="Tail", ClientContext=encoded)
    assert "FunctionError" not in response, result
    assert result["calls"] == 1
    assert result["event"] == {"a": 1}
    assert re.fullmatch(REQUEST_ID, result["awsRequestId"])
    assert result["functionName"] == name
    assert result["functionVersion"] == "$LATEST"
    assert result["invokedFunctionArn"].endswith(f":function:{name}")
    assert result["memoryLimitInMB"] == 512
    assert result["logGroupName"] == f"/aws/lambda/{name}"
    assert result["remainingMs"] > 0
    assert result["identity"] is None
    assert result["custom"] == {"tenant": "acme", "tier": "2"}  # Map<String, String> on AWS
    assert result["environment"] == {"platform": "Android"}
    assert result["appTitle"] == "shop"
    assert result["trace"].startswith("Root=1-")
    lines = tail(response).splitlines()
    assert "aws logger line" in lines
    assert "aws bytes line" in lines
    second, _ = invoke(lambda_client, name, {"a": 2})
    assert second["calls"] == 2
    assert second["custom"] is None


def test_example_java_hello(deploy: Deploy, lambda_client: Any, tmp_path: Path) -> None:
    example = EXAMPLES / "java-hello"
    settings = json.loads((example / "lambdalet.json").read_text())
    assert settings["runtime"] == "java17"
    classes = javac(
        tmp_path / "build", {"example/Hello.java": (example / "Hello.java").read_text()}
    )
    name = deploy_java(deploy, tree(classes), settings["handler"], runtime=settings["runtime"])
    result, response = invoke(lambda_client, name, {"name": "Ada"}, LogType="Tail")
    assert "FunctionError" not in response, result
    assert result["message"] == "Hello, Ada!"
    assert f"greeting Ada from {name}" in tail(response)


def test_bootstrap_is_compiled_once_with_a_class_data_sharing_archive(tmp_path: Path) -> None:
    java_executable = shutil.which("java")
    assert java_executable is not None
    argv = java.command(java_executable, tmp_path / "code", tmp_path / "cache")
    compiled = java.compiled_classes(java_executable, tmp_path / "cache")
    assert (compiled / java.BOOTSTRAP_JAR).is_file()
    archive = compiled / java.CDS_ARCHIVE
    assert archive.is_file(), (compiled / f"{java.CDS_ARCHIVE}.log").read_text()
    assert f"-XX:SharedArchiveFile={archive}" in argv
    assert argv[-1] == java.MAIN_CLASS
    # A second start reuses the cache: same command, nothing rebuilt.
    mtime = archive.stat().st_mtime_ns
    assert java.command(java_executable, tmp_path / "code", tmp_path / "cache") == argv
    assert archive.stat().st_mtime_ns == mtime
    # Layers' jars (/opt/java/lib) come after the function's own.
    with_layers = java.command(
        java_executable, tmp_path / "code", tmp_path / "cache", opt_dir=tmp_path / "opt"
    )
    classpath = with_layers[with_layers.index("-cp") + 1].split(":")
    assert classpath[1:] == [
        str(tmp_path / "code"),
        str(tmp_path / "code" / "lib" / "*"),
        str(tmp_path / "opt" / "java" / "lib" / "*"),
    ]
    # The archive really is used: the bootstrap's classes come from it.
    classes = subprocess.run(
        [*argv[:-1], "-Xlog:class+load", argv[-1]],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert "lambdalet.runtime.Bootstrap source: shared objects file (top)" in classes.stdout
