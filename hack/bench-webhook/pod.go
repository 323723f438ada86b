package main

import (
	"bytes"
	_ "embed"
	"encoding/hex"
	"fmt"
	"strings"
)

// benchPod is the Pod the load sends, as the API server would pass it to
// the webhook on CREATE: defaulted fields, the kube-api-access volume and
// a managedFields entry included. Its two containers violate several
// library constraints: the latest tag, a disallowed repository, a
// privileged container with privilege escalation and added capabilities,
// host PID, no resource limits or requests, no probes, and no
// seccomp or AppArmor profile.
//
//go:embed pod.json
var benchPod string

// Pod modes, the -pods flag: what varies from one request to the next.
const (
	podsSame     = "same"
	podsReplicas = "replicas"
	podsDistinct = "distinct"
)

// reviewTemplate is the AdmissionReview around benchPod, with marks for
// what requests vary: the request uid always; the Pod's name suffix and
// uid (as when a ReplicaSet creates its pods); its main container's tag
// and its sidecar's command.
func reviewTemplate() string {
	return fmt.Sprintf(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{`+
		`"uid":"@@UID@@","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},`+
		`"requestKind":{"group":"","version":"v1","kind":"Pod"},"requestResource":{"group":"","version":"v1","resource":"pods"},`+
		`"name":"web-7c9d-@@SUFFIX@@","namespace":"default","operation":"CREATE",`+
		`"userInfo":{"username":"system:serviceaccount:kube-system:replicaset-controller","uid":"5d1c","groups":["system:serviceaccounts","system:serviceaccounts:kube-system","system:authenticated"]},`+
		`"object":%s,"oldObject":null,"dryRun":false,`+
		`"options":{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1","fieldManager":"kube-controller-manager"}}}`,
		compact(benchPod))
}

// reviewBody fills in the template for request n of a run in mode pods,
// with random bytes rnd for the uids and name.
func reviewBody(tmpl, pods string, n uint64, rnd [32]byte) []byte {
	uid := hex.EncodeToString(rnd[:16])
	suffix, objUID, tag, sleep := "x8k2q", "1b4e28ba-2fa1-11d2-883f-0016d3cca427", "latest", "3600"
	if pods != podsSame {
		suffix = hex.EncodeToString(rnd[16:19])[:5]
		objUID = hex.EncodeToString(rnd[19:27])
	}
	if pods == podsDistinct {
		tag = fmt.Sprintf("1.%d", n)
		sleep = fmt.Sprint(3600 + n)
	}
	return []byte(strings.NewReplacer("@@UID@@", uid, "@@SUFFIX@@", suffix, "@@OBJUID@@", objUID, "@@TAG@@", tag, "@@SLEEP@@", sleep).Replace(tmpl))
}

func compact(s string) string {
	var b bytes.Buffer
	inString, escaped := false, false
	for _, r := range s {
		switch {
		case escaped:
			escaped = false
		case r == '\\':
			escaped = true
		case r == '"':
			inString = !inString
		case !inString && (r == ' ' || r == '\n' || r == '\t'):
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
