package docs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// coveredElsewhere lists the documented commands this test does not run,
// by their text without comment, and what covers each one instead. Every
// other command in the documentation is run; an entry no page uses fails
// the test.
var coveredElsewhere = map[string]string{
	"make dev": "make dev is `make build` then `portcullis dev --data-dir .dev --`. This test runs " +
		"`portcullis dev --data-dir <tmp>/.dev` and every page against it; TestDev (cli/dev_test.go) " +
		"checks the commands and the ready line it prints, a second instance, SIGKILL and recovery, " +
		"and TestDevSignalDuringStartup Ctrl-C at each step.",
	"make test": "make test runs `go test ./...`, which runs this test.",
	"make build": "make build is `go build -o bin/portcullis .`; this test runs the same build into a " +
		"temporary directory.",
	"export PATH=$PWD/bin:$PATH": "this test puts its own build first on PATH instead, so that a stale " +
		"bin/portcullis is never tested.",
	"make docker-build IMG=registry.example.com/portcullis:0.1.0": "needs Docker, which the test machines " +
		"do not have: not run. The Dockerfile's build step is the `go build` this test runs.",
	"helm install portcullis charts/portcullis --namespace portcullis-system --create-namespace --set image.repository=registry.example.com/portcullis --set image.release=0.1.0": "against a real cluster: " +
		"TestChartTemplate (charts/chart_test.go) applies what the chart renders, with its defaults and with other values, " +
		"with kubectl apply --dry-run=server to an envtest API server, and TestChartInstall (internal/manager) runs its pods' " +
		"argument lists against envtest.",
	"helm template portcullis charts/portcullis --set replicas=three": "needs bin/helm, which `make test` builds: " +
		"TestChartSchema (charts/chart_test.go) renders the chart with this and other bad values and checks the error.",
	"helm upgrade gatekeeper gatekeeper/gatekeeper --namespace gatekeeper-system --reuse-values --set image.repository=registry.example.com/portcullis --set image.release=0.1.0 --set-json 'controllerManager.extraRules=[{\"apiGroups\":[\"coordination.k8s.io\"],\"resources\":[\"leases\"],\"verbs\":[\"get\",\"list\",\"watch\",\"create\",\"update\",\"patch\",\"delete\"]}]'": "needs Gatekeeper's chart " +
		"and a real cluster: TestGatekeeperChartArgs (internal/manager) runs the binary as /manager with the argument lists " +
		"of Gatekeeper's chart against envtest.",
	"kubectl apply -k config/default": "against a real cluster: TestDefaultManifests (config/manifests_test.go) " +
		"applies the same kustomization with --dry-run=server to an envtest API server, and this test " +
		"runs `kubectl apply -k config/default --dry-run=client` from install.md.",
}

const (
	commandTimeout = 2 * time.Minute
	readyTimeout   = 90 * time.Second
	// metricsLogRE finds the metrics address in portcullis.log.
	metricsLogRE = `"bindAddress": "([^"]+)"`
)

