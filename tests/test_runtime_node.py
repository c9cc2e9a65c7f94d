"""lambdalet's Node.js runtime (``runtime/node_bootstrap.js``) through boto3 on a real node.

Every Node.js runtime id runs the machine's ``node`` with lambdalet's bootstrap; these tests
check it behaves as AWS's nodejs runtimes do: module formats, handler styles, the context
object, logs, errors and their AWS names, timeouts and the module search path.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from lambdalet.runtime.launch import NODE_BOOTSTRAP
from lambdalet.testing import Deploy, invoke, make_zip, tail

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None, reason="the Node.js runtimes need node on PATH"
)

NODE_RUNTIMES = ("nodejs18.x", "nodejs20.x", "nodejs22.x")
EXECUTABLE = 0o100755
REQUEST_ID = r"[0-9a-f-]{36}"
LOG_PREFIX = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\t"

CONTEXT = """
let calls = 0;

exports.handler = async (event, context) => {
  calls += 1;
  return {
    calls,
    event,
    functionName: context.functionName,
    functionVersion: context.functionVersion,
    invokedFunctionArn: context.invokedFunctionArn,
    memoryLimitInMB: context.memoryLimitInMB,
    awsRequestId: context.awsRequestId,
    logGroupName: context.logGroupName,
    logStreamName: context.logStreamName,
    remainingMs: context.getRemainingTimeInMillis(),
    identity: context.identity ?? null,
    clientContext: context.clientContext ?? null,
    waits: context.callbackWaitsForEmptyEventLoop,
    legacy: [typeof context.done, typeof context.succeed, typeof context.fail],
    env: Object.fromEntries([
      "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "LAMBDA_TASK_ROOT",
      "AWS_REGION", "TZ", "_HANDLER", "GREETING", "AWS_EXECUTION_ENV", "NODE_PATH",
      "_X_AMZN_TRACE_ID",
    ].map((key) => [key, process.env[key] ?? null])),
    cwd: process.cwd(),
    nodeVersion: process.version,
  };
};
"""


def deploy_node(
    deploy: Deploy,
    files: dict[str, str | bytes],
    handler: str = "index.handler",
    runtime: str = "nodejs20.x",
    **settings: Any,
) -> str:
    """Create a Node.js function from ``files``; return its name."""
    name: str = deploy(files=files, handler=handler, runtime=runtime, **settings)["FunctionName"]
    return name


@pytest.mark.parametrize("runtime", NODE_RUNTIMES)
def test_async_handler_context_environment_and_warm_state(
    deploy: Deploy, lambda_client: Any, runtime: str
) -> None:
    name = deploy_node(
        deploy,
        {"index.js": CONTEXT},
        runtime=runtime,
        MemorySize=256,
        Timeout=7,
        Environment={"Variables": {"GREETING": "hi"}},
    )
    first, response = invoke(lambda_client, name, {"n": 1})
    assert "FunctionError" not in response, first
    assert first["event"] == {"n": 1}
    assert first["functionName"] == name
    assert first["functionVersion"] == "$LATEST"
    assert first["invokedFunctionArn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
    assert first["memoryLimitInMB"] == "256"  # a string, as on AWS
    assert re.fullmatch(REQUEST_ID, first["awsRequestId"])
    assert first["logGroupName"] == f"/aws/lambda/{name}"
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", first["logStreamName"])
    assert 0 < first["remainingMs"] <= 7000
    assert first["identity"] is None
    assert first["clientContext"] is None
    assert first["waits"] is True
    assert first["legacy"] == ["function", "function", "function"]
    env = first["env"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_REGION"] == "us-east-1"
    assert env["TZ"] == ":UTC"
    assert env["_HANDLER"] == "index.handler"
    assert env["GREETING"] == "hi"
    assert env["AWS_EXECUTION_ENV"] == f"AWS_Lambda_{runtime}"
    assert env["_X_AMZN_TRACE_ID"].startswith("Root=1-")
    assert env["LAMBDA_TASK_ROOT"] in env["NODE_PATH"].split(":")
    assert first["cwd"] == env["LAMBDA_TASK_ROOT"]
    assert first["nodeVersion"].startswith("v")
    # Module-level state survives in the warm sandbox; each invocation has its own ids.
    custom = base64.b64encode(json.dumps({"custom": {"tenant": "acme"}}).encode()).decode()
    second, _ = invoke(lambda_client, name, {"n": 2}, ClientContext=custom)
    assert second["calls"] == first["calls"] + 1
    assert second["awsRequestId"] != first["awsRequestId"]
    assert second["clientContext"] == {"custom": {"tenant": "acme"}}
    assert second["env"]["_X_AMZN_TRACE_ID"].startswith("Root=1-")
    assert second["env"]["_X_AMZN_TRACE_ID"] != env["_X_AMZN_TRACE_ID"]


TRACE_IDS = """
const { execFileSync } = require('child_process');
const { traceEnvironment } = require(process.argv[1]);
process.env = traceEnvironment(process.env);
const trace = (i) => `Root=1-5e1b4151-${i.toString(16).padStart(24, '0')};Parent=${i};Sampled=0`;
// A first round, so that V8's heap has grown to what the strings' garbage needs.
for (let i = 1; i <= 200000; i += 1) process.env._X_AMZN_TRACE_ID = trace(i);
global.gc();
const before = process.memoryUsage().rss;
for (let i = 200001; i <= 600000; i += 1) process.env._X_AMZN_TRACE_ID = trace(i);
global.gc();
const grown = process.memoryUsage().rss - before;
const child = execFileSync('sh', ['-c', 'echo "$_X_AMZN_TRACE_ID"']).toString().trim();
const seen = [
  process.env._X_AMZN_TRACE_ID === trace(600000),
  '_X_AMZN_TRACE_ID' in process.env,
  Object.keys(process.env).includes('_X_AMZN_TRACE_ID'),
  child === trace(600000),
];
process.env.OTHER_VARIABLE = 'real';
seen.push(execFileSync('sh', ['-c', 'echo "$OTHER_VARIABLE"']).toString().trim() === 'real');
delete process.env._X_AMZN_TRACE_ID;
seen.push(!('_X_AMZN_TRACE_ID' in process.env));
console.log(JSON.stringify({ grown, seen }));
"""


def test_a_trace_id_per_invocation_does_not_grow_the_runtime() -> None:
    # Set through the real process.env, the 400,000 new trace ids of the measured round keep
    # about 66 MB in the C library's setenv copies.
    done = subprocess.run(
        ["node", "--expose-gc", "-e", TRACE_IDS, str(NODE_BOOTSTRAP)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(done.stdout)
    assert result["seen"] == [True] * 6
    assert result["grown"] < 20 * 1024 * 1024, f"the runtime grew by {result['grown']} bytes"


CALLBACKS = """
let calls = 0;

