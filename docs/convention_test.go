package docs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConvention checks the reading of commands, markers and expected
// output that TestDocs relies on.
func TestConvention(t *testing.T) {
	t.Run("markers", func(t *testing.T) {
		for _, tc := range []struct {
			line  string
			key   string
			exit  int
			retry time.Duration
			bad   bool
		}{
			{line: "kubectl get ns", key: "kubectl get ns"},
			{line: "kubectl create ns x   # exit 1", key: "kubectl create ns x", exit: 1},
			{line: "kubectl get x  # retry 60s: the audit runs every 30 s", key: "kubectl get x", retry: time.Minute},
			{line: "k # exit 1, retry 5s", key: "k", exit: 1, retry: 5 * time.Second},
			{line: "make dev    # etcd, kube-apiserver and Portcullis", key: "make dev"},
			{line: `grep -o '"a": "[^"]*' f # exit 2`, key: `grep -o '"a": "[^"]*' f`, exit: 2},
			{line: `echo "a # b"`, key: `echo "a # b"`},
			{line: "curl http://x/#anchor", key: "curl http://x/#anchor"},
			{line: "k # exit one", bad: true},
			{line: "k # retry 5", bad: true},
			{line: `k \`, bad: true},
		} {
			c, err := newCommand("f.md", 1, tc.line, true)
			if tc.bad {
				if err == nil {
					t.Errorf("%q: want an error", tc.line)
				}
				continue
			}
			if err != nil {
				t.Errorf("%q: %v", tc.line, err)
				continue
			}
			if c.key != tc.key || c.exit != tc.exit || c.retry != tc.retry {
				t.Errorf("%q: got key %q exit %d retry %s, want %q %d %s", tc.line, c.key, c.exit, c.retry, tc.key, tc.exit, tc.retry)
			}
		}
	})

	t.Run("output", func(t *testing.T) {
		for _, tc := range []struct {
			want []string
			got  string
			ok   bool
		}{
			{want: nil, got: "", ok: true},
			{want: nil, got: "something", ok: false},
			{want: []string{"NAME   ACTION"}, got: "NAME\tACTION\n", ok: true},
			{want: []string{"a"}, got: "a\nb\n", ok: false},
			{want: []string{"a", "..."}, got: "a\nb\nc\n", ok: true},
			{want: []string{"...", "c"}, got: "a\nb\nc\n", ok: true},
			{want: []string{"...", "b"}, got: "a\nb\nc\n", ok: false},
			{want: []string{"a", "...", "c"}, got: "a\nc\n", ok: true},
			{want: []string{"ok  x.yaml  ..."}, got: "ok\tx.yaml\t0.01s\n", ok: true},
			{want: []string{"ns   deny   ..."}, got: "ns   deny\n", ok: true},
			{want: []string{"x (a) [b] ..."}, got: "x (a) [b] 3\n", ok: true},
			{want: []string{"x.y"}, got: "xzy\n", ok: false},
		} {
			ok, line := matchOutput(tc.want, outputLines(tc.got))
			if ok != tc.ok {
				t.Errorf("want %q, got %q: match %v (at %q), want %v", tc.want, tc.got, ok, line, tc.ok)
			}
		}
	})

	t.Run("blocks", func(t *testing.T) {
		dir := t.TempDir()
		write := func(name, text string) string {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}
		good := write("good.md", "text\n\n```console\n$ a   # exit 1\nout 1\n\nout 2\n$ b\n```\n\n```sh\n# comment\nc --flag   # note\n```\n\n```yaml\nkey: $ not a command\n```\n")
		cmds, err := parseCommands(good, "good.md")
		if err != nil {
			t.Fatal(err)
		}
		if len(cmds) != 3 {
			t.Fatalf("got %d commands, want 3", len(cmds))
		}
		if c := cmds[0]; c.key != "a" || c.exit != 1 || c.line != 4 || strings.Join(c.want, "|") != "out 1|out 2" || !c.checkOutput {
			t.Errorf("first command: %+v", c)
		}
		if c := cmds[1]; c.key != "b" || len(c.want) != 0 || !c.checkOutput {
			t.Errorf("second command: %+v", c)
		}
		if c := cmds[2]; c.key != "c --flag" || c.checkOutput || c.line != 13 {
			t.Errorf("third command: %+v", c)
		}
		for name, text := range map[string]string{
			"hidden.md":   "```text\n$ rm -rf /\n```\n",
			"orphan.md":   "```console\noutput first\n$ a\n```\n",
			"empty.md":    "```console\n```\n",
			"unclosed.md": "```console\n$ a\n",
			"marker.md":   "```console\n$ a # exit twice\n```\n",
		} {
			if _, err := parseCommands(write(name, text), name); err == nil {
				t.Errorf("%s: want an error", name)
			}
		}
	})
}
