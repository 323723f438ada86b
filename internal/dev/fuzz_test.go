package dev

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzDataDirFiles feeds the files a data dir holds, as a crash or an
// older or newer version may have left them, to their parsers: the state
// file, the lock and the PID records. None may panic; a state file is
// either refused with an error or read as a format this version knows.
func FuzzDataDirFiles(f *testing.F) {
	for _, seed := range []string{
		`{"format": 2, "etcd": "v3.6.16", "samples": "applied"}`,
		`{"format": 99}`,
		`{"format": -1}`,
		`{"format": "2"}`,
		`not json`,
		"",
		"123\n",
		"123 456 3002fb1a-ced9-4a70-8a36-81e703ee22c7 2026-12-06T03:23:07Z\n",
		"etcd 6565 147530 3002fb1a-ced9-4a70-8a36-81e703ee22c7\nkube-apiserver 6580 147590 b\n",
		"etcd 99999999999999999999 1 b\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, content string) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, stateFile), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		st, _, err := loadState(dir)
		if err == nil && st.Format != dataDirFormat {
			t.Errorf("loadState(%q) = format %d without an error", content, st.Format)
		}
		if o, ok := parseOwner([]byte(content)); ok && o.PID <= 0 {
			t.Errorf("parseOwner(%q) accepted PID %d", content, o.PID)
		}
		if err := os.WriteFile(filepath.Join(dir, processesFile), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		ps, err := newRecords(dir).load()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if p.PID <= 0 {
				t.Errorf("records of %q hold PID %d", content, p.PID)
			}
			if q, ok := parseProc(p.line()); !ok || q != p {
				t.Errorf("record %+v does not survive a round trip", p)
			}
		}
		_, _, _ = majorMinor(content)
	})
}