// TestDocs runs every command of README.md and docs/*.md in page order:
// the offline ones (portcullis verify, test, bench, cat) from the
// repository root, then the cluster ones (kubectl, curl, export) against
// one `portcullis dev`, from a copy of the root made of symlinks whose .dev
// is that instance's data directory, as `make dev` lays it out.
func TestDocs(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	pages := docPages(t, root)
	var offline, cluster []*command
	used := map[string]bool{}
	for _, p := range pages {
		cmds, err := parseCommands(filepath.Join(root, p), p)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cmds {
			switch {
			case coveredElsewhere[c.key] != "":
				used[c.key] = true
				t.Logf("%s: $ %s\n\tnot run: %s", c.where(), c.text, coveredElsewhere[c.key])
			case isClusterCommand(c):
				cluster = append(cluster, c)
			default:
				offline = append(offline, c)
			}
		}
	}
	for k := range coveredElsewhere {
		if !used[k] {
			t.Errorf("coveredElsewhere lists %q, which no page shows any more", k)
		}
	}
	t.Logf("%d commands run offline, %d against portcullis dev, %d covered elsewhere", len(offline), len(cluster), len(used))

	work := t.TempDir()
	binDir := filepath.Join(work, "bin")
	testenv.BuildPortcullis(t, binDir)
	env := baseEnv(work, binDir)
	library, libErr := testenv.LibraryPath()

	// Start portcullis dev first: it comes up while the offline commands run.
	view := filepath.Join(work, "root")
	dev, skip := startDev(t, root, view, binDir)

	t.Run("offline", func(t *testing.T) {
		for _, c := range offline {
			if libErr != nil && needsLibrary(c) {
				if testenv.InCI() {
					t.Errorf("%s: %s needs %s: %v", c.where(), c.text, library, libErr)
				} else {
					t.Logf("%s: skipped, %s is not there (as make conformance skips)", c.where(), library)
				}
				continue
			}
			if err := runChecked(t, c, root, env); err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("cluster", func(t *testing.T) {
		if skip != "" {
			t.Skip(skip)
		}
		if err := dev.waitReady(readyTimeout); err != nil {
			t.Fatal(err)
		}
		for _, c := range cluster {
			if name, ok := exportName(c); ok {
				value, err := runExport(c, name, view, env)
				if err != nil {
					t.Fatal(err)
				}
				env = setEnv(env, name, value)
				t.Logf("%s: $ %s\n\t%s=%s", c.where(), c.text, name, value)
				continue
			}
			if err := runChecked(t, c, view, env); err != nil {
				// Later commands build on this one: stop here.
				t.Fatal(err)
			}
		}
		checkMetrics(t, filepath.Join(root, "docs", "metrics.md"), root, dev.metricsAddress(t))
	})
}

// docPages lists the pages in reading order: docs/README.md, the pages it
// links to in order, then the top-level README.md. Every docs/*.md must be
// linked, and every relative link of every page must lead to a file.
func docPages(t *testing.T, root string) []string {
	t.Helper()
	index := filepath.Join("docs", "README.md")
	pages := []string{index}
	seen := map[string]bool{index: true}
	b, err := os.ReadFile(filepath.Join(root, index))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`\]\(([a-z0-9-]+\.md)\)`).FindAllStringSubmatch(string(b), -1) {
		p := filepath.Join("docs", m[1])
		if !seen[p] {
			seen[p] = true
			pages = append(pages, p)
		}
	}
	all, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range all {
		if rel, _ := filepath.Rel(root, f); !seen[rel] {
			t.Errorf("%s is not linked from %s", rel, index)
		}
	}
	pages = append(pages, "README.md")
	link := regexp.MustCompile(`\]\(([^)#\s]*)(?:#([^)]*))?\)`)
	for _, p := range pages {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target, anchor := m[1], m[2]
			if strings.Contains(target, "://") {
				continue
			}
			path := filepath.Join(root, filepath.Dir(p), target)
			if target == "" {
				path = filepath.Join(root, p)
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s links to %s, which does not exist", p, target)
				continue
			}
			if anchor != "" && strings.HasSuffix(path, ".md") && !slices.Contains(headingAnchors(t, path), anchor) {
				t.Errorf("%s links to %s#%s, which has no such heading", p, target, anchor)
			}
		}
	}
	return pages
}

// headingAnchors are the anchors GitHub gives the headings of a Markdown
// file: lower case, punctuation dropped, spaces turned into hyphens.
func headingAnchors(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var anchors []string
	for line := range strings.SplitSeq(string(b), "\n") {
		title, ok := strings.CutPrefix(strings.TrimLeft(line, "#"), " ")
		if !ok || !strings.HasPrefix(line, "#") {
			continue
		}
		var a strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case r == ' ':
				a.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				a.WriteRune(r)
			}
		}
		anchors = append(anchors, a.String())
	}
	return anchors
}

var clusterWordRE = regexp.MustCompile(`(^|[\s|;&(])(kubectl|curl)\s`)