exports.waits = (event, context, callback) => {
  calls += 1;
  setTimeout(() => console.log("timer fired in call", calls), 50);
  callback(null, { calls, waits: context.callbackWaitsForEmptyEventLoop });
};

exports.leavesAnInterval = (event, context, callback) => {
  context.callbackWaitsForEmptyEventLoop = false;
  setInterval(() => {}, 1000);
  callback(null, "answered at once");
};

exports.later = (event, context, callback) => setTimeout(() => callback(null, event), 10);

exports.fails = (event, context, callback) => callback(new TypeError("bad input"));

exports.failsWithAString = (event, context, callback) => callback("just a string");

exports.firstCallWins = (event, context, callback) => {
  callback(null, "first");
  callback(null, "second");
  throw new Error("ignored: the invocation already completed");
};
"""


def test_callback_handler_waits_for_the_event_loop(deploy: Deploy, lambda_client: Any) -> None:
    name = deploy_node(deploy, {"index.js": CALLBACKS}, handler="index.waits")
    for calls in (1, 2):
        result, response = invoke(lambda_client, name, LogType="Tail")
        assert result == {"calls": calls, "waits": True}
        # The reply waited for the handler's timer, so its output belongs to this invocation.
        assert f"timer fired in call {calls}" in tail(response)


def test_callback_handler_that_does_not_wait(deploy: Deploy, lambda_client: Any) -> None:
    # A never-ending interval: had the runtime waited for the event loop, this would time out.
    name = deploy_node(deploy, {"index.js": CALLBACKS}, handler="index.leavesAnInterval")
    for _ in range(2):
        result, response = invoke(lambda_client, name)
        assert "FunctionError" not in response, result
        assert result == "answered at once"


@pytest.mark.parametrize(
    ("handler", "expected_error"),
    [
        ("index.later", None),
        ("index.firstCallWins", None),
        ("index.fails", ("TypeError", "bad input")),
        ("index.failsWithAString", ("string", "just a string")),
    ],
)
def test_callback_results_and_errors(
    deploy: Deploy,
    lambda_client: Any,
    handler: str,
    expected_error: tuple[str, str] | None,
) -> None:
    name = deploy_node(deploy, {"index.js": CALLBACKS}, handler=handler)
    result, response = invoke(lambda_client, name, {"echo": 1})
    if expected_error is None:
        assert "FunctionError" not in response, result
        assert result == ({"echo": 1} if handler == "index.later" else "first")
        return
    assert response["FunctionError"] == "Unhandled"
    assert (result["errorType"], result["errorMessage"]) == expected_error
    assert isinstance(result["trace"], list)


STYLES = """
exports.plain = (event) => ({ plain: event.n * 2 });
exports.nothing = (event) => { setTimeout(() => console.log("idle work done"), 10); };
exports.neverSettles = async () => new Promise(() => {});
exports.succeed = (event, context) => { setTimeout(() => context.succeed("succeeded"), 5); };
exports.done = (event, context) => context.done(null, { done: true });
exports.doneWithError = (event, context) => context.done(new RangeError("out of range"));
exports.failWithNothing = (event, context) => context.fail();
exports.returnsUndefined = async () => undefined;
exports.returnsAFunction = async () => () => 1;
exports.circular = async () => { const loop = {}; loop.self = loop; return loop; };
exports.bigint = async () => ({ n: 10n });
exports.rejects = async () => { throw "rejected with a string"; };
"""


@pytest.mark.parametrize(
    ("handler", "expected", "function_error"),
    [
        ("index.plain", {"plain": 42}, False),
        ("index.nothing", None, False),
        ("index.neverSettles", None, False),
        ("index.succeed", "succeeded", False),
        ("index.done", {"done": True}, False),
        (
            "index.doneWithError",
            {"errorType": "RangeError", "errorMessage": "out of range"},
            True,
        ),
        ("index.failWithNothing", {"errorType": "string", "errorMessage": "handled"}, True),
        ("index.returnsUndefined", None, False),
        ("index.returnsAFunction", None, False),
        (
            "index.circular",
            {"errorType": "Error", "errorMessage": "Unable to stringify response body"},
            True,
        ),
        (
            "index.bigint",
            {"errorType": "Error", "errorMessage": "Unable to stringify response body"},
            True,
        ),
        (
            "index.rejects",
            {"errorType": "string", "errorMessage": "rejected with a string"},
            True,
        ),
    ],
)
def test_handler_styles_and_results(
    deploy: Deploy,
    lambda_client: Any,
    handler: str,
    expected: Any,
    function_error: bool,
) -> None:
    name = deploy_node(deploy, {"index.js": STYLES}, handler=handler)
    result, response = invoke(lambda_client, name, {"n": 21})
    if not function_error:
        assert "FunctionError" not in response, result
        assert result == expected
        return
    assert response["FunctionError"] == "Unhandled"
    assert {key: result[key] for key in ("errorType", "errorMessage")} == expected
    assert isinstance(result["trace"], list)


ESM = """
import { createHash } from "node:crypto";
import { helper } from "./helper.mjs";

