'use strict';
/**
 * lambdalet's Node.js runtime: a Lambda Runtime API client that runs inside the sandbox.
 *
 * Node's built-in modules only (no npm dependency): the host starts it as
 * `node node_bootstrap.js` with the standard Lambda environment (AWS_LAMBDA_RUNTIME_API,
 * _HANDLER, LAMBDA_TASK_ROOT, NODE_PATH, ...) and the task root as working directory. It
 * behaves like AWS's nodejs runtimes (aws-lambda-nodejs-runtime-interface-client):
 *
 * - `_HANDLER` is `path/to/module.export[.nested]`, relative to LAMBDA_TASK_ROOT. The module is
 *   looked up as AWS does: the extensionless file, `.js` (require, or import() when the nearest
 *   package.json says "type": "module"), `.mjs` (import()), `.cjs` (require), then a package
 *   on the module search path (node_modules, NODE_PATH). It is loaded once: module-level state
 *   survives between invocations.
 * - Load failures are posted to /runtime/init/error with AWS's types and messages:
 *   Runtime.MalformedHandlerName ("Bad handler"), Runtime.ImportModuleError ("Error: Cannot
 *   find module 'x'..."), Runtime.UserCodeSyntaxError ("SyntaxError: ..."),
 *   Runtime.HandlerNotFound ("index.nope is undefined or not exported"); any other error thrown
 *   by the module's top level keeps its own name. The process then exits with status 129.
 * - Handlers may return a promise (async), call `callback(err, result)`, call the legacy
 *   `context.done/succeed/fail`, or return a plain value. Whichever completes first wins.
 *   `callback` honours `context.callbackWaitsForEmptyEventLoop` (default true) exactly as AWS:
 *   the result is posted once the event loop has nothing left to do (Node's "beforeExit"),
 *   so timers and sockets the handler left running finish first; set it to false to reply at
 *   once. A handler that neither returns nor calls anything is answered with null when the
 *   loop empties, as on AWS.
 *   One deliberate difference: AWS ignores a plain (non-promise) return value and answers
 *   null; here a handler declared with fewer than three parameters that returns a value other
 *   than undefined is answered with that value. A three-parameter handler is a callback
 *   handler and its return value is ignored (arrow functions often return a timer by accident).
 * - Results are serialised with JSON.stringify (undefined becomes null). A result that cannot
 *   be serialised fails the invocation as on AWS: errorType "Error", errorMessage "Unable to
 *   stringify response body".
 * - Errors are posted in AWS's node shape {"errorType", "errorMessage", "trace"} with the
 *   Lambda-Runtime-Function-Error-Type header; a thrown non-Error value gets its `typeof` as
 *   errorType. The runtime's own stack frames are left out of "trace".
 * - An uncaught exception or unhandled promise rejection during an invocation is logged
 *   ("Uncaught Exception" / "Unhandled Promise Rejection", as AWS logs them) and the process
 *   exits with status 129 / 128 without replying, so the host reports that invocation as
 *   Runtime.ExitError ("Runtime exited with error: exit status 128") and the next invocation
 *   starts a fresh sandbox. Not replying first keeps that deterministic: a reply followed by
 *   an exit would race with the host handing the dying sandbox its next invocation.
 * - console.log/info/debug/trace/warn/error/fatal write `ISO-time\trequestId\tLEVEL\tmessage`
 *   lines (newlines inside a message become \r so one call stays one log line), to stdout as
 *   AWS does, synchronously with fs.writeSync, so everything printed before a reply is in the
 *   pipe before the host sees the reply.
 * - process.env._X_AMZN_TRACE_ID is set from Lambda-Runtime-Trace-Id for each invocation,
 *   without the C library's setenv (traceEnvironment).
 */

const fs = require('fs');
const http = require('http');
const path = require('path');
const url = require('url');
const util = require('util');

const API_PREFIX = '/2018-06-01/runtime';
const EXIT_INIT_ERROR = 129;
const EXIT_UNCAUGHT_EXCEPTION = 129;
const EXIT_UNHANDLED_REJECTION = 128;

// ---------------------------------------------------------------------------------------------
// Errors with AWS's names

class LambdaRuntimeError extends Error {}

