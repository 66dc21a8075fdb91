// kstatus-check prints the kstatus verdict (sigs.k8s.io/cli-utils/pkg/kstatus/status, the
// library Flux and kpt use) of one Kubernetes object read as JSON or YAML from stdin:
//
//	kubectl get managedsecret app -o json | kstatus-check
//	{"status":"Current","message":"Resource is Ready"}
//
// Rotor's tests run it over live objects; see tests/integration/test_health_tools.py.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

type verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("reading stdin: %v", err)
	}
	doc, err := yaml.YAMLToJSON(in)
	if err != nil {
		fail("stdin is neither JSON nor YAML: %v", err)
	}
	// UnmarshalJSON keeps integers int64, as the apimachinery accessors kstatus uses expect.
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(doc); err != nil {
		fail("stdin is not one Kubernetes object: %v", err)
	}
	res, err := status.Compute(obj)
	if err != nil {
		fail("kstatus: %v", err)
	}
	out, _ := json.Marshal(verdict{Status: res.Status.String(), Message: res.Message})
	fmt.Println(string(out))
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "kstatus-check: "+format+"\n", args...)
	os.Exit(2)
}