const greeting = await Promise.resolve("hello from esm");  // top-level await
let calls = 0;

export const handler = async (event, context) => {
  calls += 1;
  return {
    greeting,
    calls,
    helper: helper(),
    digest: createHash("sha256").update("x").digest("hex").slice(0, 8),
    file: import.meta.url,
    requestId: context.awsRequestId,
  };
};
"""

CJS_UNDER_ESM = """
let calls = 0;
exports.handler = async () => {
  calls += 1;
  return { greeting: "from cjs", calls, helper: "none", digest: "2d711642", file: __filename };
};
"""


@pytest.mark.parametrize(
    ("files", "entry"),
    [
        ({"index.mjs": ESM}, "index.mjs"),
        ({"index.js": ESM, "package.json": '{"type": "module"}'}, "index.js"),
        ({"index.cjs": CJS_UNDER_ESM, "package.json": '{"type": "module"}'}, "index.cjs"),
    ],
    ids=["mjs", "js-in-module-package", "cjs"],
)
def test_module_formats(
    deploy: Deploy, lambda_client: Any, files: dict[str, str | bytes], entry: str
) -> None:
    helper = "export const helper = () => 'helped';\n"
    name = deploy_node(deploy, {**files, "helper.mjs": helper}, runtime="nodejs22.x")
    first, response = invoke(lambda_client, name)
    assert "FunctionError" not in response, first
    assert first["file"].endswith(f"/{entry}")
    assert first["digest"] == "2d711642"
    if entry != "index.cjs":
        assert first["greeting"] == "hello from esm"
        assert first["helper"] == "helped"
        assert first["file"].startswith("file://")
    second, _ = invoke(lambda_client, name)
    assert second["calls"] == first["calls"] + 1


def test_handler_in_a_folder_and_nested_export(deploy: Deploy, lambda_client: Any) -> None:
    files: dict[str, str | bytes] = {
        # As on AWS, the module of "src/lib/index.handlers.greet" is src/lib/index.js.
        "src/lib/index.js": "exports.handlers = { greet: async (e) => `hi ${e.name}` };\n",
    }
    name = deploy_node(deploy, files, handler="src/lib/index.handlers.greet")
    result, response = invoke(lambda_client, name, {"name": "Ada"})
    assert "FunctionError" not in response, result
    assert result == "hi Ada"


def test_console_output_in_the_tail_log(deploy: Deploy, lambda_client: Any) -> None:
    source = """
