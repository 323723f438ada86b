package dev

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// processesFile lists, one a line, the processes a run started: name, PID,
// start time (clock ticks after boot, /proc/<pid>/stat field 22) and boot
// ID. A PID alone could by now belong to another process; with its start
// time and boot it names one process for good.
const processesFile = "processes"

// childNames are the programs a run starts; a process running one of them
// with its ownerFlag for the data dir belongs to a run of that data dir
// even when no record names it (killed before it was written).
var childNames = []string{"etcd", "kube-apiserver", "kube-controller-manager"}

// Where the children of a run keep their state, under the data dir.
const (
	etcdDir          = "etcd"      // etcd's --data-dir
	apiserverDir     = "apiserver" // kube-apiserver's --cert-dir
	kcmKubeconfig    = "controller-manager.kubeconfig"
	kcmKubeconfigArg = "--kubeconfig="
)

// ownerFlag is the argument, exactly as a run passes it, that ties a child
// to its data dir: etcd's --data-dir (envtest renders --data-dir=DIR),
// kube-apiserver's --cert-dir and kube-controller-manager's --kubeconfig.
func ownerFlag(name, dataDir string) string {
	switch name {
	case "etcd":
		return "--data-dir=" + filepath.Join(dataDir, etcdDir)
	case "kube-apiserver":
		return "--cert-dir=" + filepath.Join(dataDir, apiserverDir)
	case "kube-controller-manager":
		return kcmKubeconfigArg + filepath.Join(dataDir, kcmKubeconfig)
	}
	return ""
}

// proc is one process: what it runs and the identity of its PID.
type proc struct {
	Name  string
	PID   int
	Start uint64 // clock ticks after boot
	Boot  string // /proc/sys/kernel/random/boot_id
}

func (p proc) String() string { return fmt.Sprintf("%s (PID %d)", p.Name, p.PID) }

// line is how p is written in processesFile.
func (p proc) line() string { return fmt.Sprintf("%s %d %d %s\n", p.Name, p.PID, p.Start, p.Boot) }

// parseProc reads one line of processesFile.
func parseProc(line string) (proc, bool) {
	f := strings.Fields(line)
	if len(f) != 4 {
		return proc{}, false
	}
	pid, err1 := strconv.Atoi(f[1])
	start, err2 := strconv.ParseUint(f[2], 10, 64)
	if err1 != nil || err2 != nil || pid <= 0 {
		return proc{}, false
	}
	return proc{Name: f[0], PID: pid, Start: start, Boot: f[3]}, true
}

// bootID identifies this boot of the machine; "" when unknown.
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// procStat is what /proc/<pid>/stat says of a process: its state letter,
// parent and start time.
type procStat struct {
	State byte
	PPID  int
	Start uint64
}