function runtimeError(shortName) {
  const cls = class extends LambdaRuntimeError {};
  Object.defineProperty(cls, 'name', { value: shortName });
  cls.prototype.name = `Runtime.${shortName}`;
  return cls;
}

const ImportModuleError = runtimeError('ImportModuleError');
const HandlerNotFound = runtimeError('HandlerNotFound');
const MalformedHandlerName = runtimeError('MalformedHandlerName');
const UserCodeSyntaxError = runtimeError('UserCodeSyntaxError');

class UnhandledPromiseRejection extends LambdaRuntimeError {
  constructor(reason, promise) {
    super(reason);
    this.reason = reason;
    this.promise = promise;
  }
}
UnhandledPromiseRejection.prototype.name = 'Runtime.UnhandledPromiseRejection';

function looksLikeError(value) {
  return (
    util.types.isNativeError(value) ||
    (value !== null &&
      typeof value === 'object' &&
      typeof value.name === 'string' &&
      typeof value.message === 'string' &&
      typeof value.stack === 'string')
  );
}

function ownFrame(line) {
  return line.includes(__filename);
}

/** The body AWS posts for an error: {errorType, errorMessage, trace}. */
function errorResponse(error) {
  try {
    if (looksLikeError(error)) {
      const stack = typeof error.stack === 'string' ? error.stack.split('\n') : [];
      return {
        errorType: String(error.name),
        errorMessage: String(error.message),
        trace: stack.filter((line) => !ownFrame(line)),
      };
    }
    return { errorType: typeof error, errorMessage: String(error), trace: [] };
  } catch (_unreadable) {
    return {
      errorType: 'handled',
      errorMessage:
        'callback called with Error argument, but there was a problem while retrieving one or' +
        ' more of its message, name, and stack',
      trace: [],
    };
  }
}

/** An error as AWS logs it: a tab, then JSON with its enumerable properties. */
function formatError(error) {
  const expand = (_key, value) => {
    if (value instanceof Error) {
      const expanded = Object.assign(
        { errorType: value.name, errorMessage: value.message, code: value.code },
        value,
      );
      if (typeof value.stack === 'string') {
        expanded.stack = value.stack.split('\n');
      }
      return expanded;
    }
    return value;
  };
  try {
    return '\t' + JSON.stringify(error, expand);
  } catch (_circular) {
    return '\t' + JSON.stringify(errorResponse(error));
  }
}

// ---------------------------------------------------------------------------------------------
// Logging

const logState = { requestId: undefined };

function writeAll(fd, text) {
  const buffer = Buffer.from(text, 'utf8');
  let offset = 0;
  let pauses = 0;
  while (offset < buffer.length) {
    try {
      offset += fs.writeSync(fd, buffer, offset, buffer.length - offset);
    } catch (error) {
      // A non-blocking pipe that is full: wait a moment (bounded) for the host to read it.
      if (error.code === 'EAGAIN' && pauses < 10000) {
        pauses += 1;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
        continue;
      }
      return; // stdout is gone: nothing more can be said
    }
  }
}

function logLine(level, message, params) {
  const text = util.format(message, ...params);
  const line = `${new Date().toISOString()}\t${logState.requestId}\t${level}\t${text}`;
  writeAll(1, line.replace(/\n/g, '\r') + '\n');
}

function patchConsole() {
  const levels = {
    trace: 'TRACE',
    debug: 'DEBUG',
    info: 'INFO',
    log: 'INFO',
    warn: 'WARN',
    error: 'ERROR',
    fatal: 'FATAL',
  };
  for (const [method, level] of Object.entries(levels)) {
    console[method] = (message, ...params) => logLine(level, message, params);
  }
}

// ---------------------------------------------------------------------------------------------
// Runtime API client

class RuntimeApi {
  /** A keep-alive HTTP client of the Runtime API at `host:port`. */
  constructor(address) {
    const colon = address.lastIndexOf(':');
    this.host = address.slice(0, colon);
    this.port = Number(address.slice(colon + 1));
    // Node unrefs idle keep-alive sockets, so a waiting connection never keeps the process up.
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  }