console.log("loading the module");
exports.handler = async (event) => {
  console.log("hello %s, you are %d", "Ada", 36);
  console.info({ nested: { deep: true } });
  console.warn("careful");
  console.error("broken", new Error("shown with its stack"));
  console.debug("debugging");
  console.log("two\\nlines");
  process.stdout.write("raw stdout\\n");
  process.stderr.write("raw stderr\\n");
  return "logged";
};
"""
    name = deploy_node(deploy, {"index.js": source})
    result, response = invoke(lambda_client, name, LogType="Tail")
    assert result == "logged"
    request_id = response["ResponseMetadata"]["RequestId"]
    lines = tail(response).split("\n")
    prefix = LOG_PREFIX + re.escape(request_id) + r"\t"

    def logged(level: str, message: str) -> bool:
        pattern = prefix + level + r"\t" + re.escape(message)
        return any(re.fullmatch(pattern, line) for line in lines)

    assert any(re.fullmatch(LOG_PREFIX + r"undefined\tINFO\tloading the module", x) for x in lines)
    assert logged("INFO", "hello Ada, you are 36")
    assert logged("INFO", "{ nested: { deep: true } }")
    assert logged("WARN", "careful")
    assert logged("DEBUG", "debugging")
    # A message with newlines stays one log line: AWS turns \n into \r.
    assert logged("INFO", "two\rlines")
    error_line = next(line for line in lines if "\tERROR\tbroken" in line)
    assert re.match(prefix + r"ERROR\tbroken Error: shown with its stack\r    at ", error_line)
    assert "raw stdout" in lines
    assert "raw stderr" in lines
    start = lines.index(f"START RequestId: {request_id} Version: $LATEST")
    end = lines.index(f"END RequestId: {request_id}")
    assert start < lines.index("raw stderr") < end


def test_thrown_error(deploy: Deploy, lambda_client: Any) -> None:
    source = """
