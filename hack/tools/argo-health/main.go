// argo-health runs an Argo CD resource health script (Lua, in gopher-lua as Argo CD embeds it)
// over one Kubernetes object read as JSON or YAML from stdin, the way Argo CD does: the object is
// the global `obj`, and the script returns a table with `status` and `message`.
//
//	kubectl get managedsecret app -o json | argo-health health.lua
//	{"status":"Healthy","message":"Synced"}
//
// Rotor's tests run docs/gitops.md's script with it; see tests/integration/test_health_tools.py.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

type verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	if len(os.Args) != 2 {
		fail("usage: argo-health SCRIPT.lua < object.json")
	}
	script, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail("reading the script: %v", err)
	}
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("reading stdin: %v", err)
	}
	doc, err := yaml.YAMLToJSON(in)
	if err != nil {
		fail("stdin is neither JSON nor YAML: %v", err)
	}
	var obj map[string]interface{}
	if err := json.Unmarshal(doc, &obj); err != nil || obj == nil {
		fail("stdin is not one object: %v", err)
	}

	L := lua.NewState()
	defer L.Close()
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(string(script)); err != nil {
		fail("the script failed: %v", err)
	}
	ret := L.Get(-1)
	hs, ok := ret.(*lua.LTable)
	if !ok {
		fail("the script returned %s, not a table", ret.Type().String())
	}
	out, _ := json.Marshal(verdict{
		Status:  lua.LVAsString(hs.RawGetString("status")),
		Message: lua.LVAsString(hs.RawGetString("message")),
	})
	fmt.Println(string(out))
}

// toLua converts decoded JSON to Lua values: objects become tables with string keys, arrays
// tables indexed from 1 (so ipairs works), null becomes nil.
func toLua(L *lua.LState, v interface{}) lua.LValue {
	switch x := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(x)
	case float64:
		return lua.LNumber(x)
	case string:
		return lua.LString(x)
	case []interface{}:
		t := L.NewTable()
		for _, item := range x {
			t.Append(toLua(L, item))
		}
		return t
	case map[string]interface{}:
		t := L.NewTable()
		for k, item := range x {
			t.RawSetString(k, toLua(L, item))
		}
		return t
	}
	return lua.LString(fmt.Sprint(v))
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "argo-health: "+format+"\n", args...)
	os.Exit(2)
}