  request(method, route, body, headers) {
    return new Promise((resolve, reject) => {
      const allHeaders = Object.assign({}, headers);
      if (body !== undefined) {
        allHeaders['Content-Length'] = Buffer.byteLength(body);
      }
      const request = http.request(
        {
          host: this.host,
          port: this.port,
          method,
          path: API_PREFIX + route,
          agent: this.agent,
          headers: allHeaders,
        },
        (response) => {
          const chunks = [];
          response.on('data', (chunk) => chunks.push(chunk));
          response.on('end', () =>
            resolve({
              status: response.statusCode,
              headers: response.headers,
              body: Buffer.concat(chunks).toString('utf8'),
            }),
          );
          response.on('error', reject);
        },
      );
      request.on('error', reject);
      request.end(body);
    });
  }

  async next() {
    const reply = await this.request('GET', '/invocation/next');
    if (reply.status !== 200) {
      throw new Error(`Runtime API /invocation/next answered ${reply.status}: ${reply.body}`);
    }
    return reply;
  }

  async post(route, body, errorType) {
    const headers = { 'Content-Type': 'application/json' };
    if (errorType !== undefined) {
      // A header value must be printable ASCII; AWS's names always are.
      headers['Lambda-Runtime-Function-Error-Type'] =
        errorType.replace(/[^\x20-\x7e]/g, '') || 'Unhandled';
    }
    const reply = await this.request('POST', route, body, headers);
    if (reply.status !== 202) {
      // 413 (response too large) or 400 (the host gave up on this request): the host has
      // already decided the outcome; say why in the log and serve the next invocation.
      logLine('ERROR', 'Runtime API %s answered %d: %s', [route, reply.status, reply.body]);
    }
  }

  respond(requestId, body) {
    return this.post(`/invocation/${encodeURIComponent(requestId)}/response`, body);
  }

  fail(requestId, error) {
    const response = errorResponse(error);
    return this.post(
      `/invocation/${encodeURIComponent(requestId)}/error`,
      JSON.stringify(response),
      response.errorType,
    );
  }

  initError(error) {
    const response = errorResponse(error);
    return this.post('/init/error', JSON.stringify(response), response.errorType);
  }
}

// ---------------------------------------------------------------------------------------------
// Loading the handler

function packageTypeIsModule(folder) {
  // The nearest package.json decides; a node_modules folder ends the search, as in AWS's runtime.
  for (let current = folder; ; current = path.dirname(current)) {
    if (current.endsWith(`${path.sep}node_modules`)) {
      return false;
    }
    const manifest = path.join(current, 'package.json');
    if (fs.existsSync(manifest)) {
      try {
        const parsed = JSON.parse(fs.readFileSync(manifest, 'utf8'));
        return Boolean(parsed) && parsed.type === 'module';
      } catch (error) {
        console.warn(`${manifest} cannot be read, it is ignored for ES module detection.`, error);
        return false;
      }
    }
    if (path.dirname(current) === current) {
      return false;
    }
  }
}

async function loadModule(appRoot, moduleRoot, moduleName) {
  const base = path.resolve(appRoot, moduleRoot, moduleName);
  const exists = (candidate) => fs.existsSync(candidate);
  if (exists(base)) {
    return require(base);
  }
  const esmPackage = packageTypeIsModule(path.dirname(base));
  if (exists(`${base}.js`)) {
    return esmPackage ? import(url.pathToFileURL(`${base}.js`).href) : require(`${base}.js`);
  }
  if (exists(`${base}.mjs`)) {
    return import(url.pathToFileURL(`${base}.mjs`).href);
  }
  if (exists(`${base}.cjs`)) {
    return require(`${base}.cjs`);
  }
  // A package on the search path (node_modules of the task root, NODE_PATH: layers and the
  // task root). require() alone would search from this file's folder, not the task's.
  const found = require.resolve(moduleName, {
    paths: [path.resolve(appRoot, moduleRoot), appRoot],
  });
  return require(found);
}

