// A custom Lambda runtime in Go, standard library only: the zip's `bootstrap`.
//
// It speaks the Lambda Runtime API at $AWS_LAMBDA_RUNTIME_API: it long-polls
// /invocation/next, answers each event with a greeting, the request id, its pid and a
// counter (the same process serves every warm invocation), and reports an event
// {"fail": true} through /invocation/{id}/error. An unknown _HANDLER is reported
// through /init/error. Build: go build -o bootstrap main.go
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
)

const errorType = "CustomGo.AskedToFail"

type runtimeAPI struct {
	base   string
	client *http.Client
}

type lambdaError struct {
	ErrorType    string `json:"errorType"`
	ErrorMessage string `json:"errorMessage"`
}

// post sends a JSON body and insists on the 202 the Runtime API answers with.
func (api runtimeAPI) post(path string, body any, functionErrorType string) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	request, err := http.NewRequest(http.MethodPost, api.base+path, bytes.NewReader(data))
	if err != nil {
		return err
	}
	request.Header.Set("Content-Type", "application/json")
	if functionErrorType != "" {
		request.Header.Set("Lambda-Runtime-Function-Error-Type", functionErrorType)
	}
	response, err := api.client.Do(request)
	if err != nil {
		return err
	}
	defer response.Body.Close()
	// Read to the end so the keep-alive connection is reused for the next poll.
	if _, err := io.Copy(io.Discard, response.Body); err != nil {
		return err
	}
	if response.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST %s: status %d", path, response.StatusCode)
	}
	return nil
}

func main() {
	api := runtimeAPI{
		base:   "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime",
		client: &http.Client{}, // no timeout: /invocation/next blocks until there is work
	}
	handler := os.Getenv("_HANDLER")
	if handler != "echo" {
		message := fmt.Sprintf("go runtime has no handler '%s' (only \"echo\")", handler)
		fmt.Fprintln(os.Stderr, message)
		initError := lambdaError{"Runtime.HandlerNotFound", message}
		if err := api.post("/init/error", initError, initError.ErrorType); err != nil {
			fmt.Fprintln(os.Stderr, "could not report the init error:", err)
		}
		os.Exit(1)
	}
	pid := os.Getpid()
	count := 0
	for {
		response, err := api.client.Get(api.base + "/invocation/next")
		if err != nil {
			fmt.Fprintln(os.Stderr, "GET /invocation/next:", err)
			os.Exit(1)
		}
		payload, err := io.ReadAll(response.Body)
		response.Body.Close()
		if err != nil {
			fmt.Fprintln(os.Stderr, "reading the event:", err)
			os.Exit(1)
		}
		requestID := response.Header.Get("Lambda-Runtime-Aws-Request-Id")
		deadlineMs, _ := strconv.ParseInt(response.Header.Get("Lambda-Runtime-Deadline-Ms"), 10, 64)
		count++
		fmt.Printf("go runtime handling %s (invocation %d in pid %d)\n", requestID, count, pid)

		var event any
		if len(bytes.TrimSpace(payload)) > 0 {
			if err := json.Unmarshal(payload, &event); err != nil {
				event = string(payload)
			}
		}
		if fields, ok := event.(map[string]any); ok && fields["fail"] == true {
			failure := lambdaError{errorType, fmt.Sprintf("go runtime was asked to fail %s", requestID)}
			err = api.post("/invocation/"+requestID+"/error", failure, errorType)
		} else {
			result := map[string]any{
				"greeting":     "hello from go",
				"runtime":      "go",
				"handler":      handler,
				"request_id":   requestID,
				"function_arn": response.Header.Get("Lambda-Runtime-Invoked-Function-Arn"),
				"deadline_ms":  deadlineMs,
				"pid":          pid,
				"count":        count,
				"event":        event,
			}
			err = api.post("/invocation/"+requestID+"/response", result, "")
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "posting the result:", err)
			os.Exit(1)
		}
	}
}