// readStat reads /proc/<pid>/stat; ok is false when there is no such
// process.
func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return procStat{}, false
	}
	f := strings.Fields(string(b[i+2:]))
	// f[0] is field 3 (state), f[1] field 4 (ppid), f[19] field 22 (starttime).
	if len(f) < 20 {
		return procStat{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	start, _ := strconv.ParseUint(f[19], 10, 64)
	return procStat{State: f[0][0], PPID: ppid, Start: start}, true
}

// identify returns the record of a live process.
func identify(name string, pid int) (proc, bool) {
	st, ok := readStat(pid)
	if !ok || st.State == 'Z' {
		return proc{}, false
	}
	return proc{Name: name, PID: pid, Start: st.Start, Boot: bootID()}, true
}

// alive reports whether p still runs: its PID exists, is not a zombie, and
// started when p did, in this boot.
func (p proc) alive() bool {
	if p.Boot != bootID() {
		return false
	}
	st, ok := readStat(p.PID)
	return ok && st.State != 'Z' && st.Start == p.Start
}

// cmdline returns the arguments of pid, nil when it is gone.
func cmdline(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// pids lists the numeric entries of /proc.
func pids() []int {
	entries, _ := os.ReadDir("/proc")
	out := make([]int, 0, len(entries))
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// childrenOf lists the live processes whose parent is ppid and that run
// one of childNames.
func childrenOf(ppid int) []proc {
	var out []proc
	for _, pid := range pids() {
		st, ok := readStat(pid)
		if !ok || st.PPID != ppid || st.State == 'Z' {
			continue
		}
		args := cmdline(pid)
		if len(args) == 0 {
			continue
		}
		if name := filepath.Base(args[0]); slices.Contains(childNames, name) {
			out = append(out, proc{Name: name, PID: pid, Start: st.Start, Boot: bootID()})
		}
	}
	return out
}

// usingDir lists the live processes, other than this one, that run one
// of childNames with the ownerFlag of dir among their arguments. Nothing
// else counts: envtest's control planes, or another data dir's, may have
// dir in their paths.
func usingDir(dir string) []proc {
	self := os.Getpid()
	var out []proc
	for _, pid := range pids() {
		if pid == self {
			continue
		}
		args := cmdline(pid)
		if len(args) == 0 {
			continue
		}
		name := filepath.Base(args[0])
		if !slices.Contains(childNames, name) || !slices.Contains(args[1:], ownerFlag(name, dir)) {
			continue
		}
		if p, ok := identify(name, pid); ok {
			out = append(out, p)
		}
	}
	return out
}

// records is the processesFile of a data dir, kept up to date as children
// start and stop.
type records struct {
	path string
	mu   sync.Mutex
	list []proc
}

func newRecords(dataDir string) *records {
	return &records{path: filepath.Join(dataDir, processesFile)}
}

// load reads the file a previous run left; a missing file is an empty list
// and unreadable lines are skipped.
func (r *records) load() ([]proc, error) {
	b, err := os.ReadFile(r.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", r.path, err)
	}
	var out []proc
	for l := range strings.SplitSeq(string(b), "\n") {
		if p, ok := parseProc(l); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// add records p unless it is there already.
func (r *records) add(ps ...proc) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	changed := false
	for _, p := range ps {
		if !slices.Contains(r.list, p) {
			r.list = append(r.list, p)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return r.writeLocked()
}

// live returns the recorded processes still running.
func (r *records) live() []proc {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []proc
	for _, p := range r.list {
		if p.alive() {
			out = append(out, p)
		}
	}
	return out
}

// clear empties the file: a run that stopped everything leaves nothing to
// recover.
func (r *records) clear() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = nil
	if err := os.Remove(r.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// writeLocked replaces the file at once, so that a crash leaves either the
// old list or the new one.
func (r *records) writeLocked() error {
	var b strings.Builder
	for _, p := range r.list {
		b.WriteString(p.line())
	}
	tmp := r.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("recording the processes started: %w", err)
	}
	if err := os.Rename(tmp, r.path); err != nil {
		return fmt.Errorf("recording the processes started: %w", err)
	}
	return nil
}

// stopResult says how stopProcs ended each process.
type stopResult struct {
	killed []proc // needed SIGKILL
	left   []proc // still there after SIGKILL
}

// stopProcs sends SIGTERM to every process in ps, waits up to grace for
// them to go, sends SIGKILL to those left and waits up to 5s more. A
// process that is gone before it is signaled is skipped. Past
// progressAfter it says on out (when not nil) what it waits for.
func stopProcs(out io.Writer, ps []proc, grace time.Duration) (stopResult, error) {
	var errs []error
	signal := func(list []proc, sig syscall.Signal) {
		for _, p := range list {
			if !p.alive() {
				continue
			}
			if err := syscall.Kill(p.PID, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
				errs = append(errs, fmt.Errorf("sending %s to %s: %w", sig, p, err))
			}
		}
	}
	var res stopResult
	signal(ps, syscall.SIGTERM)
	left := waitGone(out, ps, grace, "SIGTERM")
	if len(left) > 0 {
		res.killed = left
		signal(left, syscall.SIGKILL)
		res.left = waitGone(out, left, 5*time.Second, "SIGKILL")
	}
	return res, errors.Join(errs...)
}

// stopInOrder stops the API server's clients and the API server before
// etcd, which they would otherwise wait for while shutting down.
func stopInOrder(out io.Writer, ps []proc, grace time.Duration) (stopResult, error) {
	var first, last []proc
	for _, p := range ps {
		if p.Name == "etcd" {
			last = append(last, p)
		} else {
			first = append(first, p)
		}
	}
	var res stopResult
	var errs []error
	for _, group := range [][]proc{first, last} {
		if len(group) == 0 {
			continue
		}
		r, err := stopProcs(out, group, grace)
		res.killed = append(res.killed, r.killed...)
		res.left = append(res.left, r.left...)
		errs = append(errs, err)
	}
	return res, errors.Join(errs...)
}

// waitGone waits up to d for every process of ps to end after sig, and
// returns those still alive.
func waitGone(out io.Writer, ps []proc, d time.Duration, sig string) []proc {
	begin := time.Now()
	deadline := begin.Add(d)
	note := begin.Add(progressAfter)
	for {
		var left []proc
		for _, p := range ps {
			if p.alive() {
				left = append(left, p)
			}
		}
		now := time.Now()
		if len(left) == 0 || now.After(deadline) {
			return left
		}
		if out != nil && now.After(note) {
			fmt.Fprintf(out, "portcullis dev: still waiting for %s to stop after %s (%s so far, at most %s)\n",
				listProcs(left), sig, now.Sub(begin).Round(time.Second), d)
			note = now.Add(progressEvery)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// listProcs joins processes for a message: "etcd (PID 1), kube-apiserver
// (PID 2) and kube-controller-manager (PID 3)".
func listProcs(ps []proc) string {
	if len(ps) == 0 {
		return "nothing"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return joinAnd(s)
}