/** Import `path/to/module.export[.nested]` from the task root, failing as AWS names it. */
async function loadHandler(appRoot, fullHandler) {
  if (!fullHandler) {
    throw new MalformedHandlerName('Bad handler');
  }
  if (fullHandler.includes('..')) {
    throw new MalformedHandlerName('Relative paths are not allowed in handler name');
  }
  const base = path.basename(fullHandler);
  const moduleRoot = fullHandler.slice(0, fullHandler.length - base.length);
  const match = /^([^.]*)\.(.*)$/.exec(base);
  if (!match || !match[1] || !match[2]) {
    throw new MalformedHandlerName('Bad handler');
  }
  const [, moduleName, exportPath] = match;
  let loaded;
  try {
    loaded = await loadModule(appRoot, moduleRoot, moduleName);
  } catch (error) {
    if (error instanceof SyntaxError) {
      throw new UserCodeSyntaxError(String(error));
    }
    if (error && (error.code === 'MODULE_NOT_FOUND' || error.code === 'ERR_MODULE_NOT_FOUND')) {
      throw new ImportModuleError(String(error));
    }
    throw error;
  }
  const handler = exportPath
    .split('.')
    .reduce((value, key) => (value === undefined || value === null ? value : value[key]), loaded);
  if (!handler) {
    throw new HandlerNotFound(`${fullHandler} is undefined or not exported`);
  }
  if (typeof handler !== 'function') {
    throw new HandlerNotFound(`${fullHandler} is not a function`);
  }
  return handler;
}

// ---------------------------------------------------------------------------------------------
// One invocation

function jsonHeader(value) {
  if (!value) {
    return undefined;
  }
  try {
    return JSON.parse(value);
  } catch (_malformed) {
    return undefined;
  }
}

// What to do when the event loop empties during an invocation (Node's "beforeExit"): post a
// callback's result, or answer null for a handler that never completed.
const emptyLoop = { action: null };

process.on('beforeExit', () => {
  const action = emptyLoop.action;
  emptyLoop.action = null;
  if (action !== null) {
    action();
  }
});

function isThenable(value) {
  return value !== null && typeof value === 'object' && typeof value.then === 'function';
}

