package main

import (
	"bytes"
	"fmt"
)

// benchPod is the Pod the load sends, as the API server would pass it to
// the webhook on CREATE: defaulted fields, the kube-api-access volume and
// a managedFields entry included. Its two containers violate several
// library constraints: the latest tag, a disallowed repository, a
// privileged container with privilege escalation and added capabilities,
// host PID, no resource limits or requests, no probes, and no
// seccomp or AppArmor profile.
const benchPod = `{
  "apiVersion": "v1",
  "kind": "Pod",
  "metadata": {
    "name": "web-7c9d",
    "namespace": "default",
    "uid": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
    "creationTimestamp": "2026-11-22T10:00:00Z",
    "labels": {"app": "web", "pod-template-hash": "7c9d"},
    "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-22T09:59:58Z"},
    "managedFields": [{
      "manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
      "time": "2026-11-22T10:00:00Z", "fieldsType": "FieldsV1",
      "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}, "f:pod-template-hash": {}}},
        "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}, "k:{\"name\":\"sidecar\"}": {".": {}, "f:image": {}, "f:name": {}}}}}
    }]
  },
  "spec": {
    "hostPID": true,
    "containers": [
      {
        "name": "web",
        "image": "nginx:latest",
        "ports": [{"containerPort": 80, "protocol": "TCP"}],
        "securityContext": {"privileged": true, "allowPrivilegeEscalation": true, "capabilities": {"add": ["SYS_ADMIN", "NET_ADMIN"]}},
        "resources": {},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "Always",
        "volumeMounts": [{"name": "kube-api-access-x7k2p", "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]
      },
      {
        "name": "sidecar",
        "image": "k8s.gcr.io/busybox:latest",
        "command": ["sh", "-c", "sleep 3600"],
        "resources": {"requests": {"cpu": "10m"}},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "Always",
        "volumeMounts": [{"name": "kube-api-access-x7k2p", "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]
      }
    ],
    "volumes": [{
      "name": "kube-api-access-x7k2p",
      "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
      ]}
    }],
    "restartPolicy": "Always",
    "terminationGracePeriodSeconds": 30,
    "dnsPolicy": "ClusterFirst",
    "serviceAccountName": "default",
    "serviceAccount": "default",
    "securityContext": {},
    "schedulerName": "default-scheduler",
    "tolerations": [
      {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
      {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
    ],
    "priority": 0,
    "enableServiceLinks": true,
    "preemptionPolicy": "PreemptLowerPriority"
  },
  "status": {"phase": "Pending", "qosClass": "BestEffort"}
}`

const uidMark = "@@UID@@"

// reviewTemplate is the AdmissionReview around benchPod, with a mark where
// each request's uid goes.
func reviewTemplate() (prefix, suffix []byte) {
	body := fmt.Sprintf(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{`+
		`"uid":%q,"kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},`+
		`"requestKind":{"group":"","version":"v1","kind":"Pod"},"requestResource":{"group":"","version":"v1","resource":"pods"},`+
		`"name":"web-7c9d","namespace":"default","operation":"CREATE",`+
		`"userInfo":{"username":"system:serviceaccount:kube-system:replicaset-controller","uid":"5d1c","groups":["system:serviceaccounts","system:serviceaccounts:kube-system","system:authenticated"]},`+
		`"object":%s,"oldObject":null,"dryRun":false,`+
		`"options":{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1","fieldManager":"kube-controller-manager"}}}`,
		uidMark, compact(benchPod))
	i := bytes.Index([]byte(body), []byte(uidMark))
	return []byte(body[:i]), []byte(body[i+len(uidMark):])
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