let calls = 0;
class OrderError extends Error {
  constructor(message) {
    super(message);
    this.name = "OrderError";
  }
}
function findOrder(id) {
  throw new OrderError(`order ${id} is missing`);
}
exports.handler = async (event) => {
  calls += 1;
  if (event.fail) {
    console.log("about to fail");
    findOrder(42);
  }
  return calls;
};
exports.sync = () => { throw new Error("thrown synchronously"); };
exports.thrownValue = () => { throw { code: 7 }; };
"""
    name = deploy_node(deploy, {"index.js": source})
    assert invoke(lambda_client, name)[0] == 1
    error, response = invoke(lambda_client, name, {"fail": True}, LogType="Tail")
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert set(error) == {"errorType", "errorMessage", "trace"}
    assert error["errorType"] == "OrderError"
    assert error["errorMessage"] == "order 42 is missing"
    assert error["trace"][0] == "OrderError: order 42 is missing"
    assert re.match(r"\s+at findOrder \(.*/index\.js:\d+:\d+\)", error["trace"][1])
    assert not any("node_bootstrap" in line for line in error["trace"])
    log = tail(response)
    assert "about to fail" in log
    assert re.search(r"\tERROR\tInvoke Error \t\{\"errorType\":\"OrderError\"", log)
    # The sandbox is still good, and still warm, after a failed invocation.
    assert invoke(lambda_client, name)[0] == 3

    sync = deploy_node(deploy, {"index.js": source}, handler="index.sync")
    error, response = invoke(lambda_client, sync)
    assert response["FunctionError"] == "Unhandled"
    assert (error["errorType"], error["errorMessage"]) == ("Error", "thrown synchronously")

    value = deploy_node(deploy, {"index.js": source}, handler="index.thrownValue")
    error, response = invoke(lambda_client, value)
    assert response["FunctionError"] == "Unhandled"
    assert (error["errorType"], error["errorMessage"]) == ("object", "[object Object]")


@pytest.mark.parametrize(
    ("files", "handler", "error_type", "message"),
    [
        (
            {"index.js": "const missing = require('not-installed-anywhere');\n"},
            "index.handler",
            "Runtime.ImportModuleError",
            "Error: Cannot find module 'not-installed-anywhere'",
        ),
        (
            {"index.mjs": "import missing from 'not-installed-anywhere';\n"},
            "index.handler",
            "Runtime.ImportModuleError",
            "Cannot find package 'not-installed-anywhere'",
        ),
        (
            {"index.js": "exports.handler = async () => 1;\n"},
            "index.nope",
            "Runtime.HandlerNotFound",
            "index.nope is undefined or not exported",
        ),
        (
            {"index.mjs": "export const value = 1;\n"},
            "index.value",
            "Runtime.HandlerNotFound",
            "index.value is not a function",
        ),
        (
            {"index.js": "exports.handler = async (event => {\n"},
            "index.handler",
            "Runtime.UserCodeSyntaxError",
            "SyntaxError: ",
        ),
        (
            {"index.mjs": "export const handler = async ( => 1;\n"},
            "index.handler",
            "Runtime.UserCodeSyntaxError",
            "SyntaxError: ",
        ),
        (
            {"index.js": "exports.handler = async () => 1;\n"},
            "index",
            "Runtime.MalformedHandlerName",
            "Bad handler",
        ),
        (
            {
                "index.js": (
                    "class ConfigError extends Error {}\n"
                    "ConfigError.prototype.name = 'ConfigError';\n"
                    "throw new ConfigError('bad config');\n"
                )
            },
            "index.handler",
            "ConfigError",
            "bad config",
        ),
    ],
    ids=[
        "missing-package",
        "missing-package-esm",
        "missing-export",
        "not-a-function",
        "syntax-error",
        "syntax-error-esm",
        "malformed-handler",
        "top-level-throw",
    ],
)
def test_init_errors(
    deploy: Deploy,
    lambda_client: Any,
    files: dict[str, str | bytes],
    handler: str,
    error_type: str,
    message: str,
) -> None:
    name = deploy_node(deploy, files, handler=handler)
    for _ in range(2):  # a failed init is retried on the next invocation, and fails again
        error, response = invoke(lambda_client, name, LogType="Tail")
        assert response["FunctionError"] == "Unhandled"
        assert error["errorType"] == error_type
        assert error["errorMessage"].startswith(message) or message in error["errorMessage"]
        assert isinstance(error["trace"], list)
        log = tail(response)
        assert "Init Duration" in log
        assert re.search(r"\tundefined\tERROR\tUncaught Exception \t\{", log), log
        assert f'"errorType":"{error_type}"' in log


def test_missing_module_file_is_refused_at_create(deploy: Deploy) -> None:
    with pytest.raises(ClientError) as caught:
        deploy_node(deploy, {"other.js": "exports.handler = async () => 1;\n"})
    error = caught.value.response
    assert error["Error"]["Code"] == "InvalidParameterValueException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    message = error["Error"]["Message"]
    assert "index.js or index.mjs or index.cjs" in message
    assert "is not in the zip" in message


def test_timeout(deploy: Deploy, lambda_client: Any) -> None:
    source = """