// isClusterCommand reports whether c needs the dev cluster: it runs
// kubectl or curl, or sets a variable (KUBECONFIG, METRICS) for them.
func isClusterCommand(c *command) bool {
	_, export := exportName(c)
	return export || clusterWordRE.MatchString(c.key)
}

var exportRE = regexp.MustCompile(`^export ([A-Za-z_][A-Za-z0-9_]*)=`)

func exportName(c *command) (string, bool) {
	m := exportRE.FindStringSubmatch(c.key)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// needsLibrary reports whether c reads the gatekeeper-library in ../shared.
func needsLibrary(c *command) bool {
	return strings.Contains(c.key, "gatekeeper-library") || strings.Contains(c.key, "library-bench-args")
}

// baseEnv is the environment of every documented command: this build of
// portcullis first on PATH, a kubectl cache of the test's own, and a
// KUBECONFIG that reaches nothing until a documented export sets it.
func baseEnv(work, binDir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "KUBECONFIG=") || strings.HasPrefix(kv, "PATH=") || strings.HasPrefix(kv, "KUBECACHEDIR=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"),
		"KUBECONFIG="+filepath.Join(work, "no-kubeconfig-until-exported"),
		"KUBECACHEDIR="+filepath.Join(work, "kube-cache"),
	)
}

func setEnv(env []string, name, value string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return append(out, name+"="+value)
}

// run runs one command line with bash in dir and returns its combined
// output and exit status.
func run(text, dir string, env []string) (string, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-o", "pipefail", "-c", text)
	cmd.Dir = dir
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return string(out), -1, fmt.Errorf("timed out after %s", commandTimeout)
	case errors.As(err, &ee):
		return string(out), ee.ExitCode(), nil
	case err != nil:
		return string(out), -1, err
	}
	return string(out), 0, nil
}

// runChecked runs c, again and again up to its retry time if it has one,
// until its exit status and output are as documented.
func runChecked(t *testing.T, c *command, dir string, env []string) error {
	begin := time.Now()
	deadline := begin.Add(c.retry)
	tries := 0
	for {
		tries++
		out, code, err := run(c.text, dir, env)
		problem := check(c, out, code, err)
		if problem == "" {
			t.Logf("%s: $ %s\n\texit %d, output as documented (%d tries, %s)", c.where(), c.text, code, tries, time.Since(begin).Round(10*time.Millisecond))
			return nil
		}
		if time.Now().After(deadline) {
			retried := ""
			if c.retry > 0 {
				retried = fmt.Sprintf(" (after %d tries in %s)", tries, c.retry)
			}
			return fmt.Errorf("%s: $ %s\n%s%s\noutput:\n%s", c.where(), c.text, problem, retried, out)
		}
		time.Sleep(time.Second)
	}
}

// check compares a run with the documentation; "" means it matches.
func check(c *command, out string, code int, err error) string {
	if err != nil {
		return err.Error()
	}
	if code != c.exit {
		return fmt.Sprintf("exit status %d, documented %d", code, c.exit)
	}
	if !c.checkOutput {
		return ""
	}
	if ok, line := matchOutput(c.want, outputLines(out)); !ok {
		if len(c.want) == 0 {
			return "documented without output, but it printed some"
		}
		return fmt.Sprintf("the output does not match the documented one at %q", line)
	}
	return ""
}

// runExport runs `export NAME=...` and returns the value it sets, which
// the commands that follow get, as in the reader's shell.
func runExport(c *command, name, dir string, env []string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-o", "pipefail", "-c", c.text+"\nprintf '%s' \"${"+name+"}\"")
	cmd.Dir = dir
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	switch {
	case err != nil:
		return "", fmt.Errorf("%s: $ %s: %w\n%s", c.where(), c.text, err, stderr.String())
	case len(out) == 0 || bytes.ContainsRune(out, '\n'):
		return "", fmt.Errorf("%s: $ %s: want one value, got %q\n%s", c.where(), c.text, out, stderr.String())
	}
	return string(out), nil
}