/** Run one invocation; resolves once its result or error has been posted. */
function invoke(api, handler, invocation) {
  const headers = invocation.headers;
  const requestId = headers['lambda-runtime-aws-request-id'] || '';
  const deadlineMs = Number(headers['lambda-runtime-deadline-ms'] || 0);
  return new Promise((resolveInvocation) => {
    let completed = false;
    let waitsForEmptyEventLoop = true;

    const post = (error, result) => {
      emptyLoop.action = null;
      let sending;
      if (error !== undefined) {
        console.error('Invoke Error', formatError(error));
        sending = api.fail(requestId, error);
      } else {
        let body;
        try {
          body = JSON.stringify(result === undefined ? null : result);
        } catch (_unserialisable) {
          post(new Error('Unable to stringify response body'));
          return;
        }
        // JSON.stringify answers undefined for a function or a symbol.
        sending = api.respond(requestId, body === undefined ? 'null' : body);
      }
      sending.then(resolveInvocation, exitOnLostApi);
    };

    // Only the first of callback, done, succeed, fail and a returned promise counts.
    const once = (complete) =>
      function completeOnce(...args) {
        if (!completed) {
          completed = true;
          complete(...args);
        }
      };
    const done = once((error, result) => {
      if (error !== undefined && error !== null) {
        post(error);
      } else {
        post(undefined, result);
      }
    });
    const callback = once((error, result) => {
      if (error !== undefined && error !== null) {
        post(error);
      } else if (!waitsForEmptyEventLoop) {
        post(undefined, result);
      } else {
        emptyLoop.action = () => setImmediate(() => post(undefined, result));
      }
    });
    const succeed = (result) => done(null, result);
    const fail = (error) => done(error === undefined || error === null ? 'handled' : error);

    const context = {
      get callbackWaitsForEmptyEventLoop() {
        return waitsForEmptyEventLoop;
      },
      set callbackWaitsForEmptyEventLoop(value) {
        waitsForEmptyEventLoop = value;
      },
      done,
      succeed,
      fail,
      functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
      functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
      invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
      memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
      awsRequestId: requestId,
      logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
      logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
      identity: jsonHeader(headers['lambda-runtime-cognito-identity']),
      clientContext: jsonHeader(headers['lambda-runtime-client-context']),
      getRemainingTimeInMillis() {
        return Math.max(deadlineMs - Date.now(), 0);
      },
    };

    // A handler that never completes is answered with null once nothing is left to run.
    emptyLoop.action = () => done(null, null);
    let returned;
    try {
      const event = invocation.body ? JSON.parse(invocation.body) : {};
      returned = handler(event, context, callback);
    } catch (error) {
      callback(error);
      return;
    }
    if (isThenable(returned)) {
      returned.then(succeed, fail);
    } else if (returned !== undefined && handler.length < 3) {
      succeed(returned);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// The process

const phase = { initialised: false };

function exitOnLostApi(error) {
  logLine('ERROR', 'Lost the Runtime API: %s', [String(error)]);
  process.exit(1);
}

function onUncaught(api, title, error, exitCode) {
  console.error(title, formatError(error));
  if (!phase.initialised) {
    // Before the first poll the host is waiting for init to finish: tell it why it did not.
    api.initError(error).then(
      () => process.exit(exitCode),
      () => process.exit(exitCode),
    );
    return;
  }
  // During (or between) invocations: exit without replying; see the module comment.
  process.exit(exitCode);
}

const TRACE_VARIABLE = '_X_AMZN_TRACE_ID';

/**
 * process.env with _X_AMZN_TRACE_ID kept in JavaScript. Node sets a variable of process.env
 * with the C library's setenv, which copies every value it is given and never frees one; with
 * a trace id of its own for each invocation, a busy sandbox would grow by about 170 bytes an
 * invocation. Whatever reads process.env still sees it, child processes included
 * (child_process copies process.env's keys and values); every other variable is the real one.
 */
function traceEnvironment(env) {
  let traceId;
  return new Proxy(env, {
    get: (target, key) => (key === TRACE_VARIABLE ? traceId : Reflect.get(target, key)),
    set: (target, key, value) => {
      if (key !== TRACE_VARIABLE) return Reflect.set(target, key, value);
      traceId = String(value);
      return true;
    },
    has: (target, key) =>
      key === TRACE_VARIABLE ? traceId !== undefined : Reflect.has(target, key),
    deleteProperty: (target, key) => {
      if (key !== TRACE_VARIABLE) return Reflect.deleteProperty(target, key);
      traceId = undefined;
      return true;
    },
    ownKeys: (target) => {
      const keys = Reflect.ownKeys(target).filter((key) => key !== TRACE_VARIABLE);
      return traceId === undefined ? keys : [...keys, TRACE_VARIABLE];
    },
    getOwnPropertyDescriptor: (target, key) => {
      if (key !== TRACE_VARIABLE) return Reflect.getOwnPropertyDescriptor(target, key);
      if (traceId === undefined) return undefined;
      return { value: traceId, writable: true, enumerable: true, configurable: true };
    },
  });
}

async function main() {
  process.env = traceEnvironment(process.env);
  patchConsole();
  const api = new RuntimeApi(process.env.AWS_LAMBDA_RUNTIME_API || '127.0.0.1:9001');
  process.on('uncaughtException', (error) => {
    onUncaught(api, 'Uncaught Exception', error, EXIT_UNCAUGHT_EXCEPTION);
  });
  process.on('unhandledRejection', (reason, promise) => {
    const error = new UnhandledPromiseRejection(
      reason === undefined || reason === null ? String(reason) : reason.toString(),
      promise,
    );
    onUncaught(api, 'Unhandled Promise Rejection', error, EXIT_UNHANDLED_REJECTION);
  });

  const appRoot = process.env.LAMBDA_TASK_ROOT || process.cwd();
  let handler;
  try {
    handler = await loadHandler(appRoot, process.env._HANDLER);
  } catch (error) {
    console.error('Uncaught Exception', formatError(error));
    try {
      await api.initError(error);
    } finally {
      process.exit(EXIT_INIT_ERROR);
    }
  }
  for (;;) {
    const invocation = api.next();
    phase.initialised = true;
    const next = await invocation;
    const requestId = next.headers['lambda-runtime-aws-request-id'];
    logState.requestId = requestId;
    const traceId = next.headers['lambda-runtime-trace-id'];
    if (traceId) {
      process.env[TRACE_VARIABLE] = traceId;
    } else {
      delete process.env[TRACE_VARIABLE];
    }
    await invoke(api, handler, next);
  }
}

if (require.main === module) {
  main().catch(exitOnLostApi);
} else {
  module.exports = { traceEnvironment }; // for lambdalet's tests
}