exports.handler = async (event) => {
  if (event.sleepMs) {
    console.log("sleeping");
    await new Promise((resolve) => setTimeout(resolve, event.sleepMs));
  }
  return process.pid;
};
"""
    name = deploy_node(deploy, {"index.js": source}, Timeout=1)
    first_pid, _ = invoke(lambda_client, name)
    error, response = invoke(lambda_client, name, {"sleepMs": 5000}, LogType="Tail")
    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Sandbox.Timedout"
    assert error["errorMessage"].endswith("Task timed out after 1.00 seconds")
    log = tail(response)
    assert "sleeping" in log
    assert "Task timed out after 1.00 seconds" in log
    new_pid, response = invoke(lambda_client, name)
    assert "FunctionError" not in response
    assert new_pid != first_pid


UNCAUGHT = """
let calls = 0;
exports.handler = async (event) => {
  calls += 1;
  if (event.reject) {
    Promise.reject(new Error("nobody caught this promise"));
  }
  if (event.throwLater) {
    setTimeout(() => { throw new Error("thrown from a timer"); }, 1);
  }
  if (event.reject || event.throwLater) {
    await new Promise((resolve) => setTimeout(resolve, 60000));
  }
  return calls;
};
"""


@pytest.mark.parametrize(
    ("event", "status", "logged"),
    [
        (
            {"reject": True},
            128,
            'Unhandled Promise Rejection \t{"errorType":"Runtime.UnhandledPromiseRejection",'
            '"errorMessage":"Error: nobody caught this promise"',
        ),
        (
            {"throwLater": True},
            129,
            'Uncaught Exception \t{"errorType":"Error","errorMessage":"thrown from a timer"',
        ),
    ],
    ids=["unhandled-rejection", "uncaught-exception"],
)
def test_uncaught_errors_end_the_invocation_and_the_runtime(
    deploy: Deploy, lambda_client: Any, event: dict[str, bool], status: int, logged: str
) -> None:
    name = deploy_node(deploy, {"index.js": UNCAUGHT}, Timeout=60)
    assert invoke(lambda_client, name)[0] == 1
    error, response = invoke(lambda_client, name, event, LogType="Tail")
    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Runtime.ExitError"
    assert error["errorMessage"].endswith(f"Runtime exited with error: exit status {status}")
    assert logged in tail(response)
    # The runtime is gone: the next invocation starts afresh, with new module state.
    result, response = invoke(lambda_client, name, LogType="Tail")
    assert "FunctionError" not in response, result
    assert result == 1
    assert "Init Duration" in tail(response)


def test_module_search_path(
    deploy: Deploy, lambda_client: Any, tmp_path: Path, unique_name: str
) -> None:
    layer_name = f"{unique_name}-layer"
    layer = lambda_client.publish_layer_version(
        LayerName=layer_name,
        Content={
            "ZipFile": make_zip(
                {
                    "nodejs/node_modules/from-layer/index.js": "exports.name = 'layer';\n",
                    "nodejs/node20/node_modules/from-node20/index.js": "exports.name = 'n20';\n",
                }
            )
        },
    )
    try:
        files: dict[str, str | bytes] = {
            "src/handler.js": """
