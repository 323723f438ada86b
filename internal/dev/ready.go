package dev

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// ready prints the "try this" block and the ready line, and writes the
// ready file with the kubeconfig's path.
func (r *run) ready(kubeconfig string, st state, judged string, took time.Duration) error {
	fmt.Fprintf(r.stdout, `
Try this:

    export KUBECONFIG=%s
    %s
    %s
    kubectl get constraints

`, kubeconfig, RefusedCommand(), AdmittedCommand())
	if st.Samples == samplesSkipped && !r.o.Samples {
		fmt.Fprintln(r.stdout, "(this data dir was made with --no-samples: no sample constraint is loaded, both namespaces are admitted; --samples applies them)")
	}
	fmt.Fprintf(r.stderr, "portcullis dev: up in %s; Ctrl-C stops it, `make dev-clean` forgets %s\n", took.Round(100*time.Millisecond), r.dataDir)
	fmt.Fprintf(r.stdout, "%s; %s\n", ReadyLine, judged)
	if r.o.ReadyFile != "" {
		if err := os.WriteFile(r.o.ReadyFile, []byte(kubeconfig+"\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// RefusedCommand creates a namespace without the labels the samples
// require.
func RefusedCommand() string {
	return "kubectl create namespace " + RefusedNamespace + "   # refused: no owner and test labels"
}

// AdmittedCommand creates a namespace with them.
func AdmittedCommand() string {
	return "kubectl create namespace " + AdmittedNamespace + " --dry-run=client -o yaml | kubectl label -f - --local owner=demo.team test=true -o yaml | kubectl apply -f -"
}

// joinAnd joins "a", "b and c".
func joinAnd(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}