const bundled = require("bundled");          // node_modules inside the zip
const shared = require("shared/util");       // the task root is on NODE_PATH
const fromLayer = require("from-layer");     // /opt/nodejs/node_modules
const fromNode20 = require("from-node20");   // /opt/nodejs/node20/node_modules
exports.handler = async () => [bundled.name, shared.name, fromLayer.name, fromNode20.name];
""",
            "node_modules/bundled/package.json": '{"name": "bundled", "main": "lib/main.js"}',
            "node_modules/bundled/lib/main.js": "exports.name = 'bundled';\n",
            "shared/util.js": "exports.name = 'shared';\n",
        }
        name = deploy_node(
            deploy, files, handler="src/handler.handler", Layers=[layer["LayerVersionArn"]]
        )
        result, response = invoke(lambda_client, name)
        assert "FunctionError" not in response, result
        assert result == ["bundled", "shared", "layer", "n20"]
    finally:
        lambda_client.delete_layer_version(LayerName=layer_name, VersionNumber=layer["Version"])


def test_example_node_hello(deploy: Deploy, lambda_client: Any) -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "node-hello"
    settings = json.loads((example / "lambdalet.json").read_text())
    assert settings["runtime"] == "nodejs20.x"
    files: dict[str, str | bytes] = {
        path.name: path.read_text() for path in example.iterdir() if path.name != "lambdalet.json"
    }
    name = deploy_node(deploy, files, handler=settings["handler"], runtime=settings["runtime"])
    result, response = invoke(lambda_client, name, {"name": "Ada"}, LogType="Tail")
    assert "FunctionError" not in response, result
    assert result["message"] == "Hello, Ada!"
    assert re.fullmatch(REQUEST_ID, result["request_id"])
    assert f"greeting Ada from {name}" in tail(response)


RIC_HANDLER = """
let calls = 0;
exports.handler = async (event, context) => {
  calls += 1;
  console.log("via aws-lambda-ric", context.awsRequestId);
  return { echo: event, calls, fn: context.functionName };
};
exports.fails = async () => { throw new TypeError("aws-lambda-ric saw this"); };
"""


@pytest.fixture(scope="module")
def aws_lambda_ric(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str | bytes]:
    """The official npm ``aws-lambda-ric``, installed (its native part built) for this run.

    Returns the files of the package a function zip needs, under node_modules/.
    """
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("installing aws-lambda-ric needs npm")
    scratch = tmp_path_factory.mktemp("aws-lambda-ric")
    (scratch / "package.json").write_text('{"name": "ric-probe", "private": true}')
    installed = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "aws-lambda-ric@3.3.0"],
        cwd=scratch,
        capture_output=True,
        text=True,
        timeout=900,
    )
    # A failed install is a failure (a missing build tool, say), never a skip.
    assert installed.returncode == 0, installed.stdout[-4000:] + installed.stderr[-4000:]
    package = scratch / "node_modules" / "aws-lambda-ric"
    assert (package / "dist" / "rapid-client.node").is_file(), "the native client was not built"
    files: dict[str, str | bytes] = {}
    for part in ("package.json", "bin", "dist"):
        for path in [package / part] if (package / part).is_file() else (package / part).rglob("*"):
            if path.is_file():
                files[f"node_modules/aws-lambda-ric/{path.relative_to(package)}"] = (
                    path.read_bytes()
                )
    return files


def ric_bootstrap() -> str:
    entry = "$LAMBDA_TASK_ROOT/node_modules/aws-lambda-ric/bin/index.mjs"
    return f'#!/bin/sh\nexec {shutil.which("node")} "{entry}" "$_HANDLER"\n'


def test_aws_lambda_ric_serves_invocations(
    deploy: Deploy, lambda_client: Any, aws_lambda_ric: dict[str, str | bytes]
) -> None:
    files = {**aws_lambda_ric, "bootstrap": ric_bootstrap(), "index.js": RIC_HANDLER}
    name = deploy_node(
        deploy,
        files,
        handler="index.handler",
        runtime="provided.al2023",
        modes={"bootstrap": EXECUTABLE},
    )
    for calls in (1, 2):
        result, response = invoke(lambda_client, name, {"n": calls}, LogType="Tail")
        assert "FunctionError" not in response, result
        assert result == {"echo": {"n": calls}, "calls": calls, "fn": name}
        assert "via aws-lambda-ric" in tail(response)

    failing = deploy_node(
        deploy,
        files,
        handler="index.fails",
        runtime="provided.al2023",
        modes={"bootstrap": EXECUTABLE},
    )
    error, response = invoke(lambda_client, failing)
    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "TypeError"
    assert error["errorMessage"] == "aws-lambda-ric saw this"

    missing = deploy_node(
        deploy,
        files,
        handler="index.nowhere",
        runtime="provided.al2023",
        modes={"bootstrap": EXECUTABLE},
    )
    error, response = invoke(lambda_client, missing)
    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Runtime.HandlerNotFound"
    assert error["errorMessage"] == "index.nowhere is undefined or not exported"
